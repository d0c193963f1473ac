package adversary

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gsio-net/gsio-relay/message"
)

// Peer is one hostile libp2p peer: a bare go-libp2p host (TCP on
// 127.0.0.1 unless told otherwise) that speaks GossipSub raw. It answers
// a relay's GossipSub stream (discarding what it reads), so that the
// relay takes it for a GossipSub peer and scores it, and writes its own
// RPCs on a stream of its own (OpenRaw): pre-signed messages, many to an
// RPC, as fast as the connection takes them, without a pubsub of its own
// pacing or checking them.
type Peer struct {
	host.Host
	Key Key // the peer's own identity

	mu      sync.Mutex
	gossip  map[peer.ID]bool // relays whose GossipSub stream reached us
	arrived chan struct{}    // kicked when one does

	rawMu sync.Mutex // one writer of the raw streams at a time
	raw   map[peer.ID]*Raw
}

// Config is how a Peer is built.
type Config struct {
	// Listen are its listen multiaddrs. Default /ip4/127.0.0.1/tcp/0.
	Listen []string
	// Options are more libp2p options (a swarm key, a gater).
	Options []libp2p.Option
}

// New starts a Peer with a fresh key.
func New(cfg Config) (*Peer, error) {
	keys, err := NewKeys(1)
	if err != nil {
		return nil, err
	}
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	opts := append([]libp2p.Option{libp2p.Identity(keys[0].Priv), libp2p.ListenAddrStrings(listen...),
		libp2p.DisableMetrics(), libp2p.DisableRelay(), libp2p.UserAgent("gsio-adversary")}, cfg.Options...)
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("adversary host: %w", err)
	}
	p := &Peer{Host: h, Key: keys[0], gossip: map[peer.ID]bool{}, arrived: make(chan struct{}, 1), raw: map[peer.ID]*Raw{}}
	h.SetStreamHandler(MeshSub, func(s network.Stream) {
		p.mu.Lock()
		p.gossip[s.Conn().RemotePeer()] = true
		p.mu.Unlock()
		select {
		case p.arrived <- struct{}{}:
		default:
		}
		_, _ = io.Copy(io.Discard, s)
		_ = s.Reset()
	})
	return p, nil
}

// Connect dials a relay.
func (p *Peer) Connect(ctx context.Context, ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return p.Host.Connect(ctx, ai)
}

// WaitGossip waits until relay r has opened its GossipSub stream to the
// peer: r's pubsub then counts the peer's messages toward its score.
func (p *Peer) WaitGossip(ctx context.Context, r peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		p.mu.Lock()
		ok := p.gossip[r]
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-p.arrived:
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("relay %s opened no GossipSub stream: %w", r, ctx.Err())
		}
	}
}

// Key is an identity: the peer's own, or a throwaway author it signs
// messages as (one that never connects).
type Key struct {
	Priv crypto.PrivKey
	ID   peer.ID
}

// NewKeys makes n Ed25519 identities.
func NewKeys(n int) ([]Key, error) {
	out := make([]Key, n)
	for i := range out {
		priv, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return nil, err
		}
		id, err := peer.IDFromPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		out[i] = Key{priv, id}
	}
	return out, nil
}

// MsgID is the federation's GossipSub message id (docs/PROTOCOL.md 2.1),
// written from the specification as another implementation would.
func MsgID(m *pb.Message) string {
	data := m.GetData()
	h := sha256.New()
	if env, err := message.Parse(data); err == nil && env.ID != "" {
		var l [binary.MaxVarintLen64]byte
		h.Write([]byte("gsio-msgid/1\x00"))
		h.Write(l[:binary.PutUvarint(l[:], uint64(len(env.Sender)))])
		h.Write([]byte(env.Sender))
		h.Write([]byte(env.ID))
	} else {
		h.Write([]byte("gsio-rawid/1\x00"))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}
