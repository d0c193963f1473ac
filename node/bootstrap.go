package node

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

const (
	bootstrapProtectTag = "gsio-bootstrap"
	// bootstrapCheck is how often a connected bootstrap peer is checked
	// besides the disconnect notification.
	bootstrapCheck = 5 * time.Second
)

// bootstrapLoop keeps one bootstrap peer connected: it dials at once, and
// after a failure or a disconnect redials with exponential backoff (with
// jitter) from BootstrapBackoffMin to BootstrapBackoffMax, forever. The
// peer's connections are protected from the connection manager.
func (n *Node) bootstrapLoop(ai peer.AddrInfo) {
	n.host.ConnManager().Protect(ai.ID, bootstrapProtectTag)
	n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	kick := n.bootKick[ai.ID]
	backoff := n.cfg.BootstrapBackoffMin
	failures := 0
	for {
		wait := bootstrapCheck
		if n.host.Network().Connectedness(ai.ID) != network.Connected {
			// Our backoff governs: skip the swarm's own dial backoff.
			ctx, cancel := context.WithTimeout(network.WithForceDirectDial(n.ctx, "bootstrap"), n.cfg.DirectDialTimeout)
			err := n.host.Connect(ctx, ai)
			cancel()
			if n.ctx.Err() != nil {
				return
			}
			if err != nil {
				n.m.bootstrapDials.WithLabelValues("error").Inc()
				failures++
				if failures == 1 || failures%10 == 0 {
					n.log.Warn("bootstrap dial failed; retrying", "remote", ai.ID.String(), "failures", failures, "backoff", backoff, "err", err)
				}
				wait = backoff + rand.N(backoff/4+1)
				backoff = min(2*backoff, n.cfg.BootstrapBackoffMax)
			} else {
				n.m.bootstrapDials.WithLabelValues("ok").Inc()
				n.log.Info("bootstrap peer connected", "remote", ai.ID.String(), "failures", failures)
				failures = 0
				backoff = n.cfg.BootstrapBackoffMin
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-kick:
			// Disconnected: redial after the minimum backoff, so that a
			// peer that accepts and drops at once is not hammered.
			t.Stop()
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(n.cfg.BootstrapBackoffMin):
			}
		case <-t.C:
		}
	}
}

// onDisconnected is the network notifiee: when the last connection to a
// peer goes, it forgets the peer's mesh membership and relay reservation
// and wakes its bootstrap loop.
func (n *Node) onDisconnected(net network.Network, c network.Conn) {
	p := c.RemotePeer()
	if net.Connectedness(p) == network.Connected {
		return
	}
	n.tracer.removePeer(p)
	n.rsvps.ended(p) // the relay service drops the reservation too
	if k, ok := n.bootKick[p]; ok {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}
