package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// connectedDirect reports whether a has an unlimited connection to b.
func connectedDirect(a, b *tnode) bool {
	return a.Host().Network().Connectedness(b.ID()) == network.Connected
}

// TestDHTRendezvous: four relays with the DHT; relays 2, 3 and 4 know only
// relay 1. Relays 3 and 4 find each other at the rendezvous and connect
// directly, within dhtDiscoveryBound.
func TestDHTRendezvous(t *testing.T) {
	const dhtDiscoveryBound = 10 * time.Second
	r1 := newNode(t, "r1", func(c *Config) { c.Discovery.EnableDHT = true })
	boot := func(c *Config) {
		c.Discovery.EnableDHT = true
		for _, a := range r1.Addrs() {
			c.Discovery.Bootstrap = append(c.Discovery.Bootstrap, a.String())
		}
	}
	start := time.Now()
	r2, r3, r4 := newNode(t, "r2", boot), newNode(t, "r3", boot), newNode(t, "r4", boot)
	// The DHT's own lookups connect relays too (a query dials the peers
	// it learns of); the rendezvous is what finds the relays of the same
	// network in a DHT shared with others: both are required.
	testutil.CheckFor(t, dhtDiscoveryBound, func() error {
		if !connectedDirect(r3, r4) {
			return fmt.Errorf("r3 and r4 not connected directly (r3 peers %v)", r3.Host().Network().Peers())
		}
		if r3.disc.discoveredBy(r4.ID()) != "dht" || r4.disc.discoveredBy(r3.ID()) != "dht" {
			return fmt.Errorf("r3 and r4 have not found each other at the rendezvous (%q, %q)", r3.disc.discoveredBy(r4.ID()), r4.disc.discoveredBy(r3.ID()))
		}
		return nil
	})
	t.Logf("r3 and r4 connected directly and found each other at the rendezvous %v after they started", time.Since(start).Round(time.Millisecond))
	testutil.CheckFor(t, dhtDiscoveryBound, func() error {
		for _, n := range []*tnode{r2, r3, r4} {
			if k := len(n.Host().Network().Peers()); k != 3 {
				return fmt.Errorf("%s has %d peers, want the 3 others", n.name, k)
			}
		}
		return nil
	})
	t.Logf("all four relays fully connected %v after start", time.Since(start).Round(time.Millisecond))
}

// TestDiscoveryOffByDefault: without the flags there is no DHT protocol
// and a relay connects to no one it was not told about.
func TestDiscoveryOffByDefault(t *testing.T) {
	a := newNode(t, "a", nil)
	b := newNode(t, "b", func(c *Config) {
		for _, x := range a.Addrs() {
			c.Discovery.Bootstrap = append(c.Discovery.Bootstrap, x.String())
		}
	})
	c := newNode(t, "c", func(c *Config) {
		for _, x := range a.Addrs() {
			c.Discovery.Bootstrap = append(c.Discovery.Bootstrap, x.String())
		}
	})
	if slices.Contains(a.Host().Mux().Protocols(), protocol.ID(dhtProtocol)) {
		t.Fatal("DHT served without Config.DHT")
	}
	waitMesh(t, a, b, c)
	testutil.Stays(t, 2*time.Second, func() error {
		if connectedDirect(b, c) {
			return fmt.Errorf("b and c connected without discovery")
		}
		return nil
	})
}
