package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/message"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// plainMsgID is the message-id function written from docs/PROTOCOL.md
// alone, with encoding/json instead of package message.
func plainMsgID(m *pb.Message) string {
	var e struct {
		Sender *string `json:"sender_id"`
		ID     *string `json:"message_id"`
		Type   *string `json:"message_type"`
	}
	h := sha256.New()
	if json.Unmarshal(m.Data, &e) == nil && e.Sender != nil && *e.Sender != "" && e.ID != nil && *e.ID != "" && e.Type != nil && *e.Type != "" {
		h.Write([]byte("gsio-msgid/1\x00"))
		h.Write(binary.AppendUvarint(nil, uint64(len(*e.Sender))))
		h.Write([]byte(*e.Sender))
		h.Write([]byte(*e.ID))
	} else {
		h.Write([]byte("gsio-rawid/1\x00"))
		h.Write(m.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestMessageIDVectors(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		// The vectors of docs/PROTOCOL.md.
		{`{"message_type":"EntryAnnounce","message_id":"m-1","sender_id":"node-a","recipient_id":"","payload":{}}`,
			"09151fbb8191d42c2c7262b2d35bc4a5c1f20017e8927656155fd245be4ed7f2"},
		{`not json`, "710359a1dadf1e9ea337088e0061e470ca9edafe575f4d597f03752d5b5c2f86"},
	} {
		got := messageID([]byte(tc.data))
		if got != tc.want {
			t.Fatalf("messageID(%s) = %s, want %s", tc.data, got, tc.want)
		}
		if plain := plainMsgID(&pb.Message{Data: []byte(tc.data)}); got != plain {
			t.Fatalf("MessageID %s, written from the doc %s", got, plain)
		}
	}
	// Same (sender, id), different bytes: same id. Different sender: not.
	x := messageID([]byte(`{"message_type":"A","message_id":"1","sender_id":"s","payload":1}`))
	y := messageID([]byte(`{"sender_id":"s","message_id":"1","message_type":"B","payload":2}`))
	z := messageID([]byte(`{"message_type":"A","message_id":"1","sender_id":"s2","payload":1}`))
	if x != y || x == z {
		t.Fatalf("ids: %s %s %s", x, y, z)
	}
	// Length prefix: ("ab","c") and ("a","bc") differ.
	if envelopeID("ab", "c") == envelopeID("a", "bc") {
		t.Fatal("sender/message_id boundary is ambiguous")
	}
	if messageID([]byte("garbage")) == messageID([]byte("garbage2")) {
		t.Fatal("raw ids collide")
	}
}

// TestPlainGossipSubPeer: a plain go-libp2p GossipSub peer using the
// documented message-id function and signature policy (StrictSign, the
// pubsub default) takes part: its broadcast is delivered by the Nodes, and
// it receives theirs.
func TestPlainGossipSubPeer(t *testing.T) {
	a, b := newNode(t, "a", nil), newNode(t, "b", nil)
	connectFull(t, a, b)
	bt, _ := a.Topics()
	plain := newBareHost(t, pubsub.WithMessageIdFn(plainMsgID))
	topic := plain.join(t, bt)
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	plain.connect(t, a)
	testutil.CheckFor(t, 10*time.Second, func() error {
		if !slices.Contains(a.MeshPeers(bt), plain.ID()) || len(topic.ListPeers()) == 0 {
			return fmt.Errorf("plain peer not in a's mesh yet")
		}
		return nil
	})

	msg := []byte(`{"message_type":"NodeAnnounce","message_id":"p-1","sender_id":"plain-node","recipient_id":"","payload":{"v":1}}`)
	if err := topic.Publish(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, a, "plain-node", "p-1", 1)
	waitDelivered(t, b, "plain-node", "p-1", 1)
	// A batch (docs/PROTOCOL.md "Batches"): every message in it is delivered.
	batch := message.AppendBatch(nil, [][]byte{
		[]byte(`{"message_type":"EntryAnnounce","message_id":"p-2","sender_id":"plain-node","payload":{"v":2}}`),
		[]byte(`{"message_type":"EntryAnnounce","message_id":"p-3","sender_id":"plain-node-2","payload":[3]}`),
	})
	if err := topic.Publish(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*tnode{a, b} {
		waitDelivered(t, n, "plain-node", "p-2", 1)
		waitDelivered(t, n, "plain-node-2", "p-3", 1)
	}

	b.NodeJoined("bnode", nil)
	env := envelope(t, "EntryAnnounce", "to-plain", "bnode", "", `{"e":2}`)
	if err := b.Broadcast(env); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("plain peer did not receive b's broadcast: %v", err)
		}
		if string(m.Data) == string(env.Raw) {
			if m.GetFrom() != b.ID() {
				t.Fatalf("author %s, want b %s", m.GetFrom(), b.ID())
			}
			break
		}
	}
}

// TestSpeakForRace: a node moved to relay B, and B relays its first message
// before B's join reached C: C holds the message until the join arrives and
// then delivers it (no rejection).
func TestSpeakForRace(t *testing.T) {
	wait := func(c *Config) { c.Presence.SpeakForWait = 3 * time.Second }
	a, b, c := newNode(t, "a", wait), newNode(t, "b", wait), newNode(t, "c", wait)
	connectFull(t, a, b, c)
	a.NodeJoined("mover", nil)
	waitRemote(t, c, "mover", true, 5*time.Second)

	// mover now connects to b; b publishes its message first.
	env := envelope(t, "EntryAnnounce", "race-1", "mover", "", `{}`)
	if err := b.Broadcast(env); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the join is late (SpeakForWait is 3 s)
	b.NodeJoined("mover", nil)
	a.NodeLeft("mover")
	waitDelivered(t, c, "mover", "race-1", 1)
	waitDelivered(t, a, "mover", "race-1", 1)
	for _, n := range []*tnode{a, c} {
		if r := counterValue(n.gossip.m.validation.WithLabelValues("broadcast", "reject", "speak_for")); r != 0 {
			t.Fatalf("%s rejected %v honest messages", n.name, r)
		}
	}
}

// TestSpeakForForgery: a relay publishing for a node another relay holds,
// without ever announcing it, is rejected after SpeakForWait, and the
// rejection counts against the peer that forwarded it.
func TestSpeakForForgery(t *testing.T) {
	a, b, c := newNode(t, "a", nil), newNode(t, "b", nil), newNode(t, "c", nil)
	connectFull(t, a, b, c)
	a.NodeJoined("alice", nil)
	waitRemote(t, b, "alice", true, 5*time.Second)
	waitRemote(t, c, "alice", true, 5*time.Second)

	if err := b.Broadcast(envelope(t, "EntryAnnounce", "forged-1", "alice", "", `{}`)); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		for _, n := range []*tnode{a, c} {
			if r := counterValue(n.gossip.m.validation.WithLabelValues("broadcast", "reject", "speak_for")); r != 1 {
				return fmt.Errorf("%s: %v speak_for rejections, want 1", n.name, r)
			}
		}
		return nil
	})
	testutil.CheckFor(t, 5*time.Second, func() error {
		if s := c.gossip.peerScores()[b.ID()]; s >= 0 {
			return fmt.Errorf("c scores b %v, want < 0", s)
		}
		return nil
	})
	if a.rec.count("alice", "forged-1")+c.rec.count("alice", "forged-1") != 0 {
		t.Fatal("forged message delivered")
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
