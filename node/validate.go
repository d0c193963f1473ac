package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// validate checks the values of c: ranges and combinations. The
// multiaddrs and peer IDs are checked by parsing them (New does both).
func (c Config) validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s %s", flag, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data-dir", "must not be empty")
	}
	if c.Network == "" {
		bad("network", "must not be empty")
	}
	for _, r := range c.Network {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			bad("network", "%q: only letters, digits, '-', '_' and '.' are allowed", c.Network)
			break
		}
	}
	if c.MaxDirectSize < c.MaxMessageSize {
		bad("max-direct-size", "%d: at least --max-message-size", c.MaxDirectSize)
	}
	if c.MaxMessageSize < 1024 {
		bad("max-message-size", "%d: at least 1024", c.MaxMessageSize)
	}
	if c.Host.ConnLow < 0 || c.Host.ConnHigh < c.Host.ConnLow {
		bad("conn-low", "%d / --conn-high %d: need 0 <= low <= high", c.Host.ConnLow, c.Host.ConnHigh)
	}
	if p := c.Presence; p.Interval < minPresenceInterval || p.Interval > maxPresenceInterval {
		bad("presence-interval", "%v: must be within [%v, %v]", p.Interval, minPresenceInterval, maxPresenceInterval)
	}
	if u := c.Presence.PublicWSURL; u != "" {
		if err := CheckWSURL(u); err != nil {
			bad("public-ws-url", "%v", err)
		}
	}
	if c.Presence.Missed < 2 {
		bad("presence-missed", "%d: at least 2", c.Presence.Missed)
	}
	if c.Gossip.OriginRate <= 0 {
		bad("gossip-origin-rate", "%v: must be positive", c.Gossip.OriginRate)
	}
	if c.Gossip.PeerRate <= 0 {
		bad("gossip-peer-rate", "%v: must be positive", c.Gossip.PeerRate)
	}
	if c.Gossip.OriginBurst < maxBatchMessages {
		bad("gossip-origin-burst", "%d: at least %d (a whole batch)", c.Gossip.OriginBurst, maxBatchMessages)
	}
	if c.Publish.BatchMax > maxBatchMessages {
		bad("publish-batch-max", "%d: at most %d", c.Publish.BatchMax, maxBatchMessages)
	}
	if d := c.Discovery; d.BootstrapBackoffMin <= 0 || d.BootstrapBackoffMax < d.BootstrapBackoffMin {
		bad("bootstrap-backoff-min", "%v / --bootstrap-backoff-max %v: not a range", d.BootstrapBackoffMin, d.BootstrapBackoffMax)
	}
	for _, v := range []struct {
		flag string
		v    int
	}{
		{"max-relays", c.Presence.MaxRelays}, {"max-nodes-per-relay", c.Presence.MaxNodesPerRelay},
		{"max-directory-entries", c.Presence.MaxDirectoryEntries},
		{"gossip-peer-queue", c.Gossip.PeerOutboundQueueSize}, {"gossip-validate-queue", c.Gossip.ValidateQueueSize},
		{"gossip-validate-workers", c.Gossip.ValidateWorkers}, {"gossip-validate-concurrency", c.Gossip.ValidateConcurrency},
		{"gossip-subscription-buffer", c.Gossip.SubscriptionBuffer},
		{"publish-queue", c.Publish.QueueSize}, {"publish-batch-bytes", c.Publish.BatchBytes},
		{"publish-batch-max", c.Publish.BatchMax}, {"direct-queue", c.Direct.QueueSize},
	} {
		if v.v <= 0 {
			bad(v.flag, "%d: must be positive", v.v)
		}
	}
	for _, v := range []struct {
		flag string
		d    time.Duration
	}{
		{"seen-messages-ttl", c.SeenMessagesTTL}, {"gossip-score-interval", c.Gossip.ScoreInspectInterval},
		{"gossip-subscription-grace", c.Gossip.SubscriptionGrace}, {"direct-dial-timeout", c.Direct.DialTimeout},
		{"direct-write-timeout", c.Direct.WriteTimeout}, {"direct-idle-timeout", c.Direct.IdleTimeout},
	} {
		if v.d <= 0 {
			bad(v.flag, "%v: must be positive", v.d)
		}
	}
	r := c.RelayService
	for _, v := range []struct {
		flag string
		v    int
	}{
		{"relay-max-reservations", r.MaxReservations}, {"relay-max-reservations-per-ip", r.MaxReservationsPerIP},
		{"relay-max-reservations-per-asn", r.MaxReservationsPerASN}, {"relay-max-circuits", r.MaxCircuits},
	} {
		if v.v < 0 {
			bad(v.flag, "%d: must not be negative", v.v)
		}
	}
	switch {
	case r.Limit == nil:
		bad("relay-circuit-duration", "and --relay-circuit-data: a circuit limit is required")
	case r.Limit.Data <= 0:
		bad("relay-circuit-data", "%d: must be positive", r.Limit.Data)
	case r.Limit.Duration < time.Second:
		bad("relay-circuit-duration", "%v: at least 1s", r.Limit.Duration)
	}
	if r.ReservationTTL < time.Second {
		bad("relay-reservation-ttl", "%v: at least 1s", r.ReservationTTL)
	}
	if c.NAT.Reachability != reachabilityPublic && c.NAT.Reachability != reachabilityAuto {
		bad("reachability", "%q: want %q or %q", c.NAT.Reachability, reachabilityPublic, reachabilityAuto)
	}
	if c.Discovery.DHTFindInterval < time.Second {
		bad("dht-find-interval", "%v: at least 1s", c.Discovery.DHTFindInterval)
	}
	if c.Discovery.DHTAdvertiseInterval < time.Second {
		bad("dht-advertise-interval", "%v: at least 1s", c.Discovery.DHTAdvertiseInterval)
	}
	if !c.Gossip.Sign && c.Private.SwarmKey == "" && len(c.Private.AllowPeers) == 0 {
		bad("gossip-sign", "=false needs a private federation (--swarm-key or --allow-peer): unsigned gossip is unauthenticated, so on an open federation anyone could rewrite presence and speak for any node")
	}
	if c.Private.AllowRelayClients && len(c.Private.AllowPeers) == 0 {
		bad("allow-relay-clients", "is only meaningful with --allow-peer")
	}
	return errors.Join(errs...)
}

// addrs are the multiaddrs and peer IDs of a Config, parsed.
type addrs struct {
	listen   []ma.Multiaddr
	announce []ma.Multiaddr
	boot     []peer.AddrInfo // one per peer, addresses merged
	allow    []peer.ID
	reserve  []peer.ID
}

// parse parses the multiaddrs and peer IDs of c.
func (c Config) parse() (addrs, error) {
	var (
		a    addrs
		errs []error
	)
	multiaddrs := func(flag string, ss []string) []ma.Multiaddr {
		var out []ma.Multiaddr
		for _, s := range ss {
			m, err := ma.NewMultiaddr(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("--%s %q: %w", flag, s, err))
				continue
			}
			out = append(out, m)
		}
		return out
	}
	peerIDs := func(flag string, ss []string) []peer.ID {
		var out []peer.ID
		for _, s := range ss {
			p, err := peer.Decode(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("--%s %q: not a peer ID: %w", flag, s, err))
				continue
			}
			out = append(out, p)
		}
		return out
	}
	a.listen = multiaddrs("p2p-listen", c.Host.ListenAddrs)
	if len(c.Host.ListenAddrs) == 0 {
		errs = append(errs, errors.New("--p2p-listen: no listen address"))
	}
	a.announce = multiaddrs("announce", c.Host.Announce)
	seen := map[peer.ID]int{}
	for _, s := range c.Discovery.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--bootstrap %q (want a multiaddr ending in /p2p/<peer id>): %w", s, err))
			continue
		}
		if i, ok := seen[ai.ID]; ok {
			a.boot[i].Addrs = append(a.boot[i].Addrs, ai.Addrs...)
			continue
		}
		seen[ai.ID] = len(a.boot)
		a.boot = append(a.boot, *ai)
	}
	a.allow = peerIDs("allow-peer", c.Private.AllowPeers)
	a.reserve = peerIDs("relay-allow-reserve", c.RelayService.AllowReserve)
	return a, errors.Join(errs...)
}
