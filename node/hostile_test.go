package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
)

// bareHost is a plain go-libp2p host with plain GossipSub: not a Node.
type bareHost struct {
	host.Host
	ps     *pubsub.PubSub
	cancel context.CancelFunc
	topics map[string]*pubsub.Topic
}

func newBareHost(t *testing.T, opts ...pubsub.Option) *bareHost {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts = append([]pubsub.Option{pubsub.WithGossipSubParams(testutil.FastGossip())}, opts...)
	ps, err := pubsub.NewGossipSub(ctx, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	b := &bareHost{Host: h, ps: ps, cancel: cancel, topics: map[string]*pubsub.Topic{}}
	t.Cleanup(func() {
		for _, tp := range b.topics {
			_ = tp.Close()
		}
		cancel()
		_ = h.Close()
	})
	return b
}

func (b *bareHost) join(t *testing.T, name string) *pubsub.Topic {
	t.Helper()
	tp, err := b.ps.Join(name)
	if err != nil {
		t.Fatal(err)
	}
	b.topics[name] = tp
	return tp
}

func (b *bareHost) connect(t *testing.T, n *tnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, n.addrInfo()); err != nil {
		t.Fatal(err)
	}
}

// TestHostilePeer: a bare libp2p host joins the federation's topics and
// publishes garbage, messages without message_id, direct messages on the
// broadcast topic, forged presence (claiming nodes for another relay) and
// broadcasts for a node another relay holds. Honest relays deliver none of
// it, its score drops below zero, it is pruned from their meshes, and
// honest traffic keeps flowing.
func TestHostilePeer(t *testing.T) {
	a, b := newNode(t, "a", nil), newNode(t, "b", nil)
	connectFull(t, a, b)
	a.NodeJoined("alice", nil)
	waitRemote(t, b, "alice", true, 5*time.Second)

	bt, pt := a.Topics()
	evil := newBareHost(t, pubsub.WithMessageIdFn(pubsubMsgID))
	// Subscribed, so that it is grafted into the honest meshes.
	evilB := evil.join(t, bt)
	evilP := evil.join(t, pt)
	subB, _ := evilB.Subscribe()
	subP, _ := evilP.Subscribe()
	t.Cleanup(subB.Cancel)
	t.Cleanup(subP.Cancel)
	evil.connect(t, a)
	evil.connect(t, b)
	testutil.CheckFor(t, 10*time.Second, func() error {
		for _, n := range []*tnode{a, b} {
			if !slices.Contains(n.MeshPeers(bt), evil.ID()) {
				return fmt.Errorf("%s: evil not yet in the broadcast mesh", n.name)
			}
		}
		return nil
	})

	ctx := context.Background()
	forged, _ := json.Marshal(presenceMessage{
		Type: presenceSnapshot, Relay: b.ID().String(), Epoch: time.Now().UnixMilli() + 1000, Seq: 1,
		IntervalMS: 200, Nodes: []string{"victim"},
	})
	bad := [][]byte{
		[]byte(`{not json`),
		[]byte(`{"message_type":"EntryAnnounce","sender_id":"mallory","payload":{}}`),                              // no message_id
		[]byte(`{"message_type":"EntryAnnounce","message_id":"e-3","sender_id":"mallory","recipient_id":"alice"}`), // direct on broadcast
		[]byte(`{"message_type":"EntryAnnounce","message_id":"e-4","sender_id":"alice","payload":{}}`),             // alice is a's
		// Batches: refused as a whole when one message in them is bad.
		[]byte(`[]`),
		[]byte(`[{"message_type":"EntryAnnounce","message_id":"e-5","sender_id":"mallory"},{"message_type":"EntryAnnounce","sender_id":"mallory"}]`),
		[]byte(`[{"message_type":"EntryAnnounce","message_id":"e-6","sender_id":"mallory"},{"message_type":"EntryAnnounce","message_id":"e-7","sender_id":"alice"}]`),
		[]byte(`[{"message_type":"EntryAnnounce","message_id":"e-8","sender_id":"mallory"},`),
		[]byte(`[{"message_type":"EntryAnnounce","message_id":"e-9","sender_id":"mallory"},7]`),
	}
	for _, d := range bad {
		if err := evilB.Publish(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := evilP.Publish(ctx, forged); err != nil {
		t.Fatal(err)
	}
	if err := evilP.Publish(ctx, []byte(`["garbage"]`)); err != nil {
		t.Fatal(err)
	}

	testutil.CheckFor(t, 10*time.Second, func() error {
		for _, n := range []*tnode{a, b} {
			s, ok := n.gossip.peerScores()[evil.ID()]
			if !ok || s >= 0 {
				return fmt.Errorf("%s: evil's score %v (known %v), want < 0", n.name, s, ok)
			}
			if slices.Contains(n.MeshPeers(bt), evil.ID()) || slices.Contains(n.MeshPeers(pt), evil.ID()) {
				return fmt.Errorf("%s: evil still in the mesh", n.name)
			}
		}
		return nil
	})
	t.Logf("evil's scores: a %.1f, b %.1f", a.gossip.peerScores()[evil.ID()], b.gossip.peerScores()[evil.ID()])

	// The forged "alice" broadcast is held for SpeakForWait, then rejected.
	testutil.Stays(t, testConfig(t).Presence.SpeakForWait+500*time.Millisecond, func() error {
		if a.rec.total() != 0 || b.rec.total() != 0 {
			return fmt.Errorf("honest relays delivered hostile messages: a %d, b %d", a.rec.total(), b.rec.total())
		}
		return nil
	})
	for _, n := range []*tnode{a, b} {
		if hasRemote(n, "victim") {
			t.Fatalf("%s accepted forged presence", n.name)
		}
	}
	// Honest traffic keeps flowing.
	testBroadcastOnce(t, a, b)
	testBroadcastOnce(t, b, a)
}
