package testnet

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// cut is a relay's connection gater in the harness: it refuses the peers
// it is told to, both ways, so that a partition holds against the
// bootstrap redials.
type cut struct {
	mu      sync.Mutex
	refused map[peer.ID]bool
}

func newCut() *cut { return &cut{refused: map[peer.ID]bool{}} }

func (c *cut) has(p peer.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused[p]
}

func (c *cut) set(ps []peer.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.refused)
	for _, p := range ps {
		c.refused[p] = true
	}
}

func (c *cut) InterceptPeerDial(p peer.ID) bool                 { return !c.has(p) }
func (c *cut) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !c.has(p) }
func (c *cut) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (c *cut) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !c.has(p)
}
func (c *cut) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// Partition cuts the relays into groups (by index): a relay refuses every
// relay of another group and its connections to them are closed. Relays
// not listed keep their links. Heal undoes it.
func (h *Harness) Partition(groups ...[]int) {
	h.t.Helper()
	group := map[int]int{}
	for g, idx := range groups {
		for _, i := range idx {
			group[i] = g + 1
		}
	}
	for i, r := range h.Relays {
		var refuse []peer.ID
		for j, o := range h.Relays {
			if group[i] != 0 && group[j] != 0 && group[i] != group[j] {
				refuse = append(refuse, o.Node.ID())
			}
		}
		r.cut.set(refuse)
	}
	for _, r := range h.Relays {
		if r.WS == nil {
			continue
		}
		for _, o := range h.Relays {
			if r.cut.has(o.Node.ID()) {
				_ = r.Node.ClosePeer(o.Node.ID())
			}
		}
	}
}

// Heal lifts every partition: the bootstrap redials reconnect the relays.
func (h *Harness) Heal() {
	for _, r := range h.Relays {
		r.cut.set(nil)
	}
}
