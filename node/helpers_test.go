package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/message"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-libp2p and quic-go start a few process-wide goroutines once.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		// An AutoNAT v2 dial-back request (between relays with public
		// addresses: TestHolePunching) is served by a stream handler that
		// sleeps up to 3 s against amplification attacks, and is not
		// stopped by closing the host; it ends on its own.
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/protocol/autonatv2.(*server).serveDialRequest"),
	)
}

// testConfig is a loopback TCP config with a short presence interval.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Host.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Presence.Interval = 200 * time.Millisecond
	cfg.Presence.SpeakForWait = time.Second
	cfg.Discovery.BootstrapBackoffMin = 100 * time.Millisecond
	cfg.Discovery.BootstrapBackoffMax = time.Second
	cfg.Gossip.ScoreInspectInterval = 100 * time.Millisecond
	cfg.Presence.AllowPrivateAddrs = true // relays on loopback dial each other's presence addresses
	return cfg
}

// recorder is a Receiver that records what it is given.
type recorder struct {
	mu      sync.Mutex
	got     []message.Envelope
	undeliv []undeliverable
}

func (r *recorder) Deliver(env *message.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, *env)
}

func (r *recorder) Learned(env *message.Envelope) { r.Deliver(env) }

func (r *recorder) Undeliverable(sender, messageID, recipient string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.undeliv = append(r.undeliv, undeliverable{sender, messageID, recipient})
}

// count returns how many deliveries have (sender, id).
func (r *recorder) count(sender, id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := 0
	for _, e := range r.got {
		if e.Sender == sender && e.ID == id {
			k++
		}
	}
	return k
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *recorder) undeliverables() []undeliverable {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.undeliv)
}

// tnode is a started Node with its recorder.
type tnode struct {
	*Node
	rec  *recorder
	name string
}

// newNode starts a Node with testConfig changed by mod; it is closed at
// the end of the test.
func newNode(t testing.TB, name string, mod func(*Config)) *tnode {
	t.Helper()
	cfg := testConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	return startNode(t, name, cfg)
}

// startNode starts a Node with cfg and the test logger and gossip
// parameters, then opts.
func startNode(t testing.TB, name string, cfg Config, opts ...Option) *tnode {
	t.Helper()
	opts = append([]Option{WithLogger(testutil.Logger().With("name", name)), WithGossipSubParams(testutil.FastGossip())}, opts...)
	n, err := New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("New %s: %v", name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	rec := &recorder{}
	if err := n.Start(rec); err != nil {
		t.Fatalf("Start %s: %v", name, err)
	}
	return &tnode{Node: n, rec: rec, name: name}
}

// Host is the node's libp2p host.
func (n *tnode) Host() host.Host { return n.host }

// addrInfo is how another host dials n.
func (n *tnode) addrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}
}

func connect(t testing.TB, a, b *tnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Host().Connect(ctx, b.addrInfo()); err != nil {
		t.Fatalf("connect %s -> %s: %v", a.name, b.name, err)
	}
}

// Topologies, like pubsub's connectAll/sparseConnect.
func connectFull(t testing.TB, ns ...*tnode) {
	for i := range ns {
		for j := i + 1; j < len(ns); j++ {
			connect(t, ns[i], ns[j])
		}
	}
	waitMesh(t, ns...)
}

func connectLine(t testing.TB, ns ...*tnode) {
	for i := 0; i+1 < len(ns); i++ {
		connect(t, ns[i], ns[i+1])
	}
	waitMesh(t, ns...)
}

func connectStar(t testing.TB, hub *tnode, leaves ...*tnode) {
	for _, l := range leaves {
		connect(t, l, hub)
	}
	waitMesh(t, append([]*tnode{hub}, leaves...)...)
}

// waitMesh waits until every node has each of its connected peers among
// nodes in its mesh of both topics (our topologies are smaller than D),
// and is connected to at least one of them.
func waitMesh(t testing.TB, ns ...*tnode) {
	t.Helper()
	ids := map[peer.ID]bool{}
	for _, n := range ns {
		ids[n.ID()] = true
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		for _, n := range ns {
			bt, pt := n.Topics()
			linked := 0
			for _, p := range n.Host().Network().Peers() {
				if !ids[p] {
					continue
				}
				linked++
				for _, topic := range []string{bt, pt} {
					if !slices.Contains(n.MeshPeers(topic), p) {
						return fmt.Errorf("%s: %s not in mesh of %s", n.name, p, topic)
					}
				}
			}
			if linked == 0 && len(ns) > 1 {
				return fmt.Errorf("%s: not connected to any of the others", n.name)
			}
		}
		return nil
	})
}

// envelope builds a GSIO message.
func envelope(t testing.TB, typ, id, sender, recipient, payload string) *message.Envelope {
	t.Helper()
	env, err := message.Parse(message.Build(typ, id, sender, recipient, []byte(payload)))
	if err != nil {
		t.Fatal(err)
	}
	return &env
}

// waitDelivered waits until r has exactly want deliveries of (sender, id).
func waitDelivered(t testing.TB, n *tnode, sender, id string, want int) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if got := n.rec.count(sender, id); got != want {
			return fmt.Errorf("%s: %d deliveries of (%s, %s), want %d", n.name, got, sender, id, want)
		}
		return nil
	})
}

// hasRemote reports whether n lists node among its remote nodes.
func hasRemote(n *tnode, node string) bool {
	return slices.Contains(n.RemoteNodes(), node)
}

func waitRemote(t testing.TB, n *tnode, node string, present bool, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testutil.CheckFor(t, timeout, func() error {
		if hasRemote(n, node) != present {
			return fmt.Errorf("%s: remote node %q present=%v, want %v", n.name, node, !present, present)
		}
		return nil
	})
	return time.Since(start)
}
