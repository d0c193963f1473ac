package node

import (
	"context"
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
	topic := BroadcastTopic("gsio")
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
				_ = PubSubMsgID(m)
			}
		})
	}
}

// BenchmarkBroadcast measures end-to-end broadcast throughput between two
// relays on loopback, with and without signatures.
func BenchmarkBroadcast(b *testing.B) {
	for _, sign := range []bool{true, false} {
		b.Run(fmt.Sprintf("sign=%v", sign), func(b *testing.B) {
			mod := func(c *Config) { c.NoSign = !sign }
			x, y := newNode(b, "x", mod), newNode(b, "y", mod)
			connectFull(b, x, y)
			x.NodeJoined("bench")
			waitRemote(b, y, "bench", true, 5*time.Second)
			raw := envelope(b, "EntryAnnounce", "id", "bench", "", `{"entry":"`+strings.Repeat("e", 200)+`"}`)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				env := *raw
				env.SetID(fmt.Sprintf("b-%d", i))
				for x.Broadcast(&env) == ErrBackpressure {
					time.Sleep(time.Millisecond)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for y.rec.total() < b.N && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
