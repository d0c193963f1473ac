package relay

import (
	"strconv"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// Drain (SPEC section 9, docs/PROTOCOL.md "Drain"): the relay stops
// taking nodes and asks the bound ones to move to other relays of the
// federation. The process that owns the router decides when to stop it
// (cmd/gsio-relay: when no node is left or at the deadline).

// CloseTryAgain is the close code of a connection refused because the
// relay is draining: RFC 6455 1013, "try again later" (on another relay).
const CloseTryAgain = 1013

// TypeRelayDraining is the message a draining relay sends every bound node:
// payload {"urls":["wss://…",…],"deadline_ms":<unix ms>}.
const TypeRelayDraining = "RelayDraining"

// drainReason is the close reason of a connection refused while draining.
const drainReason = "relay draining: connect to another relay"

// Drain makes the router refuse new connections and binds (close 1013)
// and sends every bound local node RelayDraining with urls (the other
// relays' public WebSocket URLs; may be empty) and deadline (when the
// relay will close what is left). Only the first call does anything; it
// returns the number of nodes told, and false for a later call.
func (r *Router) Drain(urls []string, deadline time.Time) (told int, first bool) {
	r.mu.Lock()
	if r.draining.Load() {
		r.mu.Unlock()
		return 0, false
	}
	r.draining.Store(true)
	r.metrics.Draining.Set(1)
	sessions := make([]*Session, 0, len(r.nodes))
	for _, s := range r.nodes {
		sessions = append(sessions, s)
	}
	r.mu.Unlock()
	// Binds see the flag under r.mu: no node binds after the copy.
	p := drainingPayload(urls, deadline)
	for _, s := range sessions {
		b := message.Build(TypeRelayDraining, message.NewID(), r.cfg.RelayID, s.nodeID, p)
		if r.send(s, wsframe.NewText(b)) {
			r.metrics.countOut(TypeRelayDraining, RouteLocal, len(b), 1)
			told++
		}
	}
	r.log.Info("draining", "nodes", len(sessions), "told", told, "relays", len(urls), "deadline", deadline.UTC().Format(time.RFC3339))
	return told, true
}

// Draining reports whether Drain was called.
func (r *Router) Draining() bool { return r.draining.Load() }

// LocalCount is the number of node ids bound on this relay.
func (r *Router) LocalCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.nodes)
}

// drainingPayload is {"urls":[…],"deadline_ms":…}.
func drainingPayload(urls []string, deadline time.Time) []byte {
	p := append(make([]byte, 0, 64), `{"urls":[`...)
	for i, u := range urls {
		if i > 0 {
			p = append(p, ',')
		}
		p = message.AppendString(p, u)
	}
	p = append(p, `],"deadline_ms":`...)
	p = strconv.AppendInt(p, deadline.UnixMilli(), 10)
	return append(p, '}')
}
