package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// History, resume and HistoryRequest (SPEC section 7, docs/CLIENT.md
// "History"). Every broadcast that passes through the relay is appended to
// the store before it is fanned out, so that a node binding with
// ?since_ms= finds in the store (after a Flush) everything it was not sent
// live. The replay runs on the node's own read pump; live traffic for the
// node meanwhile waits in the session's backlog and follows the replay
// without gap or duplicate.

// Message types of history.
const (
	TypeHistoryRequest  = "HistoryRequest"
	TypeRelayHistoryEnd = "RelayHistoryEnd"
)

// Replay pacing: a replay waits while the connection's send queue holds
// more than replayHighFrames frames or replayHighBytes bytes, so that a
// 10,000-message answer never makes its reader a slow consumer.
const (
	replayHighFrames = 512
	replayHighBytes  = 2 << 20
	replayPoll       = 2 * time.Millisecond
)

// errSlowReplay ends a replay whose reader does not read.
var errSlowReplay = errors.New("the client does not read its replay")

// record appends a broadcast to the history (before it is fanned out).
func (r *Router) record(env *message.Envelope, f *wsframe.Frame) {
	if r.hist != nil {
		r.hist.Append(env.TS, env.Sender, env.ID, f.Message())
	}
}

// historyRequest is a HistoryRequest payload.
type historyRequest struct {
	since, until int64
	limit        int
}

// parseHistoryRequest reads {"since_ms":T,"until_ms":U,"limit":N}: T an
// integer >= 0 (required), U an integer > T (optional), N an integer from
// 1 to 10,000 (optional, default 10,000).
func parseHistoryRequest(payload []byte) (historyRequest, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(payload, &p); err != nil || p == nil {
		return historyRequest{}, errors.New("payload must be an object {since_ms, until_ms, limit}")
	}
	req := historyRequest{limit: history.MaxLimit}
	raw, ok := p["since_ms"]
	if !ok {
		return req, errors.New("since_ms is required")
	}
	var err error
	if req.since, err = jsonInt(raw, 0, 1<<53); err != nil {
		return req, fmt.Errorf("since_ms %w", err)
	}
	if raw, ok := p["until_ms"]; ok && string(raw) != "null" {
		if req.until, err = jsonInt(raw, req.since+1, 1<<53); err != nil {
			return req, fmt.Errorf("until_ms %w (and more than since_ms)", err)
		}
	}
	if raw, ok := p["limit"]; ok && string(raw) != "null" {
		n, err := jsonInt(raw, 1, history.MaxLimit)
		if err != nil {
			return req, fmt.Errorf("limit %w", err)
		}
		req.limit = int(n)
	}
	return req, nil
}

// jsonInt reads a JSON integer within [lo, hi].
func jsonInt(raw json.RawMessage, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("must be an integer from %d to %d", lo, hi)
	}
	return n, nil
}

// answerHistory answers a HistoryRequest of a bound session: the stored
// broadcasts, then RelayHistoryEnd. At most 2 requests a second (burst 4)
// per connection: each may read up to 10,000 messages.
func (r *Router) answerHistory(s *Session, env *message.Envelope) {
	if !r.allowAnswer(s, env, &s.histories, 2, 4) {
		return
	}
	req, err := parseHistoryRequest(env.Payload)
	if err != nil {
		r.refuse(s, env, DropInvalid, message.CodeInvalidMessage, "HistoryRequest: "+err.Error())
		return
	}
	if _, err := r.replay(s, req, env.ID, nil); err != nil {
		s.conn.Close(ClosePolicy, "slow consumer")
	}
}

// replay sends the stored broadcasts of req to s (pacing on its send
// queue), then RelayHistoryEnd with ref. It returns the keys sent, for the
// live backlog of a resume. Without a store the answer is empty and not
// complete.
func (r *Router) replay(s *Session, req historyRequest, ref string, sent map[dedupKey]struct{}) (map[dedupKey]struct{}, error) {
	res := history.Result{}
	if r.hist != nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ReplayTimeout)
		defer cancel()
		flushErr := r.hist.Flush(ctx)
		if flushErr != nil {
			r.log.Warn("history flush before a replay", "err", flushErr)
		}
		deadline := time.Now().Add(r.cfg.ReplayTimeout)
		var err error
		res, err = r.hist.Range(req.since, req.until, req.limit, s.nodeID, func(_ int64, sender string, frame []byte) error {
			if err := r.pace(s, deadline); err != nil {
				return err
			}
			if sent != nil {
				if e, err := message.Parse(frame); err == nil {
					sent[dedupKey{e.Sender, e.ID}] = struct{}{}
				}
			}
			if err := s.conn.Send(wsframe.NewText(frame)); err != nil {
				return err
			}
			s.out.Add(1)
			return nil
		})
		switch {
		case errors.Is(err, errSlowReplay):
			return sent, err
		case err != nil:
			r.log.Warn("history read", "node", s.nodeID, "err", err)
			res.Complete = false
		case flushErr != nil:
			// What was queued but not written is not in the answer, and
			// no gap says so.
			res.Complete = false
		}
	}
	r.sendRelay(s, TypeRelayHistoryEnd, s.nodeID, historyEnd(ref, res))
	return sent, nil
}

// pace waits while s's send queue is over the replay bounds.
func (r *Router) pace(s *Session, deadline time.Time) error {
	for {
		frames, bytes := s.conn.QueueLen()
		if frames < replayHighFrames && bytes < replayHighBytes {
			return nil
		}
		if time.Now().After(deadline) {
			return errSlowReplay
		}
		time.Sleep(replayPoll)
	}
}

// historyEnd is the RelayHistoryEnd payload.
func historyEnd(ref string, res history.Result) []byte {
	p := make([]byte, 0, 128)
	p = append(p, `{"ref":`...)
	p = message.AppendString(p, ref)
	p = append(p, `,"count":`...)
	p = strconv.AppendInt(p, int64(res.Count), 10)
	p = append(p, `,"complete":`...)
	p = strconv.AppendBool(p, res.Complete)
	if res.NextSince > 0 {
		p = append(p, `,"next_since_ms":`...)
		p = strconv.AppendInt(p, res.NextSince, 10)
	}
	p = append(p, `,"oldest_ms":`...)
	p = strconv.AppendInt(p, res.Oldest, 10)
	return append(p, '}')
}

// Backlog of a resuming session: live frames held while the replay runs.
// Bounded: a backlog over these is a slow consumer.
const (
	backlogMaxFrames = 16384
	backlogMaxBytes  = 32 << 20
)

// hold keeps f in s's backlog while its replay runs; it reports false
// when no replay runs (the caller sends f itself).
func (s *Session) hold(f *wsframe.Frame) bool {
	s.backlogMu.Lock()
	defer s.backlogMu.Unlock()
	if !s.replaying {
		return false
	}
	if len(s.backlog) >= backlogMaxFrames || s.backlogBytes+f.Len() > backlogMaxBytes {
		s.backlogOver = true
		return true
	}
	s.backlog = append(s.backlog, f)
	s.backlogBytes += f.Len()
	return true
}

// resume runs the replay of ?since_ms= once the session's id is bound
// (read pump): stored broadcasts since then, RelayHistoryEnd (ref ""),
// then the live frames held meanwhile, less those the replay sent. The
// held frames go out paced like the replay, a batch at a time; live
// frames keep joining the backlog until it is empty, so the order holds
// and no live sender waits for a slow reader.
func (r *Router) resume(s *Session) {
	sent, err := r.replay(s, historyRequest{since: s.resumeSince, limit: history.MaxLimit}, "", map[dedupKey]struct{}{})
	deadline := time.Now().Add(r.cfg.ReplayTimeout)
	for {
		s.backlogMu.Lock()
		backlog, over := s.backlog, s.backlogOver
		s.backlog, s.backlogBytes = nil, 0
		done := err != nil || over || len(backlog) == 0
		if done {
			s.replaying = false
		}
		s.backlogMu.Unlock()
		if err != nil || over {
			r.metrics.drop(DropSendRefused)
			s.conn.Close(ClosePolicy, "slow consumer")
			return
		}
		if done {
			return
		}
		for _, f := range backlog {
			if e, perr := message.Parse(f.Message()); perr == nil {
				if _, dup := sent[dedupKey{e.Sender, e.ID}]; dup {
					continue
				}
			}
			if err = r.pace(s, deadline); err != nil {
				break
			}
			if err = s.conn.Send(f); err != nil {
				break
			}
		}
	}
}
