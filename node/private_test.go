package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// swarmKeyFile writes a new swarm key into a temporary file.
func swarmKeyFile(t testing.TB) string {
	t.Helper()
	k, err := NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "swarm.key")
	if err := os.WriteFile(p, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// dialFails checks that a cannot connect to b. (Without the swarm key a
// dialer may also wait for an answer that never comes: the keyed side
// waits for a 24-byte nonce the other never sends. The timeout is short.)
func dialFails(t testing.TB, a, b *tnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := a.Host().Connect(ctx, b.addrInfo()); err == nil {
		t.Fatalf("%s connected to %s", a.name, b.name)
	}
	// b may still hold, for a moment, the half of a connection a refused
	// after b's handshake completed: it must go.
	testutil.CheckFor(t, 5*time.Second, func() error {
		if slices.Contains(b.Host().Network().Peers(), a.ID()) {
			return fmt.Errorf("%s lists %s as connected", b.name, a.name)
		}
		return nil
	})
}

// refused checks that a's connection to b (if the handshake completes on
// a's side) is closed by b at once and never seen by b.
func refused(t testing.TB, a, b *tnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.Host().Connect(ctx, b.addrInfo())
	testutil.CheckFor(t, 5*time.Second, func() error {
		if a.Host().Network().Connectedness(b.ID()) == network.Connected {
			return fmt.Errorf("%s still connected to %s", a.name, b.name)
		}
		return nil
	})
	if slices.Contains(b.Host().Network().Peers(), a.ID()) {
		t.Fatalf("%s accepted %s", b.name, a.name)
	}
}

// TestSwarmKey: a relay with a swarm key and one without cannot connect
// (either way), nor can two with different keys; two with the same key
// federate. QUIC is dropped from the listen addresses.
func TestSwarmKey(t *testing.T) {
	key1, key2 := swarmKeyFile(t), swarmKeyFile(t)
	withKey := func(k string) func(*Config) {
		return func(c *Config) {
			c.Private.SwarmKey = k
			c.Host.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
		}
	}
	a, c := newNode(t, "a", withKey(key1)), newNode(t, "c", withKey(key1))
	plain, other := newNode(t, "plain", nil), newNode(t, "other", withKey(key2))
	for _, n := range []*tnode{a, c, other} {
		for _, addr := range n.Host().Addrs() {
			if strings.Contains(addr.String(), "quic") {
				t.Fatalf("%s listens on %s with a swarm key", n.name, addr)
			}
		}
	}
	dialFails(t, a, plain)
	dialFails(t, plain, a)
	dialFails(t, other, a)
	connect(t, c, a)
	waitMesh(t, a, c)
	c.NodeJoined("carol", nil)
	waitRemote(t, a, "carol", true, 5*time.Second)

	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"missing":   func(c *Config) { c.Private.SwarmKey = filepath.Join(t.TempDir(), "none") },
		"malformed": func(c *Config) { c.Private.SwarmKey = bad },
		"quic only": func(c *Config) {
			c.Private.SwarmKey = key1
			c.Host.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
		},
	} {
		cfg := testConfig(t)
		mod(&cfg)
		if n, err := New(context.Background(), cfg, WithLogger(testutil.Logger())); err == nil {
			_ = n.Close()
			t.Errorf("%s swarm key accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestAllowPeer: a relay with an allow-list accepts the listed relay and
// refuses a stranger, inbound and outbound, relay or relay-service
// client.
func TestAllowPeer(t *testing.T) {
	b, stranger := newNode(t, "b", nil), newNode(t, "stranger", nil)
	a := newNode(t, "a", func(c *Config) { c.Private.AllowPeers = []string{b.ID().String()} })
	connect(t, b, a)
	waitMesh(t, a, b)
	refused(t, stranger, a)
	dialFails(t, a, stranger)
	if _, err := reserve(t, newClient(t), a.addrInfo()); err == nil {
		t.Fatal("a stranger reserved a slot on a private relay")
	}
	for _, p := range a.Host().Network().Peers() {
		if p != b.ID() {
			t.Fatalf("a is connected to %s, not on its allow-list", p)
		}
	}
}

// TestAllowRelayClients: with AllowRelayClients, a stranger may connect
// and use the relay service, but GossipSub and direct streams serve listed
// peers only.
func TestAllowRelayClients(t *testing.T) {
	b, stranger := newNode(t, "b", nil), newNode(t, "stranger", nil)
	a := newNode(t, "a", func(c *Config) {
		c.Private.AllowPeers = []string{b.ID().String()}
		c.Private.AllowRelayClients = true
	})
	connect(t, b, a)
	connect(t, stranger, a)
	waitMesh(t, a, b)
	if _, err := reserve(t, stranger.Host(), a.addrInfo()); err != nil {
		t.Fatalf("relay client reservation: %v", err)
	}
	bt, pt := a.Topics()
	testutil.Stays(t, time.Second, func() error {
		for _, topic := range []string{bt, pt} {
			if slices.Contains(a.gossip.ps.ListPeers(topic), stranger.ID()) || slices.Contains(a.MeshPeers(topic), stranger.ID()) {
				return fmt.Errorf("a gossips %s with the stranger", topic)
			}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := stranger.Host().NewStream(ctx, a.ID(), DirectProtocol)
	if err == nil {
		_, err = s.Read(make([]byte, 1))
	}
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("stranger's direct stream: %v, want a reset", err)
	}
	// b, listed, still federates with a.
	b.NodeJoined("bob", nil)
	waitRemote(t, a, "bob", true, 5*time.Second)
	if hasRemote(stranger, "bob") {
		t.Fatal("the stranger learnt a's presence")
	}
}

func TestPrivateConfigErrors(t *testing.T) {
	id := peer.ID("x").String()
	for name, mod := range map[string]func(*Config){
		"allow peer":    func(c *Config) { c.Private.AllowPeers = []string{"not-a-peer"} },
		"relay acl":     func(c *Config) { c.RelayService.AllowReserve = []string{id} },
		"clients alone": func(c *Config) { c.Private.AllowRelayClients = true },
		"reachability":  func(c *Config) { c.NAT.Reachability = "private" },
		"circuit data":  func(c *Config) { c.RelayService.Limit.Data = -1 },
	} {
		cfg := testConfig(t)
		mod(&cfg)
		if n, err := New(context.Background(), cfg, WithLogger(testutil.Logger())); err == nil {
			_ = n.Close()
			t.Errorf("%s: New accepted a bad config", name)
		}
	}
}
