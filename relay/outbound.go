package relay

import (
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// Deliver takes a validated message from the federation to local nodes:
// a broadcast to every local node but its sender, a direct message to its
// recipient. Duplicates (the same message by gossip and direct, or from two
// relays of a multi-homed sender) are delivered once.
func (r *Router) Deliver(env *message.Envelope) {
	if !r.dedup.Add(r.hash(env.Sender, env.ID)) {
		r.metrics.DedupHits.Inc()
		return
	}
	if env.Broadcast() && env.TS == 0 {
		// From a plain GossipSub peer: it enters the federation here.
		env.SetTS(r.now().UnixMilli())
	}
	f := wsframe.NewText(env.Raw)
	if env.Broadcast() {
		r.record(env, f)
		r.metrics.countIn(env.Type, RouteGossip, len(env.Raw))
		r.metrics.countOut(env.Type, RouteLocal, len(env.Raw), r.fanout(f, env.Sender))
		return
	}
	r.metrics.countIn(env.Type, RouteDirect, len(env.Raw))
	if code, held := r.queueBehind(env, f); held {
		if code != "" {
			r.metrics.drop(DropMailboxFull)
		}
		return
	}
	to := r.local(env.Recipient)
	if to == nil {
		// It left between the mesh's routing and now: keep it (the
		// mailbox follows the node to the relay it binds on next).
		if r.keep(env, f) == "" {
			return
		}
		r.metrics.drop(DropRecipientUnknown)
		return
	}
	if r.send(to, f) {
		r.metrics.countOut(env.Type, RouteLocal, len(env.Raw), 1)
	}
}

// Learned takes a broadcast that reconciliation (node/sync.go) found
// missing here: delivered as Deliver does, but paced. A heal brings
// thousands at once, faster than any node reads, and a burst must not
// close the nodes that stayed connected as slow consumers: every
// learnedCheck messages (or learnedCheckBytes), Learned waits until every
// local node's send queue is under the replay bounds, at most
// ReplayTimeout (then the slow-consumer rule decides). It blocks the sync
// session that learned the message, which is the pacing wanted.
func (r *Router) Learned(env *message.Envelope) {
	r.learnMu.Lock()
	defer r.learnMu.Unlock()
	r.learnedN++
	r.learnedBytes += len(env.Raw)
	if r.learnedN >= learnedCheck || r.learnedBytes >= learnedCheckBytes {
		r.learnedN, r.learnedBytes = 0, 0
		r.waitQueues()
	}
	r.Deliver(env)
}

// Pacing of learned broadcasts: between two checks at most learnedCheck
// frames (learnedCheckBytes) are added to a queue under the replay bounds
// (512 frames, 2 MiB), well inside the slow-consumer limits (4096, 8 MiB).
const (
	learnedCheck      = 128
	learnedCheckBytes = 1 << 20
)

// waitQueues waits until no local node has more than the replay bounds
// waiting for it: its send queue, and while a resume replays, its backlog
// (which is sent only after the replay). A node that stays over them
// for ReplayTimeout is left behind: later checks skip it while it stays
// over, so one slow reader delays a heal once, not at every check (the
// learned frames then fill its queue and the slow-consumer rule closes
// it). The router's close ends the wait. learnMu held.
func (r *Router) waitQueues() {
	r.mu.RLock()
	sessions := make([]*Session, 0, len(r.nodes))
	for _, s := range r.nodes {
		sessions = append(sessions, s)
	}
	r.mu.RUnlock()
	behind := make(map[*Session]struct{}, len(r.learnBehind)) // only sessions still bound
	deadline := time.Now().Add(r.cfg.ReplayTimeout)
	for _, s := range sessions {
		_, was := r.learnBehind[s]
		for s.over() {
			if was || time.Now().After(deadline) || r.ctx.Err() != nil {
				behind[s] = struct{}{}
				break
			}
			time.Sleep(replayPoll)
		}
	}
	r.learnBehind = behind
}

// over reports whether s has more than the replay bounds waiting for it.
func (s *Session) over() bool {
	frames, bytes := s.conn.QueueLen()
	if s.replayingA.Load() {
		s.backlogMu.Lock()
		frames, bytes = frames+len(s.backlog), bytes+s.backlogBytes
		s.backlogMu.Unlock()
	}
	return frames >= replayHighFrames || bytes >= replayHighBytes
}

// Undeliverable is the mesh saying that a direct message found no
// recipient at the relay it was routed to. A message still in flight
// (inflight.go) goes to the recipient's mailbox, as if the recipient had
// been gone when it was sent; otherwise, or when the mailbox refuses it,
// its local sender is told.
func (r *Router) Undeliverable(sender, messageID, recipient string) {
	code := message.CodeRecipientUnknown
	if m := r.inflight.take(sender, messageID, r.now()); m != nil {
		if to := r.local(m.env.Recipient); to != nil && !r.mailBusy(m.env.Recipient) {
			// It bound here meanwhile (with kept messages, it goes by
			// keepAt to its place among them).
			if r.send(to, m.f) {
				r.metrics.countOut(m.env.Type, RouteLocal, len(m.env.Raw), 1)
			}
			return
		}
		if code = r.keepAt(&m.env, m.f, m.at); code == "" {
			return
		}
	}
	r.notDelivered(r.local(sender), sender, messageID, recipient, code)
}
