package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// discovery is how the relay finds and keeps its federation: the
// bootstrap peers (bootstrap.go), and, both off unless configured, mDNS on
// the local network and a rendezvous on a Kademlia DHT, which hand the
// relays they find to discoveredPeer; the discovery workers connect to
// them.
//
// Goroutines: bootstrapLoop (one per bootstrap peer), discoveryWorker (a
// few, with mDNS or the DHT; they dial), rendezvousLoop (with the DHT).
// go-libp2p's mDNS service and the DHT run their own, stopped by close
// (mDNS before ours, the DHT after them).
type discovery struct {
	core
	routines
	boot  []peer.AddrInfo           // without this relay; static
	kicks map[peer.ID]chan struct{} // per bootstrap peer: it disconnected; static
	allow *allowList                // nil: anyone
	found chan discovered           // to the workers
	dht   *dht.IpfsDHT              // with Discovery.EnableDHT; static after New
	mdns  mdns.Service              // with Discovery.EnableMDNS: set by Start, closed by close

	mu      sync.Mutex
	dialed  map[peer.ID]time.Time // last dial of a discovered peer
	sources map[peer.ID]string    // how a peer was last found (at most maxSources)
}

const (
	// dhtProtocol is the Kademlia protocol of the federation's DHT: a DHT
	// of its own, not the IPFS one.
	dhtProtocol = dhtPrefix + "/kad/1.0.0"
	dhtPrefix   = "/gsio"
	// discoveryWorkers dial discovered relays concurrently.
	discoveryWorkers = 4
	// discoveryRedial is the least time between two dials of one
	// discovered peer that is not connected.
	discoveryRedial = 30 * time.Second
	// rendezvousTimeout bounds one advertisement or lookup.
	rendezvousTimeout = 30 * time.Second
)

// rendezvousKey is the DHT rendezvous key under which the relays of a
// network advertise themselves (a provider record for the CID of its
// SHA-256).
func rendezvousKey(network string) string { return "gsio/" + network + "/relays" }

// mdnsService is the DNS-SD service name of a network's relays.
func mdnsService(network string) string {
	name := strings.Map(func(r rune) rune {
		if r == '.' || r == '_' {
			return '-'
		}
		return r
	}, network)
	if len(name) > 40 {
		name = name[:40]
	}
	return "_gsio-" + name + "._udp"
}

// maxSources bounds discovery.sources.
const maxSources = 1024

type discovered struct {
	ai     peer.AddrInfo
	source string // "mdns", "dht"
}

func newDiscovery(parent context.Context, c core, boot []peer.AddrInfo, allow *allowList) (*discovery, error) {
	d := &discovery{
		core:     c,
		routines: newRoutines(parent),
		boot:     boot,
		kicks:    map[peer.ID]chan struct{}{},
		allow:    allow,
		found:    make(chan discovered, 256),
		dialed:   map[peer.ID]time.Time{},
		sources:  map[peer.ID]string{},
	}
	for _, b := range boot {
		d.kicks[b.ID] = make(chan struct{}, 1)
	}
	onLastDisconnect(c.host, d.disconnected)
	if !c.cfg.Discovery.EnableDHT {
		return d, nil
	}
	// The DHT serves requests from now on; the rendezvous starts with
	// Start.
	mode := dht.ModeServer
	if c.cfg.NAT.Reachability == reachabilityAuto {
		mode = dht.ModeAuto
	}
	opts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(dhtPrefix), // dhtProtocol
		dht.BootstrapPeers(boot...),
		dht.DisableValues(),
	}
	if allow != nil {
		opts = append(opts,
			dht.RoutingTableFilter(func(_ any, p peer.ID) bool { return allow.allowed(p) }),
			dht.QueryFilter(func(_ any, ai peer.AddrInfo) bool { return allow.allowed(ai.ID) }))
	}
	var err error
	if d.dht, err = dht.New(c.host, opts...); err != nil {
		d.cancel()
		return nil, fmt.Errorf("dht: %w", err)
	}
	return d, nil
}

// startMDNS starts the mDNS service if configured (from Start, first:
// it is the part of discovery that can fail).
func (d *discovery) startMDNS() error {
	if !d.cfg.Discovery.EnableMDNS {
		return nil
	}
	s := mdns.NewMdnsService(d.host, mdnsService(d.cfg.Network), mdnsNotifee{d})
	if err := s.Start(); err != nil {
		_ = s.Close()
		return fmt.Errorf("mdns: %w", err)
	}
	d.mdns = s
	return nil
}

// start starts the bootstrap loops and, with mDNS or the DHT, the
// discovery workers and the rendezvous.
func (d *discovery) start() {
	for _, b := range d.boot {
		d.spawn(func() { d.bootstrapLoop(b) })
	}
	if !d.cfg.Discovery.EnableMDNS && d.dht == nil {
		return
	}
	for range discoveryWorkers {
		d.spawn(d.discoveryWorker)
	}
	if d.dht != nil {
		d.spawn(d.rendezvousLoop)
	}
}

// close stops mDNS, then the goroutines, then the DHT.
func (d *discovery) close() error {
	d.closeMDNS()
	d.stop()
	if d.dht == nil {
		return nil
	}
	if err := d.dht.Close(); err != nil {
		return fmt.Errorf("close dht: %w", err)
	}
	return nil
}

type mdnsNotifee struct{ d *discovery }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { m.d.discoveredPeer(ai, "mdns") }

// discoveredPeer queues a peer for the discovery workers; it never
// blocks (a full queue drops the peer: it is found again).
func (d *discovery) discoveredPeer(ai peer.AddrInfo, source string) {
	if ai.ID == d.self || ai.ID == "" || len(ai.Addrs) == 0 || !d.allow.allowed(ai.ID) {
		return
	}
	d.mu.Lock()
	if _, ok := d.sources[ai.ID]; ok || len(d.sources) < maxSources {
		d.sources[ai.ID] = source
	}
	d.mu.Unlock()
	select {
	case d.found <- discovered{ai, source}:
	default:
		d.m.discovered.WithLabelValues(source, "skipped").Inc()
	}
}

// discoveredBy tells how p was last found: "mdns", "dht", or "" if
// discovery never found it.
func (d *discovery) discoveredBy(p peer.ID) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sources[p]
}

// discoveryWorker dials discovered peers that are not connected (without
// a relayed connection counting as connected), at most once per
// discoveryRedial each, while the host has fewer than Host.ConnLow peers.
func (d *discovery) discoveryWorker() {
	for {
		var f discovered
		select {
		case <-d.ctx.Done():
			return
		case f = <-d.found:
		}
		p := f.ai.ID
		if d.host.Network().Connectedness(p) == network.Connected {
			d.m.discovered.WithLabelValues(f.source, "known").Inc()
			continue
		}
		if len(d.host.Network().Peers()) >= d.cfg.Host.ConnLow {
			d.m.discovered.WithLabelValues(f.source, "skipped").Inc()
			continue
		}
		now := time.Now()
		d.mu.Lock()
		last, seen := d.dialed[p]
		if seen && now.Sub(last) < discoveryRedial {
			d.mu.Unlock()
			d.m.discovered.WithLabelValues(f.source, "known").Inc()
			continue
		}
		d.dialed[p] = now
		for q, t := range d.dialed { // keep the table small
			if now.Sub(t) >= discoveryRedial {
				delete(d.dialed, q)
			}
		}
		d.mu.Unlock()

		ctx, cancel := context.WithTimeout(network.WithForceDirectDial(d.ctx, "discovery"), d.cfg.Direct.DialTimeout)
		err := d.host.Connect(ctx, f.ai)
		cancel()
		if d.ctx.Err() != nil {
			return
		}
		if err != nil {
			d.m.discovered.WithLabelValues(f.source, "failed").Inc()
			d.log.Debug("discovered relay: dial failed", "remote", p.String(), "source", f.source, "err", err)
			continue
		}
		d.m.discovered.WithLabelValues(f.source, "connected").Inc()
		d.log.Info("discovered relay connected", "remote", p.String(), "source", f.source)
	}
}

// rendezvousLoop advertises the relay under rendezvousKey and looks the
// key up: 1 s after the DHT routing table has a peer, then at doubling
// intervals up to DHTFindInterval; the advertisement is renewed every
// DHTAdvertiseInterval (retried at the lookup pace while it fails).
func (d *discovery) rendezvousLoop() {
	rd := drouting.NewRoutingDiscovery(d.dht)
	key := rendezvousKey(d.cfg.Network)
	wait := time.Second
	var nextAdvertise time.Time
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		if d.dht.RoutingTable().Size() == 0 {
			t.Reset(time.Second)
			continue
		}
		if now := time.Now(); !now.Before(nextAdvertise) {
			ctx, cancel := context.WithTimeout(d.ctx, rendezvousTimeout)
			_, err := rd.Advertise(ctx, key)
			cancel()
			if err != nil {
				if d.ctx.Err() != nil {
					return
				}
				d.log.Debug("dht advertise failed", "err", err)
			} else {
				nextAdvertise = now.Add(d.cfg.Discovery.DHTAdvertiseInterval)
			}
		}
		ctx, cancel := context.WithTimeout(d.ctx, rendezvousTimeout)
		if ch, err := rd.FindPeers(ctx, key); err == nil {
			for ai := range ch {
				d.discoveredPeer(ai, "dht")
			}
		}
		cancel()
		wait = min(2*wait, d.cfg.Discovery.DHTFindInterval)
		t.Reset(wait)
	}
}

// closeMDNS stops mDNS (close, or a failed Start).
func (d *discovery) closeMDNS() {
	if d.mdns != nil {
		_ = d.mdns.Close()
		d.mdns = nil
	}
}
