package testnet

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/transport"
)

// Topology says which relays bootstrap to which.
type Topology int

const (
	Full Topology = iota // every relay to every other
	Line                 // relay i to relay i-1: 0-1-2-…
	Star                 // every relay to relay 0
)

// Relay is one federated relay of a Harness: node, router and WebSocket
// server in this process, on loopback.
type Relay struct {
	Index   int
	DataDir string
	Node    *node.Node
	Router  *relay.Router
	WS      *transport.Server
	URL     string // ws://127.0.0.1:port/ws
	// With WithAdmin: the relay's admin server, its base URL
	// (http://127.0.0.1:port) and the registry of its metrics (node,
	// libp2p, router, transport).
	Admin    *admin.Server
	AdminURL string
	Registry *prometheus.Registry
	History  *history.Store // in DataDir/history, kept across Restart
	boot     []string
	cut      *cut // the peers it refuses (Partition), kept across Restart
}

// Harness runs N federated relays in one process.
type Harness struct {
	t      testing.TB
	Relays []*Relay
	// NodeConfig edits each relay's node config before it starts.
	nodeCfg   func(i int, c *node.Config)
	relayCfg  func(i int, c *relay.Config)
	relayOpts []relay.Option
	admin     bool
}

// HarnessOption edits the harness before the relays start.
type HarnessOption func(*Harness)

// WithNodeConfig edits relay i's node config.
func WithNodeConfig(f func(i int, c *node.Config)) HarnessOption {
	return func(h *Harness) { h.nodeCfg = f }
}

// WithRelayConfig edits relay i's router config.
func WithRelayConfig(f func(i int, c *relay.Config)) HarnessOption {
	return func(h *Harness) { h.relayCfg = f }
}

// WithRouterOptions adds router options (a JWT verifier, a clock) to every
// relay.
func WithRouterOptions(opts ...relay.Option) HarnessOption {
	return func(h *Harness) { h.relayOpts = append(h.relayOpts, opts...) }
}

// WithAdmin gives each relay an admin server on 127.0.0.1 (no token) with
// its metrics registry, sampling peer latency every 100 ms.
func WithAdmin() HarnessOption {
	return func(h *Harness) { h.admin = true }
}

// TestNodeConfig is a loopback TCP node config with short presence timing.
func TestNodeConfig(dataDir string) node.Config {
	c := node.DefaultConfig()
	c.DataDir = dataDir
	c.Host.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	c.Presence.Interval = 250 * time.Millisecond
	c.Presence.SpeakForWait = time.Second
	c.Discovery.BootstrapBackoffMin = 100 * time.Millisecond
	c.Discovery.BootstrapBackoffMax = time.Second
	c.Presence.AllowPrivateAddrs = true // relays on loopback dial each other's presence addresses
	c.Sync.Settle = 300 * time.Millisecond
	c.Sync.Backoff = 300 * time.Millisecond
	return c
}

// StartHarness starts n relays connected in topo and waits until each one
// has its topology neighbours in both gossip meshes.
func StartHarness(t testing.TB, n int, topo Topology, opts ...HarnessOption) *Harness {
	t.Helper()
	h := &Harness{t: t}
	for _, o := range opts {
		o(h)
	}
	for i := range n {
		var boot []string
		for j := range i {
			if topo == Full || (topo == Line && j == i-1) || (topo == Star && j == 0) {
				boot = append(boot, h.Relays[j].Node.Addrs()[0].String())
			}
		}
		r := &Relay{Index: i, DataDir: t.TempDir(), boot: boot}
		h.start(r)
		h.Relays = append(h.Relays, r)
	}
	h.WaitMesh()
	return h
}

func (h *Harness) start(r *Relay) {
	t := h.t
	t.Helper()
	cfg := TestNodeConfig(r.DataDir)
	cfg.Discovery.Bootstrap = r.boot
	if h.nodeCfg != nil {
		h.nodeCfg(r.Index, &cfg)
	}
	nopts := []node.Option{node.WithLogger(testutil.Logger().With("relay", r.Index)), node.WithGossipSubParams(testutil.FastGossip())}
	ropts := []relay.Option{relay.WithLogger(testutil.Logger().With("relay", r.Index))}
	topts := []transport.Option{transport.WithLogger(testutil.Logger().With("relay", r.Index))}
	var reg *prometheus.Registry
	if h.admin {
		reg = prometheus.NewRegistry()
		nopts = append(nopts, node.WithRegisterer(reg))
		rm := relay.NewMetrics(reg)
		ropts = append(ropts, relay.WithMetrics(rm))
		nopts = append(nopts, node.WithCounters(admin.RouterCounters(rm)), node.WithVersion("test"))
		topts = append(topts, transport.WithMetrics(transport.NewMetrics(reg)))
	}
	hc := history.DefaultConfig()
	hc.Dir = filepath.Join(r.DataDir, "history")
	hc.JanitorInterval = 100 * time.Millisecond
	store, err := history.Open(hc, history.WithLogger(testutil.Logger().With("relay", r.Index)))
	if err != nil {
		t.Fatalf("relay %d: history: %v", r.Index, err)
	}
	r.History = store
	if r.cut == nil {
		r.cut = newCut()
	}
	nopts = append(nopts, node.WithHistory(store), node.WithConnectionGater(r.cut))
	nd, err := node.New(context.Background(), cfg, nopts...)
	if err != nil {
		t.Fatalf("relay %d: node: %v", r.Index, err)
	}
	rcfg := relay.DefaultConfig()
	if h.relayCfg != nil {
		h.relayCfg(r.Index, &rcfg)
	}
	ropts = append(ropts, relay.WithRelayPeerID(nd.ID().String()), relay.WithHistory(store))
	rt, err := relay.New(rcfg, nd, append(ropts, h.relayOpts...)...)
	if err != nil {
		t.Fatalf("relay %d: router: %v", r.Index, err)
	}
	if err := nd.Start(rt); err != nil {
		t.Fatalf("relay %d: start node: %v", r.Index, err)
	}
	tc := transport.DefaultConfig()
	tc.Listen = "127.0.0.1:0"
	// As cmd wires them: frames up to the direct-message size.
	tc.LargeMessageThreshold = int64(rcfg.MaxBroadcastSize)
	tc.MaxMessageSize = int64(rcfg.MaxDirectSize)
	tc.SendQueueBytes = max(tc.SendQueueBytes, rcfg.MaxDirectSize+64<<10)
	ws, err := transport.New(tc, func(c *transport.Conn) transport.Session { return rt.Open(c) }, topts...)
	if err != nil {
		t.Fatalf("relay %d: transport: %v", r.Index, err)
	}
	if err := ws.Start(); err != nil {
		t.Fatalf("relay %d: websocket: %v", r.Index, err)
	}
	r.Node, r.Router, r.WS = nd, rt, ws
	r.URL = "ws://" + ws.Addr().String() + "/ws"
	if h.admin {
		src := &admin.RelaySource{Node: nd, Router: rt, WS: ws, Version: "test", PingInterval: 500 * time.Millisecond}
		adm, err := admin.New(admin.Config{Listen: "127.0.0.1:0"}, admin.WithSource(src), admin.WithMetrics(reg),
			admin.WithSampleInterval(100*time.Millisecond), admin.WithLogger(testutil.Logger().With("relay", r.Index)), admin.WithHistory(store))
		if err != nil {
			t.Fatalf("relay %d: admin: %v", r.Index, err)
		}
		if err := adm.Start(); err != nil {
			t.Fatalf("relay %d: admin: %v", r.Index, err)
		}
		r.Admin, r.AdminURL, r.Registry = adm, adm.URL(), reg
	}
	t.Cleanup(func() { r.Stop(t) })
}

// Stop closes the relay's WebSocket server and node (idempotent).
func (r *Relay) Stop(t testing.TB) {
	if r.WS == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.Admin != nil {
		if err := r.Admin.Close(ctx); err != nil {
			t.Errorf("relay %d: close admin: %v", r.Index, err)
		}
		r.Admin = nil
	}
	if err := r.WS.Close(ctx); err != nil {
		t.Errorf("relay %d: close websocket: %v", r.Index, err)
	}
	if err := r.Router.Close(ctx); err != nil {
		t.Errorf("relay %d: close router: %v", r.Index, err)
	}
	if err := r.Node.Close(); err != nil {
		t.Errorf("relay %d: close node: %v", r.Index, err)
	}
	if err := r.History.Close(); err != nil {
		t.Errorf("relay %d: close history: %v", r.Index, err)
	}
	r.WS = nil
}

// Restart starts a stopped relay again with the same data dir (and so the
// same peer ID) and bootstrap list.
func (h *Harness) Restart(i int) {
	h.t.Helper()
	r := h.Relays[i]
	r.Stop(h.t)
	h.start(r)
}

// Nodes is relay i's answer to NodeListRequest.
func (h *Harness) Nodes(i int) []string { return h.Relays[i].Router.Nodes() }

// WaitNodes waits until every running relay lists exactly want.
func (h *Harness) WaitNodes(d time.Duration, want ...string) {
	h.t.Helper()
	slices.Sort(want)
	Eventually(h.t, d, fmt.Sprintf("every relay to list %v", want), func() bool {
		for i, r := range h.Relays {
			if r.WS != nil && !slices.Equal(h.Nodes(i), want) {
				return false
			}
		}
		return true
	})
}

// WaitMesh waits until every running relay has each connected relay of
// the harness in both gossip meshes and at least one such peer.
func (h *Harness) WaitMesh() {
	h.t.Helper()
	ids := map[peer.ID]bool{}
	for _, r := range h.Relays {
		if r.WS != nil {
			ids[r.Node.ID()] = true
		}
	}
	Eventually(h.t, 15*time.Second, "gossip meshes to form", func() bool {
		for _, r := range h.Relays {
			if r.WS == nil {
				continue
			}
			bt, pt := r.Node.Topics()
			linked := 0
			for _, p := range r.Node.ConnectedPeers() {
				if !ids[p] {
					continue
				}
				linked++
				if !slices.Contains(r.Node.MeshPeers(bt), p) || !slices.Contains(r.Node.MeshPeers(pt), p) {
					return false
				}
			}
			if linked == 0 && len(ids) > 1 {
				return false
			}
		}
		return true
	})
}
