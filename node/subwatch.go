package node

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// knownRelayTTL is how long a peer once seen subscribed to both topics is
// still taken for a relay of the federation after it was last seen so.
const knownRelayTTL = time.Hour

// subscriptionWatch works around go-libp2p-pubsub v0.19 forgetting a
// peer's subscriptions. When a peer's pubsub stream dies while the peer is
// still connected (a relay cut off and back on a new address, its dead
// connection not yet closed), pubsub respawns its writer but drops the
// topics the peer had subscribed to, and the peer never announces them
// again: the relay stays connected, in our mesh, and receives nothing we
// publish. Seen in the docker testnet (TestPartitionNewAddress).
//
// Every Gossip.SubscriptionGrace/5 it compares the connected relays of the
// federation (in the presence directory, or seen subscribed to both topics
// within knownRelayTTL) with pubsub's subscribers. A relay connected
// directly (not only through a limited relayed connection) that stays
// unknown as a subscriber of either topic for SubscriptionGrace has its
// connections closed; the redial (bootstrap, discovery or the other side)
// starts fresh pubsub streams that carry the subscriptions again.
func (g *gossip) subscriptionWatch() {
	grace := g.cfg.Gossip.SubscriptionGrace
	t := time.NewTicker(max(grace/5, 10*time.Millisecond))
	defer t.Stop()
	missing := map[peer.ID]time.Time{} // since when
	known := map[peer.ID]time.Time{}   // last seen subscribed to both topics
	bt, pt := g.bcast.name, g.pres.name
	for {
		select {
		case <-g.ctx.Done():
			return
		case now := <-t.C:
			bs, ps := peerSet(g.ps.ListPeers(bt)), peerSet(g.ps.ListPeers(pt))
			if g.ctx.Err() != nil {
				return // pubsub may be closing: its lists are empty
			}
			for p := range bs {
				if ps[p] && (len(known) < 4*g.cfg.Presence.MaxRelays || !known[p].IsZero()) {
					known[p] = now
				}
			}
			connected := map[peer.ID]bool{}
			for _, p := range g.host.Network().Peers() {
				connected[p] = true
				relay := g.isRelay(p) || now.Sub(known[p]) < knownRelayTTL
				if (bs[p] && ps[p]) || !relay || !g.directlyConnected(p) {
					delete(missing, p)
					continue
				}
				since, ok := missing[p]
				if !ok {
					missing[p] = now
					continue
				}
				if now.Sub(since) >= grace {
					g.log.Warn("relay connected but not subscribed in pubsub: closing its connections to reset the pubsub session",
						"remote", p.String(), "broadcast", bs[p], "presence", ps[p], "for", now.Sub(since).Round(time.Millisecond))
					g.m.subResets.Inc()
					delete(missing, p)
					_ = g.host.Network().ClosePeer(p)
				}
			}
			for p := range missing {
				if !connected[p] {
					delete(missing, p)
				}
			}
			for p, at := range known {
				if now.Sub(at) >= knownRelayTTL {
					delete(known, p)
				}
			}
		}
	}
}

// directlyConnected reports whether p has a connection that is not a
// limited (relayed) one: pubsub does not run over limited connections.
func (g *gossip) directlyConnected(p peer.ID) bool {
	for _, c := range g.host.Network().ConnsToPeer(p) {
		if !c.Stat().Limited {
			return true
		}
	}
	return false
}
