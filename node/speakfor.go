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

// speakFor applies the speak-for rule (docs/PROTOCOL.md "Who may speak for
// a node") to broadcasts (publisher.validate) and direct messages
// (direct.onMessage). It runs no goroutine: a check waits in its caller's.
type speakFor struct {
	dir     *directory
	isLocal func(node string) bool
	tracer  *tracer
	done    <-chan struct{} // the node is closing: waits end

	mu      sync.Mutex
	pending map[peer.ID]int // messages held by the wait, per origin
}

func newSpeakFor(done <-chan struct{}, dir *directory, isLocal func(string) bool, t *tracer) *speakFor {
	return &speakFor{dir: dir, isLocal: isLocal, tracer: t, done: done, pending: map[peer.ID]int{}}
}

// check decides on a message with sender_id sender from relay origin:
//
//   - origin announces sender (or announced it within SpeakForWait): accept;
//   - origin is not a relay (never sent presence), no relay (this one
//     included) holds sender and sender is not a key id: accept (a plain
//     GossipSub peer speaks for itself);
//   - otherwise wait until deadline (SpeakForWait after the message, or
//     after the batch, arrived) for origin's presence to announce sender (a
//     join racing the message); then reject.
func (s *speakFor) check(ctx context.Context, origin peer.ID, sender string, deadline time.Time) (pubsub.ValidationResult, string) {
	var timer *time.Timer
	for {
		v := s.dir.speaks(origin, sender, time.Now())
		// A key id is spoken for only by a relay holding it with the
		// node's proof: rule 2 (a plain peer) never covers one.
		if v.held || (!v.originKnown && !v.heldElsewhere && !s.isLocal(sender) && !nodeauth.IsKeyID(sender)) {
			return pubsub.ValidationAccept, ""
		}
		if timer == nil {
			if !s.hold(origin) {
				s.tracer.drop("speak_for_pending_full", 1)
				return pubsub.ValidationIgnore, "speak_for_pending_full"
			}
			defer s.release(origin)
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

// hold counts one more message of origin held, unless it has
// speakForPendingMax already.
func (s *speakFor) hold(origin peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[origin] >= speakForPendingMax {
		return false
	}
	s.pending[origin]++
	return true
}

func (s *speakFor) release(origin peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[origin]--; s.pending[origin] <= 0 {
		delete(s.pending, origin)
	}
}
