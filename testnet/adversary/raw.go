package adversary

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// Raw GossipSub: messages signed ahead of time (Signed, SignAll), written
// many to an RPC on the peer's own GossipSub stream (OpenRaw).

// Signed builds a message on topic signed by k as GossipSub's StrictSign
// does (docs/PROTOCOL.md 2.2).
func Signed(k Key, topic string, data []byte) (*pb.Message, error) {
	seq := make([]byte, 8)
	_, _ = rand.Read(seq)
	m := &pb.Message{Data: data, Topic: proto.String(topic), From: []byte(k.ID), Seqno: seq}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	sig, err := k.Priv.Sign(append([]byte(pubsub.SignPrefix), b...))
	if err != nil {
		return nil, err
	}
	m.Signature = sig
	return m, nil
}

// signEach signs data[i] as keys[i] on topic, on all cores but one (the
// relays under attack may run in the same process).
func signEach(keys []Key, topic string, data [][]byte) ([]*pb.Message, error) {
	out := make([]*pb.Message, len(data))
	errs := make([]error, len(data))
	var wg sync.WaitGroup
	w := max(runtime.GOMAXPROCS(0)-1, 1)
	for g := range w {
		wg.Go(func() {
			for i := g; i < len(data); i += w {
				out[i], errs[i] = Signed(keys[i], topic, data[i])
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Raw is an open GossipSub stream to one relay: the peer's own, the one
// the relay reads its RPCs from (a second one would replace the first).
type Raw struct{ s network.Stream }

// OpenRaw opens a GossipSub stream to target. Most attacks use the peer's
// one stream per relay (withRaw) instead.
func (p *Peer) OpenRaw(ctx context.Context, target peer.ID) (*Raw, error) {
	s, err := p.NewStream(ctx, target, MeshSub)
	if err != nil {
		return nil, fmt.Errorf("gossipsub stream: %w", err)
	}
	return &Raw{s}, nil
}

// withRaw runs f with the peer's stream to target, opened on first use,
// one f at a time; a stream f failed on is dropped (the next f opens
// another).
func (p *Peer) withRaw(ctx context.Context, target peer.ID, f func(*Raw) error) error {
	p.rawMu.Lock()
	defer p.rawMu.Unlock()
	r := p.raw[target]
	if r == nil {
		var err error
		if r, err = p.OpenRaw(ctx, target); err != nil {
			return err
		}
		p.raw[target] = r
	}
	if err := f(r); err != nil {
		_ = r.s.Reset()
		delete(p.raw, target)
		return err
	}
	return nil
}

// Close closes the stream.
func (r *Raw) Close() error { return r.s.Close() }

// Send writes one RPC.
func (r *Raw) Send(rpc *pb.RPC) error {
	b, err := proto.Marshal(rpc)
	if err != nil {
		return err
	}
	_ = r.s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.s.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...)); err != nil {
		return fmt.Errorf("write rpc: %w", err)
	}
	return nil
}

// Publish writes msgs, perRPC to an RPC.
func (r *Raw) Publish(msgs []*pb.Message, perRPC int) error {
	for len(msgs) > 0 {
		n := min(perRPC, len(msgs))
		if err := r.Send(&pb.RPC{Publish: msgs[:n]}); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}
