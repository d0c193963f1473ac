package node

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/libp2p/go-libp2p/core/network"
)

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestBootstrapLater: the bootstrap peer is down when the relay starts
// (not fatal); it comes up later and the backoff redial connects, and
// after it restarts the relay reconnects again.
func TestBootstrapLater(t *testing.T) {
	dir := t.TempDir()
	id, err := GenerateIdentityFile(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t))
	a := newNode(t, "a", func(c *Config) { c.Discovery.Bootstrap = []string{listen + "/p2p/" + id.String()} })
	time.Sleep(300 * time.Millisecond) // a few failed dials
	if a.Host().Network().Connectedness(id) == network.Connected {
		t.Fatal("connected to a peer that is not up")
	}

	start := time.Now()
	b := newNode(t, "b", func(c *Config) { c.DataDir = dir; c.Host.ListenAddrs = []string{listen} })
	if b.ID() != id {
		t.Fatalf("b has id %s, want %s", b.ID(), id)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if a.Host().Network().Connectedness(id) != network.Connected {
			return fmt.Errorf("a not connected to its bootstrap peer")
		}
		return nil
	})
	t.Logf("connected %v after the bootstrap peer came up", time.Since(start))
	waitMesh(t, a, b)
	testBroadcastOnce(t, a, b)

	// Drop the connection: a redials.
	if err := a.Host().Network().ClosePeer(id); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if a.Host().Network().Connectedness(id) != network.Connected {
			return fmt.Errorf("a did not reconnect")
		}
		return nil
	})
	if !a.Host().ConnManager().IsProtected(id, bootstrapProtectTag) {
		t.Fatal("bootstrap peer not protected from the connection manager")
	}
}

// TestQUIC: two relays over QUIC only.
func TestQUIC(t *testing.T) {
	quicOnly := func(c *Config) { c.Host.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"} }
	a := newNode(t, "a", quicOnly)
	b := newNode(t, "b", func(c *Config) {
		quicOnly(c)
		c.Discovery.Bootstrap = []string{a.Addrs()[0].String()}
	})
	waitMesh(t, a, b)
	conns := a.Host().Network().ConnsToPeer(b.ID())
	if len(conns) == 0 || conns[0].ConnState().Transport != "quic-v1" {
		t.Fatalf("connection is not QUIC: %v", conns)
	}
	testBroadcastOnce(t, b, a)
	a.NodeJoined("qa", nil)
	waitRemote(t, b, "qa", true, 5*time.Second)
	b.NodeJoined("qb", nil)
	if !b.Direct(envelope(t, "EntryRequest", "q-1", "qb", "qa", `{}`)) {
		t.Fatal("no relay for qa")
	}
	waitDelivered(t, a, "qb", "q-1", 1)
}
