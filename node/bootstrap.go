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
func (d *discovery) bootstrapLoop(ai peer.AddrInfo) {
	d.host.ConnManager().Protect(ai.ID, bootstrapProtectTag)
	d.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	kick := d.kicks[ai.ID]
	backoff := d.cfg.Discovery.BootstrapBackoffMin
	failures := 0
	for {
		wait := bootstrapCheck
		if d.host.Network().Connectedness(ai.ID) != network.Connected {
			// Our backoff governs: skip the swarm's own dial backoff.
			ctx, cancel := context.WithTimeout(network.WithForceDirectDial(d.ctx, "bootstrap"), d.cfg.Direct.DialTimeout)
			err := d.host.Connect(ctx, ai)
			cancel()
			if d.ctx.Err() != nil {
				return
			}
			if err != nil {
				d.m.bootstrapDials.WithLabelValues("error").Inc()
				failures++
				if failures == 1 || failures%10 == 0 {
					d.log.Warn("bootstrap dial failed; retrying", "remote", ai.ID.String(), "failures", failures, "backoff", backoff, "err", err)
				}
				wait = backoff + rand.N(backoff/4+1)
				backoff = min(2*backoff, d.cfg.Discovery.BootstrapBackoffMax)
			} else {
				d.m.bootstrapDials.WithLabelValues("ok").Inc()
				d.log.Info("bootstrap peer connected", "remote", ai.ID.String(), "failures", failures)
				failures = 0
				backoff = d.cfg.Discovery.BootstrapBackoffMin
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-d.ctx.Done():
			t.Stop()
			return
		case <-kick:
			// Disconnected: redial after the minimum backoff, so that a
			// peer that accepts and drops at once is not hammered.
			t.Stop()
			select {
			case <-d.ctx.Done():
				return
			case <-time.After(d.cfg.Discovery.BootstrapBackoffMin):
			}
		case <-t.C:
		}
	}
}

// disconnected wakes the bootstrap loop of p, if p is a bootstrap peer
// (onLastDisconnect).
func (d *discovery) disconnected(p peer.ID) {
	if k, ok := d.kicks[p]; ok {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// isBootstrap reports whether p is a bootstrap peer.
func (d *discovery) isBootstrap(p peer.ID) bool {
	_, ok := d.kicks[p]
	return ok
}
