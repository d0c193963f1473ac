package node

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// tracer is the pubsub RawTracer: it counts every drop, pubsub's and the
// components' (metric and the aggregated log line of gossip.reportDrops),
// and tracks mesh membership and pubsub's outbound streams. Pubsub calls
// it synchronously from its event loop, so each method only takes a short
// lock.
type tracer struct {
	m        *metrics
	topicTag func(string) string

	mu    sync.Mutex     // guards drops, total, mesh and out
	drops map[string]int // since the last takeDrops
	total int            // since start
	mesh  map[string]map[peer.ID]struct{}
	out   map[peer.ID]struct{} // peers pubsub has an outbound stream to
	// outbound is kicked when an outbound stream opens
	// (publisher.awaitTopicPeers).
	outbound chan struct{}
}

var _ pubsub.RawTracer = (*tracer)(nil)

func newTracer(m *metrics, network string) *tracer {
	bt, pt := broadcastTopic(network), presenceTopic(network)
	return &tracer{
		m: m,
		topicTag: func(t string) string {
			switch t {
			case bt:
				return "broadcast"
			case pt:
				return "presence"
			}
			return "other"
		},
		drops:    map[string]int{},
		mesh:     map[string]map[peer.ID]struct{}{},
		out:      map[peer.ID]struct{}{},
		outbound: make(chan struct{}, 1),
	}
}

// OnNewOutboundStream: pubsub can send to p from now on (before, an RPC
// for p is dropped: "no send queue").
func (t *tracer) OnNewOutboundStream(p peer.ID, _ protocol.ID) {
	t.mu.Lock()
	t.out[p] = struct{}{}
	t.mu.Unlock()
	select {
	case t.outbound <- struct{}{}:
	default:
	}
}

func (t *tracer) OnClosedOutboundStream(p peer.ID) {
	t.mu.Lock()
	delete(t.out, p)
	t.mu.Unlock()
}

// anyOutbound reports whether pubsub has an outbound stream to one of ps.
func (t *tracer) anyOutbound(ps []peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range ps {
		if _, ok := t.out[p]; ok {
			return true
		}
	}
	return false
}

// drop counts k dropped messages for reason.
func (t *tracer) drop(reason string, k int) {
	t.m.drops.WithLabelValues(reason).Add(float64(k))
	t.mu.Lock()
	t.drops[reason] += k
	t.total += k
	t.mu.Unlock()
}

// takeDrops returns and resets the drop counts since the last call.
func (t *tracer) takeDrops() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.drops) == 0 {
		return nil
	}
	d := t.drops
	t.drops = map[string]int{}
	return d
}

// dropped is the number of messages dropped since start.
func (t *tracer) dropped() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

func (t *tracer) meshPeers(topic string) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]peer.ID, 0, len(t.mesh[topic]))
	for p := range t.mesh[topic] {
		out = append(out, p)
	}
	return out
}

func (t *tracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.mesh[topic]
	if s == nil {
		s = map[peer.ID]struct{}{}
		t.mesh[topic] = s
	}
	s[p] = struct{}{}
}

func (t *tracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh[topic], p)
}

// removePeer forgets p's mesh membership (pubsub emits no PRUNE event
// when a peer disconnects).
func (t *tracer) removePeer(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.mesh {
		delete(s, p)
	}
}

func (t *tracer) Leave(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh, topic)
}

func (t *tracer) DropRPC(rpc *pubsub.RPC, p peer.ID) {
	k := len(rpc.GetPublish())
	if k == 0 {
		t.drop("outbound_control_dropped", 1)
		return
	}
	t.drop("outbound_queue_full", k)
}

func (t *tracer) RejectMessage(msg *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationQueueFull:
		t.drop("validate_queue_full", 1)
	case pubsub.RejectValidationThrottled:
		t.drop("validate_throttled", 1)
	case pubsub.RejectValidationFailed, pubsub.RejectValidationIgnored:
		// counted by our validators
	default:
		// signature and origin checks done by pubsub itself
		t.m.validation.WithLabelValues(t.topicTag(msg.GetTopic()), "reject", reason).Inc()
	}
}

func (t *tracer) UndeliverableMessage(msg *pubsub.Message) {
	t.drop("subscriber_too_slow", 1)
}

func (t *tracer) Join(string)                     {}
func (t *tracer) ValidateMessage(*pubsub.Message) {}
func (t *tracer) DeliverMessage(*pubsub.Message)  {}
func (t *tracer) DuplicateMessage(msg *pubsub.Message) {
	t.m.duplicates.WithLabelValues(t.topicTag(msg.GetTopic())).Inc()
}
func (t *tracer) ThrottlePeer(peer.ID) {}

// RecvRPC counts the presence bytes received over gossip (every copy).
func (t *tracer) RecvRPC(rpc *pubsub.RPC) {
	n := 0
	for _, m := range rpc.GetPublish() {
		if t.topicTag(m.GetTopic()) == "presence" {
			n += len(m.GetData())
		}
	}
	if n > 0 {
		t.m.presenceBytes.WithLabelValues("gossip").Add(float64(n))
	}
}
func (t *tracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t *tracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
