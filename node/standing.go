package node

import "github.com/libp2p/go-libp2p/core/peer"

// standing decides which peers are relays in good standing
// (docs/PROTOCOL.md 5.3): the operator's peers (the allow-list and the
// bootstrap peers), and the peers directly connected to this relay (not
// only through a limited relayed connection) whose last sampled GossipSub
// score is zero or more. A peer the attacker makes costs it a connection
// (bounded per IP by the resource manager) and loses its standing with
// its first penalty; the keys it signs with but never connects from have
// none. Relays further away than one hop have none either: they share
// what the bounds leave with everyone else.
//
// It has no state of its own: good takes the swarm's locks and
// gossip.scoresMu, one at a time, and must not be called with another of
// the node's locks held.
type standing struct {
	g     *gossip
	allow *allowList
	boot  func(peer.ID) bool
}

// good reports whether p is a relay in good standing.
func (s *standing) good(p peer.ID) bool {
	if (s.allow != nil && s.allow.ids[p]) || s.boot(p) {
		return true
	}
	if !s.g.directlyConnected(p) {
		return false
	}
	sc, ok := s.g.score(p)
	return !ok || sc >= 0
}
