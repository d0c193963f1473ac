package node

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// The cost of GossipSub's StrictSign per message, done the way pubsub does
// it (sign.go): protobuf-encode the message without signature, prefix
// "libp2p-pubsub:", Ed25519 sign; to verify, clone, re-encode, extract the
// key from the author's peer id, Ed25519 verify. Numbers are recorded in
// docs/PROTOCOL.md.

func benchMessage(b *testing.B, size int) (*pb.Message, crypto.PrivKey) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	topic := broadcastTopic("gsio")
	payload := `"` + strings.Repeat("x", max(size-120, 1)) + `"`
	data := []byte(`{"message_type":"EntryAnnounce","message_id":"0d5e8a4e-6a43-4c1e-9d38-8f1f0b6f7c11","sender_id":"node-a","payload":` + payload + `}`)
	return &pb.Message{Data: data, Topic: &topic, From: []byte(id), Seqno: []byte{0, 0, 0, 0, 0, 0, 0, 1}}, key
}

func signPB(key crypto.PrivKey, m *pb.Message) error {
	bytes, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	sig, err := key.Sign(append([]byte(pubsub.SignPrefix), bytes...))
	if err != nil {
		return err
	}
	m.Signature = sig
	return nil
}

func verifyPB(m *pb.Message) error {
	pid, err := peer.IDFromBytes(m.From)
	if err != nil {
		return err
	}
	pk, err := pid.ExtractPublicKey()
	if err != nil {
		return err
	}
	xm := proto.CloneOf(m)
	xm.Signature, xm.Key = nil, nil
	bytes, err := proto.Marshal(xm)
	if err != nil {
		return err
	}
	ok, err := pk.Verify(append([]byte(pubsub.SignPrefix), bytes...), m.Signature)
	if err != nil || !ok {
		return fmt.Errorf("invalid signature: %v", err)
	}
	return nil
}

var benchSizes = []int{256, 4 << 10, 64 << 10, 1 << 20}

func BenchmarkSign(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			m, key := benchMessage(b, size)
			b.SetBytes(int64(len(m.Data)))
			for b.Loop() {
				m.Signature = nil
				if err := signPB(key, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			m, key := benchMessage(b, size)
			if err := signPB(key, m); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(m.Data)))
			for b.Loop() {
				if err := verifyPB(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMessageID is the per-copy cost of the message-id function
// (computed for every copy received, duplicates included).
func BenchmarkMessageID(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			m, _ := benchMessage(b, size)
			b.SetBytes(int64(len(m.Data)))
			for b.Loop() {
				_ = pubsubMsgID(m)
			}
		})
	}
}

// BenchmarkBroadcast measures end-to-end broadcast throughput between two
// relays on loopback, with and without signatures, batched (the default)
// and one gossip message per broadcast.
func BenchmarkBroadcast(b *testing.B) {
	for _, c := range []struct {
		sign  bool
		batch int
	}{{true, 256}, {true, 1}, {false, 256}, {false, 1}} {
		sign := c.sign
		b.Run(fmt.Sprintf("sign=%v/batch=%d", c.sign, c.batch), func(b *testing.B) {
			mod := func(cfg *Config) { cfg.Gossip.Sign, cfg.Publish.BatchMax = sign, c.batch }
			x, y := newNode(b, "x", mod), newNode(b, "y", mod)
			connectFull(b, x, y)
			x.NodeJoined("bench", nil)
			waitRemote(b, y, "bench", true, 5*time.Second)
			raw := envelope(b, "EntryAnnounce", "id", "bench", "", `{"entry":"`+strings.Repeat("e", 200)+`"}`)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				env := *raw
				env.SetID(fmt.Sprintf("b-%d", i))
				for x.Broadcast(&env) == errBackpressure {
					time.Sleep(time.Millisecond)
				}
			}
			// Wait for the last message; give up once nothing arrived for
			// 2 s (a message dropped by a full pubsub queue never comes).
			last, lastAt := 0, time.Now()
			for got := y.rec.total(); got < b.N && time.Since(lastAt) < 2*time.Second; got = y.rec.total() {
				if got != last {
					last, lastAt = got, time.Now()
				}
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			if lost := b.N - y.rec.total(); lost > 0 {
				elapsed -= 2 * time.Second
				b.ReportMetric(float64(lost), "lost")
				b.ReportMetric(float64(x.gossip.tracer.dropped()+y.gossip.tracer.dropped()), "drops")
			}
			b.ReportMetric(float64(y.rec.total())/elapsed.Seconds(), "msgs/s")
		})
	}
}
