package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	coreconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// NAT traversal: the circuit relay v2 service (hop), AutoNAT v1 and v2
// services, hole punching (DCUtR), and the reachability the host
// declares. All of it is go-libp2p's; this file chooses the options and
// keeps a mirror of the relay's reservations for Reservations (inspect.go).
//
// The federation never runs over a limited (relayed) connection: GossipSub,
// direct streams and the DHT open streams without
// network.WithAllowLimitedConn, so go-libp2p refuses them on a circuit, and
// bootstrap and discovery count only an unlimited connection as connected.

// relayReservationTag is the connection manager tag go-libp2p's relay
// service puts on a peer when it grants (or refreshes) its reservation
// and removes when the reservation expires. It is not exported by
// go-libp2p; TestRelayCircuit fails if it changes.
const relayReservationTag = "relay-reservation"

// natOptions are the libp2p options of the relay service, AutoNAT, hole
// punching and reachability. reserve is the relay ACL (none: anyone may
// reserve); announce the announced addresses.
func natOptions(cfg Config, reserve []peer.ID, announce []ma.Multiaddr) []libp2p.Option {
	var opts []libp2p.Option
	if cfg.NAT.Reachability == reachabilityPublic {
		// A relay is deployed to be reachable: go-libp2p starts the relay
		// service only once the host is believed public.
		opts = append(opts, libp2p.ForceReachabilityPublic())
	}
	if cfg.NAT.EnableAutoNATService {
		opts = append(opts, libp2p.EnableNATService(), libp2p.EnableAutoNATv2())
	}
	if cfg.NAT.EnableHolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	if cfg.RelayService.Enable {
		ropts := []relayv2.Option{relayv2.WithResources(cfg.RelayService.Resources)}
		if len(reserve) > 0 {
			acl := reserveACL{}
			for _, p := range reserve {
				acl[p] = true
			}
			ropts = append(ropts, relayv2.WithACL(acl))
		}
		if len(announce) > 0 {
			// The reservation tells the client the relay's addresses to
			// build its circuit addresses from. By default go-libp2p gives
			// only public ones; announced addresses are the operator's
			// word, whatever their range.
			ropts = append(ropts, relayv2.WithReservationAddressFilter(func(ma.Multiaddr) bool { return true }))
		}
		opts = append(opts, libp2p.EnableRelayService(ropts...))
	}
	return opts
}

// reserveACL lets only listed peers reserve; circuits to a peer holding a
// reservation are open to any source.
type reserveACL map[peer.ID]bool

func (a reserveACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a[p] }

func (a reserveACL) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool { return true }

var _ relayv2.ACLFilter = reserveACL(nil)

// reservations mirrors the relay service's reservation table, which
// go-libp2p does not expose: the relay tags a peer relayReservationTag in
// the connection manager when it grants or refreshes a reservation (expiry
// = now + TTL, computed a moment before), untags it when the reservation
// expires, and forgets it when the peer disconnects (onLastDisconnect).
type reservations struct {
	ttl time.Duration
	mu  sync.Mutex
	exp map[peer.ID]time.Time
}

func newReservations(ttl time.Duration) *reservations {
	return &reservations{ttl: ttl, exp: map[peer.ID]time.Time{}}
}

func (r *reservations) granted(p peer.ID) {
	r.mu.Lock()
	r.exp[p] = time.Now().Add(r.ttl)
	r.mu.Unlock()
}

func (r *reservations) ended(p peer.ID) {
	r.mu.Lock()
	delete(r.exp, p)
	r.mu.Unlock()
}

// live returns the peers whose reservation has not expired at now, with
// their expiry.
func (r *reservations) live(now time.Time) map[peer.ID]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[peer.ID]time.Time, len(r.exp))
	for p, t := range r.exp {
		if t.After(now) {
			out[p] = t
		}
	}
	return out
}

// watchedConnMgr is the connection manager, with the relay service's
// reservation tags observed. Everything else (protection, trimming,
// decaying tags) is the embedded BasicConnMgr's.
type watchedConnMgr struct {
	*connmgr.BasicConnMgr
	rs *reservations
}

// pubsub's tag tracer uses decaying tags when the manager has them.
var _ coreconnmgr.Decayer = (*watchedConnMgr)(nil)

func (w *watchedConnMgr) TagPeer(p peer.ID, tag string, v int) {
	w.BasicConnMgr.TagPeer(p, tag, v)
	if tag == relayReservationTag {
		w.rs.granted(p)
	}
}

func (w *watchedConnMgr) UntagPeer(p peer.ID, tag string) {
	w.BasicConnMgr.UntagPeer(p, tag)
	if tag == relayReservationTag {
		w.rs.ended(p)
	}
}
