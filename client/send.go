package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gsio-net/gsio-relay/message"
)

// MaxHistoryLimit is the largest HistoryRequest limit (SPEC section 7),
// and the relay's default.
const MaxHistoryLimit = 10000

// Send sends m on the current connection and returns its message_id. An
// empty ID gets a UUID, an empty Sender the bound node id. It waits for a
// connection while the client reconnects, and returns once the frame is
// written to the socket: delivery is at most once, and a refusal by the
// relay arrives later as a RelayError in Messages() whose Ref is the id.
// A frame not yet written when its connection ends is sent on the next
// one. When ctx ends first the frame may still be sent. While the client
// waits for a slow reader (see the package doc) Send fails at once with
// ErrSlowReader.
func (c *Client) Send(ctx context.Context, m Message) (string, error) {
	if relayType(m.Type) {
		return "", fmt.Errorf("send %s: types beginning with Relay belong to relays", m.Type)
	}
	if m.ID == "" {
		m.ID = message.NewID()
	}
	if id := c.NodeID(); m.Sender == "" {
		m.Sender = id
	} else if m.Sender != id {
		return "", fmt.Errorf("send %s: sender_id %q is not this client's node id %q", m.Type, m.Sender, id)
	}
	data, err := m.Encode()
	if err != nil {
		return "", err
	}
	var prev *session
	for {
		s, err := c.session(ctx, prev)
		if err != nil {
			return "", fmt.Errorf("send %s: %w", m.Type, err)
		}
		switch err := s.send(ctx, data); {
		case errors.Is(err, errNotSent):
			prev = s
		case err != nil:
			return "", fmt.Errorf("send %s: %w", m.Type, err)
		default:
			return m.ID, nil
		}
	}
}

// Broadcast sends a message of type typ to every other node.
func (c *Client) Broadcast(ctx context.Context, typ string, payload json.RawMessage) (string, error) {
	return c.Send(ctx, NewMessage(typ, "", payload))
}

// SendTo sends a direct message of type typ to recipient.
func (c *Client) SendTo(ctx context.Context, recipient, typ string, payload json.RawMessage) (string, error) {
	if recipient == "" {
		return "", fmt.Errorf("send %s: no recipient (use Broadcast)", typ)
	}
	return c.Send(ctx, NewMessage(typ, recipient, payload))
}

// HistoryResult is a relay's answer to History.
type HistoryResult struct {
	// Messages are the stored broadcasts, in the relay's ts order.
	Messages []Message
	// Count is the number of messages the relay says it sent.
	Count int
	// Complete is false when the relay's store does not reach back to
	// since, when limit cut the answer (NextSince continues it), or when
	// the relay may have missed part of the window.
	Complete bool
	// NextSince continues a cut answer; Oldest is the oldest broadcast the
	// relay keeps. Zero when the relay did not say.
	NextSince, Oldest time.Time
}

// History asks the relay for the broadcasts it keeps with since <= ts <
// until (a zero until: up to now), at most limit of them (0: the relay's
// default, MaxHistoryLimit), not sent by this node (SPEC section 7). It
// returns when the relay's RelayHistoryEnd arrives; a RelayError about the
// request is returned as a *RelayError (a relay without history answers
// invalid_message). Calls run one at a time. While a call runs, every
// broadcast received with a ts in its window is part of its answer and is
// not delivered to Messages(): a live broadcast arriving then is in the
// result instead. If the connection ends first, History returns
// ErrConnectionLost.
func (c *Client) History(ctx context.Context, since, until time.Time, limit int) (*HistoryResult, error) {
	return c.historyCall(ctx, since, until, limit, false)
}

// historyCall runs a History call; a catch-up call (catchup.go) leaves the
// duplicate filter to the caller, which delivers the answer to Messages().
func (c *Client) historyCall(ctx context.Context, since, until time.Time, limit int, catchUp bool) (*HistoryResult, error) {
	if limit < 0 || limit > MaxHistoryLimit {
		return nil, fmt.Errorf("history: limit %d, want 0 to %d", limit, MaxHistoryLimit)
	}
	req := struct {
		Since int64 `json:"since_ms"`
		Until int64 `json:"until_ms,omitempty"`
		Limit int   `json:"limit,omitempty"`
	}{Since: unixMS(since), Until: unixMS(until), Limit: limit}
	payload, _ := json.Marshal(req)
	select {
	case c.histSem <- struct{}{}:
		defer func() { <-c.histSem }()
	case <-ctx.Done():
		return nil, fmt.Errorf("history: %w", ctx.Err())
	}
	var prev *session
	for {
		s, err := c.session(ctx, prev)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		h := &historyCall{ref: message.NewID(), since: req.Since, until: req.Until, limit: limit, catchUp: catchUp, done: make(chan struct{})}
		if h.limit == 0 {
			h.limit = MaxHistoryLimit
		}
		res, err := c.history(ctx, s, h, payload)
		if errors.Is(err, errNotSent) {
			prev = s
			continue
		}
		return res, err
	}
}

// history runs h on s.
func (c *Client) history(ctx context.Context, s *session, h *historyCall, payload []byte) (*HistoryResult, error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil, errNotSent
	}
	s.hist = h
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.hist = nil
		s.mu.Unlock()
	}()
	if err := s.send(ctx, message.Build(TypeHistoryRequest, h.ref, s.nodeID, RelayID, payload)); err != nil {
		if errors.Is(err, errNotSent) {
			return nil, err
		}
		return nil, fmt.Errorf("history: %w", err)
	}
	select {
	case <-h.done:
	case <-ctx.Done():
		s.mu.Lock()
		h.finish(nil, ctx.Err()) // no frame joins it after this
		s.mu.Unlock()
	}
	if h.err != nil {
		c.handBack(h)
		return nil, fmt.Errorf("history: %w", h.err)
	}
	return &HistoryResult{
		Messages:  h.msgs,
		Count:     h.end.Count,
		Complete:  h.end.Complete,
		NextSince: fromMS(h.end.NextSinceMS),
		Oldest:    fromMS(h.end.OldestMS),
	}, nil
}

// handBack gives the broadcasts a failed History call had taken to
// Messages(): live ones among them were received while it ran and were
// kept from Messages() for its answer, which the caller now never sees.
// h is finished (no frame joins it).
func (c *Client) handBack(h *historyCall) {
	for _, m := range h.msgs {
		if m.ID != "" && !h.catchUp {
			c.seen.Remove(dedupKey{m.Sender, m.ID}) // marked when taken
		}
		if !c.deliverLate(m) {
			return
		}
	}
	h.msgs = nil
}

// unixMS is t in unix ms, 0 for the zero time.
func unixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the time of unix ms v, zero for 0.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}
