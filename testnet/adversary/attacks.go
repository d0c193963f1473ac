package adversary

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/gsio-net/gsio-relay/message"
)

// Wire names of the federation (docs/PROTOCOL.md), for network n.
func BroadcastTopic(n string) string { return "gsio/" + n + "/broadcast/1" }
func PresenceTopic(n string) string  { return "gsio/" + n + "/presence/1" }

const (
	// DirectProtocol is the direct stream protocol.
	DirectProtocol = protocol.ID("/gsio/direct/1.0.0")
	// MeshSub is the GossipSub protocol the raw RPC attacks speak.
	MeshSub = protocol.ID("/meshsub/1.1.0")
	// maxPresenceNodes is the most node ids one presence message may carry.
	maxPresenceNodes = 10000
	// presenceBytes keeps one presence message well inside 1 MiB.
	presenceBytes = 900 << 10
)

// Presence is the presence message (docs/PROTOCOL.md 5.1).
type Presence struct {
	Type       string   `json:"type"`
	Relay      string   `json:"relay"`
	Epoch      int64    `json:"epoch"`
	Seq        uint64   `json:"seq"`
	IntervalMS int64    `json:"interval_ms"`
	Addrs      []string `json:"addrs,omitempty"`
	Nodes      []string `json:"nodes"`
	Part       int      `json:"part,omitempty"`
	Parts      int      `json:"parts,omitempty"`
}

// Snapshot returns the presence snapshot of relay k announcing nodes (in
// as many parts as needed) and addrs, with interval intervalMS (relays
// honour 50 ms to 8 s: the entries live three intervals without a
// refresh).
func Snapshot(k Key, epoch int64, seq uint64, intervalMS int64, addrs, nodes []string) [][]byte {
	var parts [][]string
	for len(nodes) > 0 || len(parts) == 0 {
		n, size := 0, 0
		for n < len(nodes) && n < maxPresenceNodes && size+len(nodes[n])+3 < presenceBytes {
			size += len(nodes[n]) + 3
			n++
		}
		parts = append(parts, nodes[:n])
		nodes = nodes[n:]
	}
	out := make([][]byte, len(parts))
	for i, ns := range parts {
		p := Presence{Type: "snapshot", Relay: k.ID.String(), Epoch: epoch, Seq: seq, IntervalMS: intervalMS, Addrs: addrs, Nodes: ns}
		if len(parts) > 1 {
			p.Part, p.Parts = i, len(parts)
		}
		out[i], _ = json.Marshal(p)
	}
	return out
}

// FillPresence makes each of keys a relay announcing perKey node ids
// (prefix-<key>-<n>, padded to idLen bytes when idLen is larger) with
// interval interval, written to relay target: the directory-filling
// attack. Then, until ctx ends, it keeps the claims alive as cheaply as
// a relay can: every interval, an empty join of each key (any presence
// message of the epoch refreshes a relay; the joins' seqs stay below the
// snapshot's, so that one overtaking the snapshot does not make the
// relays drop it as stale). It returns once the snapshots
// are written, with a channel that is closed when the refreshes have
// ended (carrying the first error, if any).
func FillPresence(ctx context.Context, p *Peer, target peer.ID, network string, keys []Key, perKey, idLen int, prefix string, interval time.Duration) (<-chan error, error) {
	var data [][]byte
	var signers []Key
	epoch := time.Now().UnixMilli()
	for i, k := range keys {
		ids := make([]string, perKey)
		for j := range ids {
			ids[j] = pad(fmt.Sprintf("%s-%d-%d", prefix, i, j), idLen)
		}
		for _, m := range Snapshot(k, epoch, 1<<40, interval.Milliseconds(), nil, ids) {
			data = append(data, m)
			signers = append(signers, k)
		}
	}
	topic := PresenceTopic(network)
	if err := publishAs(ctx, p, target, topic, signers, data, 1); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for seq := uint64(1); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			data := make([][]byte, len(keys))
			for i, k := range keys {
				data[i], _ = json.Marshal(Presence{Type: "join", Relay: k.ID.String(), Epoch: epoch, Seq: seq,
					IntervalMS: interval.Milliseconds(), Nodes: []string{}})
			}
			if err := publishAs(ctx, p, target, topic, keys, data, 64); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
	}()
	return done, nil
}

// publishAs signs data[i] as signers[i] (cycling) and writes them to
// target, perRPC to an RPC.
func publishAs(ctx context.Context, p *Peer, target peer.ID, topic string, signers []Key, data [][]byte, perRPC int) error {
	ks := make([]Key, len(data))
	for i := range ks {
		ks[i] = signers[i%len(signers)]
	}
	msgs, err := signEach(ks, topic, data)
	if err != nil {
		return err
	}
	return p.Write(ctx, target, msgs, perRPC)
}

// Write writes signed messages to target on the peer's raw GossipSub
// stream, perRPC to an RPC.
func (p *Peer) Write(ctx context.Context, target peer.ID, msgs []*pb.Message, perRPC int) error {
	return p.withRaw(ctx, target, func(r *Raw) error { return r.Publish(msgs, perRPC) })
}

func pad(s string, n int) string {
	for len(s) < n {
		s += "x"
	}
	return s
}

// Broadcast is a GSIO broadcast message.
func Broadcast(sender, id string) []byte {
	return message.Build("EntryAnnounce", id, sender, "", []byte(`{"n":1}`))
}

// HoldFlood writes to target, signed by each of keys, perKey broadcasts
// whose senders are nodes real relays hold (senders, in turn): a relay
// that knows those nodes must hold every one of them for the speak-for
// wait. All are signed before the first is written.
func HoldFlood(ctx context.Context, p *Peer, target peer.ID, network string, keys []Key, perKey int, senders []string) error {
	msgs, err := HoldFloodMessages(network, keys, perKey, senders)
	if err != nil {
		return err
	}
	return p.Write(ctx, target, msgs, 256)
}

// HoldFloodMessages are HoldFlood's messages, signed, for Write.
func HoldFloodMessages(network string, keys []Key, perKey int, senders []string) ([]*pb.Message, error) {
	tag := randHex(4)
	var data [][]byte
	var signers []Key
	for j := range perKey {
		for i, k := range keys {
			data = append(data, Broadcast(senders[(i*perKey+j)%len(senders)], fmt.Sprintf("hold-%s-%d-%d", tag, i, j)))
			signers = append(signers, k)
		}
	}
	return signEach(signers, BroadcastTopic(network), data)
}

// Flood writes to target, as the peer itself, batches of perBatch
// broadcasts from random sender ids nobody holds, as fast as the
// connection takes them (all signed first). It returns the broadcasts
// written.
func Flood(ctx context.Context, p *Peer, target peer.ID, network string, batches, perBatch int) (int, error) {
	tag := randHex(4)
	msgs := make([][]byte, perBatch)
	data := make([][]byte, batches)
	for b := range batches {
		for i := range msgs {
			msgs[i] = Broadcast(fmt.Sprintf("flood-%s-%d", tag, (b*perBatch+i)%997), fmt.Sprintf("f-%s-%d-%d", tag, b, i))
		}
		data[b] = msgs[0]
		if perBatch > 1 {
			data[b] = message.AppendBatch(nil, msgs)
		}
	}
	if err := publishAs(ctx, p, target, BroadcastTopic(network), []Key{p.Key}, data, 1); err != nil {
		return 0, err
	}
	return batches * perBatch, nil
}

// AppendFrame appends one /gsio/direct/1.0.0 frame (docs/PROTOCOL.md 6.1).
func AppendFrame(b []byte, kind byte, body []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(body)+1))
	b = append(b, kind)
	return append(b, body...)
}

// DirectUnknown starts n throwaway peers (each its own key), each of which
// connects to target and sends one direct message for recipient, a node
// nobody holds: the relay answers each with a NACK. It returns the peers,
// still connected; the caller closes them.
func DirectUnknown(ctx context.Context, target peer.AddrInfo, n int, recipient string) ([]*Peer, error) {
	var out []*Peer
	for i := range n {
		p, err := New(Config{})
		if err != nil {
			return out, err
		}
		out = append(out, p)
		if err := p.Connect(ctx, target); err != nil {
			return out, err
		}
		s, err := p.NewStream(ctx, target.ID, DirectProtocol)
		if err != nil {
			return out, fmt.Errorf("direct stream: %w", err)
		}
		body := message.Build("DirectPing", fmt.Sprintf("d-%d", i), fmt.Sprintf("drifter-%s", p.ID()), recipient, []byte(`{}`))
		if _, err := s.Write(AppendFrame(nil, 0x01, body)); err != nil {
			_ = s.Reset()
			return out, fmt.Errorf("direct write: %w", err)
		}
		_ = s.Close()
	}
	return out, nil
}

// SubscribeMany announces subscriptions to n topics to target on the
// peer's raw GossipSub stream, perRPC per RPC (a GossipSub hello may carry
// them all). It returns the names of the first and the last topic.
func SubscribeMany(ctx context.Context, p *Peer, target peer.ID, n, perRPC int) (first, last string, err error) {
	tag := randHex(4)
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("junk/%s/%d", tag, i)
	}
	return topics[0], topics[n-1], p.Subscribe(ctx, target, topics, perRPC)
}

// Subscribe announces subscriptions to topics to target on the peer's raw
// GossipSub stream, perRPC per RPC. RPCs on one stream are handled in
// order: once target lists the peer on the last topic (one it allows),
// it has handled every earlier one.
func (p *Peer) Subscribe(ctx context.Context, target peer.ID, topics []string, perRPC int) error {
	return p.withRaw(ctx, target, func(r *Raw) error {
		for len(topics) > 0 {
			var rpc pb.RPC
			for _, t := range topics[:min(perRPC, len(topics))] {
				rpc.Subscriptions = append(rpc.Subscriptions, &pb.RPC_SubOpts{Subscribe: proto.Bool(true), Topicid: proto.String(t)})
			}
			topics = topics[min(perRPC, len(topics)):]
			if err := r.Send(&rpc); err != nil {
				return err
			}
		}
		return nil
	})
}

// AnnounceAddrs makes k a relay holding nodes whose presence announces
// addrs (any multiaddrs: loopback, link-local, a cloud metadata service),
// written to relay target, so that a relay routing a direct message to
// one of nodes dials them.
func AnnounceAddrs(ctx context.Context, p *Peer, target peer.ID, network string, k Key, addrs, nodes []string) error {
	return publishAs(ctx, p, target, PresenceTopic(network), []Key{k},
		Snapshot(k, time.Now().UnixMilli(), 1, 8000, addrs, nodes), 1)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
