package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// nodeKey is a test node's Ed25519 key (seed bytes first, first+1, …).
func nodeKey(first byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = first + byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// proofFor is the proof key k's node gives relay n at ts.
func proofFor(n *tnode, k ed25519.PrivateKey, ts time.Time) (string, *nodeauth.Proof) {
	c := nodeauth.Challenge{Relay: n.ID().String(), Nonce: nodeauth.NewNonce()}
	id, p := c.Answer(k, ts)
	return id, &p
}

// TestKeyIDPresenceClaims: a hostile federation member (a bare libp2p host
// with plain GossipSub, signing its own presence) claims a key id that an
// honest relay holds: without a proof, with the honest relay's proof, and
// with a forged one. None of its claims counts: direct messages for the
// key id all reach the honest holder, none is even attempted towards the
// hostile peer, and its broadcasts in the key id's name are rejected.
func TestKeyIDPresenceClaims(t *testing.T) {
	a, b := newNode(t, "a", nil), newNode(t, "b", nil)
	connectFull(t, a, b)
	a.NodeJoined("someone", nil) // the sender of a's direct messages
	k := nodeKey(1)
	kid, proof := proofFor(b, k, time.Now())
	b.NodeJoined(kid, proof)
	waitRemote(t, a, kid, true, 5*time.Second)
	waitRemote(t, b, "someone", true, 5*time.Second)

	bt, pt := a.Topics()
	evil := newBareHost(t, pubsub.WithMessageIdFn(pubsubMsgID))
	var directStreams atomic.Int64
	evil.SetStreamHandler(DirectProtocol, func(s network.Stream) { directStreams.Add(1); _ = s.Reset() })
	evilB, evilP := evil.join(t, bt), evil.join(t, pt)
	subB, _ := evilB.Subscribe()
	subP, _ := evilP.Subscribe()
	t.Cleanup(subB.Cancel)
	t.Cleanup(subP.Cancel)
	evil.connect(t, a)
	testutil.CheckFor(t, 10*time.Second, func() error {
		if !slices.Contains(a.MeshPeers(pt), evil.ID()) {
			return fmt.Errorf("evil not yet in a's presence mesh")
		}
		return nil
	})

	_, forged := proofFor(a, nodeKey(9), time.Now().Add(time.Minute)) // another key's signature
	forged.Relay = evil.ID().String()
	claims := []map[string]nodeauth.Proof{
		nil,            // no proof
		{kid: *proof},  // b's proof, replayed by another relay
		{kid: *forged}, // a proof for evil, signed by the wrong key
		{kid: {Relay: evil.ID().String(), Nonce: proof.Nonce, TS: time.Now().Add(time.Hour).UnixMilli(), Sig: proof.Sig}},
	}
	epoch := time.Now().UnixMilli()
	// One claim at a time, each until a has judged it: a gossip message
	// of a peer that just joined can be lost to a busy machine, and the
	// attacker simply says it again (with the next seq).
	seq := uint64(0)
	for i, pr := range claims {
		base := promtest.ToFloat64(a.presence.m.unproven)
		publish := func() {
			seq++
			msg, _ := json.Marshal(presenceMessage{
				Type: presenceSnapshot, Relay: evil.ID().String(), Epoch: epoch, Seq: seq,
				IntervalMS: 100, Nodes: []string{kid, "evil-node"}, Proofs: pr,
			})
			if err := evilP.Publish(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
		}
		publish()
		last := time.Now()
		testutil.CheckFor(t, 10*time.Second, func() error {
			if promtest.ToFloat64(a.presence.m.unproven) > base {
				return nil
			}
			if time.Since(last) > time.Second {
				publish() // said again, once a second
				last = time.Now()
			}
			return fmt.Errorf("claim %d not judged by a yet", i)
		})
	}
	// The hostile relay is in a's directory (its plain node is), but its
	// key-id claims are not.
	testutil.CheckFor(t, 5*time.Second, func() error {
		if !slices.Contains(a.presence.dir.holdersOf("evil-node"), evil.ID()) {
			return fmt.Errorf("evil's plain claim not applied yet")
		}
		return nil
	})
	if h := a.presence.dir.holdersOf(kid); !slices.Equal(h, []peer.ID{b.ID()}) {
		t.Fatalf("holders of the key id at a: %v, want only b %v", h, b.ID())
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := promtest.ToFloat64(a.presence.m.unproven); n < float64(len(claims)) {
			return fmt.Errorf("unproven claims counted %v, want at least %d", n, len(claims))
		}
		return nil
	})
	if h := a.presence.dir.holdersOf(kid); !slices.Equal(h, []peer.ID{b.ID()}) {
		t.Fatalf("holders of the key id at a after every claim: %v, want only b", h)
	}

	// 100 direct messages for the key id from a: all reach b.
	for i := range 100 {
		if !a.Direct(envelope(t, "EntryRequest", fmt.Sprint("d", i), "someone", kid, `{}`)) {
			t.Fatalf("direct %d: no holder", i)
		}
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := b.rec.total(); n != 100 {
			return fmt.Errorf("b got %d of 100 direct messages for the key id", n)
		}
		return nil
	})
	if n := directStreams.Load(); n != 0 {
		t.Fatalf("a opened %d direct streams to the hostile peer", n)
	}

	// A broadcast in the key id's name from the hostile peer is rejected
	// (it holds no proof; a plain peer never speaks for a key id), while
	// the honest holder's goes through.
	bad, _ := json.Marshal(map[string]any{"message_type": "EntryAnnounce", "message_id": "forged-1", "sender_id": kid, "payload": map[string]any{}})
	if err := evilB.Publish(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"RelayError", "RelayAuthOk"} {
		fake, _ := json.Marshal(map[string]any{"message_type": typ, "message_id": "f-" + typ, "sender_id": "relay", "payload": map[string]any{}})
		_ = evilB.Publish(context.Background(), fake)
	}
	if err := b.Broadcast(envelope(t, "EntryAnnounce", "honest-1", kid, "", `{}`)); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, a, kid, "honest-1", 1)
	testutil.Stays(t, testConfig(t).Presence.SpeakForWait+300*time.Millisecond, func() error {
		for _, id := range []string{"forged-1", "f-RelayError", "f-RelayAuthOk"} {
			if a.rec.count(kid, id)+a.rec.count("relay", id) != 0 {
				return fmt.Errorf("a delivered hostile broadcast %s", id)
			}
		}
		return nil
	})
}

// TestKeyIDNewestProofWins: a node that moved from relay b to relay c is
// routed to c (its newer proof), even while b still claims it.
func TestKeyIDNewestProofWins(t *testing.T) {
	a, b, c := newNode(t, "a", nil), newNode(t, "b", nil), newNode(t, "c", nil)
	connectFull(t, a, b, c)
	a.NodeJoined("someone", nil)
	k := nodeKey(3)
	kid, older := proofFor(b, k, time.Now().Add(-time.Minute))
	_, newer := proofFor(c, k, time.Now())
	b.NodeJoined(kid, older)
	c.NodeJoined(kid, newer)
	waitRemote(t, c, "someone", true, 5*time.Second)
	testutil.CheckFor(t, 5*time.Second, func() error {
		if h := a.presence.dir.holdersOf(kid); !slices.Equal(h, []peer.ID{c.ID()}) {
			return fmt.Errorf("holders %v, want only c (newest proof)", h)
		}
		return nil
	})
	for i := range 20 {
		a.Direct(envelope(t, "EntryRequest", fmt.Sprint("n", i), "someone", kid, `{}`))
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if c.rec.total() != 20 {
			return fmt.Errorf("c got %d of 20", c.rec.total())
		}
		return nil
	})
	if b.rec.total() != 0 {
		t.Fatalf("b, which holds an older proof, got %d direct messages", b.rec.total())
	}
}
