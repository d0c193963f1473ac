package node

import (
	"context"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gsio-net/gsio-relay/nodeauth"
)

// speakForPendingMax bounds the messages of one origin held by the
// speak-for wait; beyond it they are ignored (dropped without penalty).
const speakForPendingMax = 1024

// heldBudget bounds the messages held by the speak-for wait
// (docs/PROTOCOL.md 4.2). A held broadcast takes one of the topic's
// Gossip.ValidateConcurrency slots of asynchronous validation for up to
// Presence.SpeakForWait; a full topic drops what arrives (honest messages
// included, and they are then marked seen: lost for good). So held
// messages may take at most half of the slots in all, and the messages
// handed to us by one peer (one forwarder, however many keys it signs
// with) at most a quarter: one peer can never take the slots that
// messages needing no wait use, nor all of those the other peers' honest
// races need. Per origin the bound is speakForPendingMax (at most the
// per-peer one). Beyond a bound a message is ignored at once.
type heldBudget struct {
	total, perPeer, perOrigin int
}

func newHeldBudget(validateConcurrency int) heldBudget {
	b := heldBudget{total: max(validateConcurrency/2, 1), perPeer: max(validateConcurrency/4, 1)}
	b.perOrigin = min(speakForPendingMax, b.perPeer)
	return b
}

// speakFor applies the speak-for rule (docs/PROTOCOL.md "Who may speak for
// a node") to broadcasts (publisher.validate) and direct messages
// (direct.onMessage). It runs no goroutine: a check waits in its caller's.
type speakFor struct {
	dir     *directory
	isLocal func(node string) bool
	tracer  *tracer
	done    <-chan struct{} // the node is closing: waits end
	budget  heldBudget

	mu      sync.Mutex
	pending map[peer.ID]int // messages held by the wait, per origin
	byPeer  map[peer.ID]int // per peer that handed them to us
	total   int
}

func newSpeakFor(done <-chan struct{}, dir *directory, isLocal func(string) bool, t *tracer, b heldBudget) *speakFor {
	return &speakFor{dir: dir, isLocal: isLocal, tracer: t, done: done, budget: b,
		pending: map[peer.ID]int{}, byPeer: map[peer.ID]int{}}
}

// check decides on a message with sender_id sender from relay origin,
// handed to us by peer from:
//
//   - origin announces sender (or announced it within SpeakForWait): accept;
//   - origin is not a relay (never sent presence), no relay (this one
//     included) holds sender and sender is not a key id: accept (a plain
//     GossipSub peer speaks for itself);
//   - origin's claims are not all known (a directory bound refused or
//     evicted some): ignore, without waiting;
//   - otherwise, within the held budget, wait until deadline (SpeakForWait
//     after the message, or after the batch, arrived) for origin's
//     presence to announce sender (a join racing the message); then
//     reject. Beyond the budget: ignore.
func (s *speakFor) check(ctx context.Context, origin, from peer.ID, sender string, deadline time.Time) (pubsub.ValidationResult, string) {
	var timer *time.Timer
	for {
		v := s.dir.speaks(origin, sender, time.Now())
		// A key id is spoken for only by a relay holding it with the
		// node's proof: rule 2 (a plain peer) never covers one.
		if v.held || (!v.originKnown && !v.heldElsewhere && !s.isLocal(sender) && !nodeauth.IsKeyID(sender)) {
			return pubsub.ValidationAccept, ""
		}
		if v.originOver {
			return pubsub.ValidationIgnore, "origin_over_bound"
		}
		if timer == nil {
			if !s.hold(origin, from) {
				s.tracer.drop("speak_for_pending_full", 1)
				return pubsub.ValidationIgnore, "speak_for_pending_full"
			}
			defer s.release(origin, from)
			timer = time.NewTimer(time.Until(deadline))
			defer timer.Stop()
		}
		select {
		case <-v.changed:
		case <-timer.C:
			return pubsub.ValidationReject, "speak_for"
		case <-ctx.Done():
			return pubsub.ValidationIgnore, "closing"
		case <-s.done:
			return pubsub.ValidationIgnore, "closing"
		}
	}
}

// hold counts one more message of origin, handed to us by from, held,
// unless a bound of the budget is reached.
func (s *speakFor) hold(origin, from peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.budget.total || s.pending[origin] >= s.budget.perOrigin || s.byPeer[from] >= s.budget.perPeer {
		return false
	}
	s.total++
	s.pending[origin]++
	s.byPeer[from]++
	return true
}

func (s *speakFor) release(origin, from peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.pending[origin]--; s.pending[origin] <= 0 {
		delete(s.pending, origin)
	}
	if s.byPeer[from]--; s.byPeer[from] <= 0 {
		delete(s.byPeer, from)
	}
}

// held is the number of messages held now.
func (s *speakFor) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}
