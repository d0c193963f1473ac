package client

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// The reader's path for one frame: the handshake until the id is bound;
// then the relay's own messages (RelayError, RelayHistoryEnd,
// RelayDraining), the answer of a running History call, and everything
// else through the duplicate filter into Messages(). A non-nil error ends
// the session.

// frame handles one frame read from the relay.
func (s *session) frame(data []byte) error {
	m, err := Parse(data)
	if err != nil {
		s.c.log.Debug("unreadable frame dropped", "remote", s.url, "err", err)
		return nil
	}
	switch {
	case !s.bound:
		return s.handshake(m)
	case relayType(m.Type):
		return s.relayMessage(m)
	case s.historyFrame(m):
		return nil
	}
	return s.deliver(m, true)
}

// handshake answers the RelayChallenge of a key id and waits for
// RelayAuthOk. The relay sends nothing else before it.
func (s *session) handshake(m Message) error {
	switch m.Type {
	case TypeRelayChallenge:
		key := s.c.cfg.NodeKey
		if s.auth != authKey || s.challenged {
			return fmt.Errorf("relay %s: unexpected RelayChallenge", s.url)
		}
		var ch nodeauth.Challenge
		if err := json.Unmarshal(m.Payload, &ch); err != nil || ch.Relay == "" || ch.Nonce == "" {
			return fmt.Errorf("relay %s: bad RelayChallenge payload %.200s", s.url, m.Payload)
		}
		keyID, p := ch.Answer(key, time.Now())
		payload, _ := json.Marshal(nodeauth.AuthPayload{Relay: p.Relay, Nonce: p.Nonce, TS: p.TS, Sig: p.Sig})
		s.challenged = true
		if !s.post(message.Build(TypeNodeAuth, message.NewID(), keyID, RelayID, payload)) {
			return fmt.Errorf("relay %s: cannot queue NodeAuth", s.url)
		}
	case TypeRelayAuthOk:
		if s.auth == authKey && !s.challenged {
			return fmt.Errorf("relay %s: RelayAuthOk before the challenge", s.url)
		}
		var p struct {
			NodeID string `json:"node_id"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.NodeID == "" {
			return fmt.Errorf("relay %s: bad RelayAuthOk payload %.200s", s.url, m.Payload)
		}
		if s.nodeID != "" && p.NodeID != s.nodeID {
			return fmt.Errorf("relay %s: bound %q, want %q", s.url, p.NodeID, s.nodeID)
		}
		s.markBound(p.NodeID)
	default:
		s.c.log.Debug("frame before authentication dropped", "remote", s.url, "type", m.Type)
	}
	return nil
}

// relayMessage handles a message whose type begins with "Relay".
func (s *session) relayMessage(m Message) error {
	switch m.Type {
	case TypeRelayError:
		if s.historyError(m.Err) {
			return nil
		}
		return s.deliver(m, false)
	case TypeRelayHistoryEnd:
		s.historyEnd(m)
		return nil
	case TypeRelayDraining:
		var p struct {
			URLs []string `json:"urls"`
		}
		_ = json.Unmarshal(m.Payload, &p)
		s.mu.Lock()
		s.drainURLs = p.URLs
		s.mu.Unlock()
		return fmt.Errorf("relay %s: %w", s.url, ErrDraining)
	case TypeRelayAuthOk, TypeRelayChallenge:
		return nil // the answer to a token renewal; a stray challenge
	}
	return s.deliver(m, false) // a relay message of a later protocol
}

// deliver puts m into Messages(), dropping a duplicate (dedup) first. When
// Messages() is full it ends the session with ErrSlowReader, and m counts
// as not received, so that a resumed connection delivers it.
func (s *session) deliver(m Message, dedup bool) error {
	c := s.c
	if dedup && !c.isNew(m) {
		return nil
	}
	c.stats.delivered.Add(1) // before the reader can see m
	select {
	case c.msgs <- m:
	default:
		c.stats.delivered.Add(-1)
		if dedup {
			c.seen.Remove(dedupKey{m.Sender, m.ID})
		}
		c.stats.slow.Add(1)
		return ErrSlowReader
	}
	now := time.Now().UnixMilli()
	if m.TS > c.highTS.Load() && m.TS <= now+maxTSAhead.Milliseconds() {
		// The reader is the only writer. A ts far ahead of our clock (a
		// relay's clock) would push every later resume past what it
		// missed: it does not count.
		c.highTS.Store(m.TS)
	}
	if s.draining && m.TS >= s.endMS {
		s.draining = false
	}
	if !s.replaying && !s.draining {
		c.heard.Store(now)
	}
	return nil
}

// maxTSAhead: a delivered ts further ahead of the local clock than this
// does not move the resume point (relays refuse live broadcasts stamped
// more than a minute ahead of their own clocks).
const maxTSAhead = time.Minute

// isNew records m's (sender_id, message_id) and reports whether it was
// not delivered before; a repeat counts as a duplicate. A message without
// a message_id is always new.
func (c *Client) isNew(m Message) bool {
	if m.ID == "" || c.seen.Add(dedupKey{m.Sender, m.ID}) {
		return true
	}
	c.stats.duplicates.Add(1)
	return false
}

// historyCall is one History request waiting for its answer.
type historyCall struct {
	ref          string
	since, until int64 // until 0: no bound
	limit        int
	catchUp      bool          // its answer goes to Messages() through the duplicate filter
	done         chan struct{} // closed by finish

	// Written by the session reader under session.mu until done is
	// closed; read by History after.
	closed bool
	msgs   []Message
	end    historyEnd
	err    error
}

// historyEnd is the payload of RelayHistoryEnd (SPEC section 7).
type historyEnd struct {
	Ref         string `json:"ref"`
	Count       int    `json:"count"`
	Complete    bool   `json:"complete"`
	NextSinceMS int64  `json:"next_since_ms"`
	OldestMS    int64  `json:"oldest_ms"`
}

// finish ends the call once (session.mu held).
func (h *historyCall) finish(end *historyEnd, err error) {
	if h.closed {
		return
	}
	if end != nil {
		h.end = *end
	}
	h.err, h.closed = err, true
	close(h.done)
}

// historyFrame takes m as part of the running History call's answer: a
// broadcast with a ts in its window, received while it runs. The relay
// cannot tell live frames from replayed ones, so a live broadcast in the
// window goes to History too, and not to Messages().
func (s *session) historyFrame(m Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hist
	if h == nil || h.closed || m.TS == 0 || !m.Broadcast() || m.TS < h.since ||
		(h.until > 0 && m.TS >= h.until) || len(h.msgs) >= maxHistoryAnswer {
		return false
	}
	h.msgs = append(h.msgs, m)
	if m.ID != "" && !h.catchUp {
		s.c.seen.Add(dedupKey{m.Sender, m.ID})
	}
	return true
}

// historyEnd ends the History call it answers, or the since_ms replay.
func (s *session) historyEnd(m Message) {
	var e historyEnd
	if err := json.Unmarshal(m.Payload, &e); err != nil {
		s.c.log.Debug("bad RelayHistoryEnd dropped", "remote", s.url, "err", err)
		return
	}
	if e.Ref == "" {
		s.replaying = false
		// The held live broadcasts follow: heard moves on once one as new
		// as this moment arrives (deliver), not now.
		s.draining, s.endMS = true, time.Now().UnixMilli()
		s.c.log.Debug("resume replay done", "remote", s.url, "count", e.Count, "complete", e.Complete, "next_since_ms", e.NextSinceMS)
		if e.NextSinceMS > 0 {
			s.c.noteCut(e.NextSinceMS) // the replay was cut: fetch the rest
		}
		return
	}
	s.mu.Lock()
	if h := s.hist; h != nil && h.ref == e.Ref {
		h.finish(&e, nil)
	}
	s.mu.Unlock()
}

// historyError ends the History call a RelayError refers to.
func (s *session) historyError(e *RelayError) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hist
	if h == nil || h.closed || e.Ref != h.ref {
		return false
	}
	h.finish(nil, e)
	return true
}

// maxHistoryAnswer bounds the messages one History call collects: the
// relay's maximum answer (a millisecond is answered whole, so an answer
// may exceed the limit asked for, never this).
const maxHistoryAnswer = 10_000
