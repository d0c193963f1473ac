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

// Discovery beyond the bootstrap list, both off unless configured: mDNS
// on the local network, and a rendezvous on a Kademlia DHT. Both hand the
// relays they find to discovered; the discovery workers connect to them.
//
// Goroutines (Node.wg, ended by Node.ctx): discoveryWorker (a few, they
// dial), rendezvousLoop (with the DHT). go-libp2p's mDNS service and the
// DHT run their own, stopped by Close (mdns before our goroutines, the DHT
// after them).

const (
	// DHTProtocol is the Kademlia protocol of the federation's DHT: a DHT
	// of its own, not the IPFS one.
	DHTProtocol = dhtPrefix + "/kad/1.0.0"
	dhtPrefix   = "/gsio"
	// discoveryWorkers dial discovered relays concurrently.
	discoveryWorkers = 4
	// discoveryRedial is the least time between two dials of one
	// discovered peer that is not connected.
	discoveryRedial = 30 * time.Second
	// rendezvousTimeout bounds one advertisement or lookup.
	rendezvousTimeout = 30 * time.Second
)

// RendezvousKey is the DHT rendezvous key under which the relays of a
// network advertise themselves (a provider record for the CID of its
// SHA-256).
func RendezvousKey(network string) string { return "gsio/" + network + "/relays" }

// MDNSService is the DNS-SD service name of a network's relays.
func MDNSService(network string) string {
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

// discovery is the state shared by the discovery goroutines.
type discovery struct {
	found chan discovered
	mdns  mdns.Service
	dht   *dht.IpfsDHT

	mu      sync.Mutex
	dialed  map[peer.ID]time.Time // last dial of a discovered peer
	sources map[peer.ID]string    // how a peer was last found (at most maxSources)
}

// maxSources bounds discovery.sources.
const maxSources = 1024

type discovered struct {
	ai     peer.AddrInfo
	source string // "mdns", "dht"
}

// newDHT creates the DHT (it serves requests from now on); the
// rendezvous starts with Start.
func (n *Node) newDHT() (*dht.IpfsDHT, error) {
	mode := dht.ModeServer
	if n.cfg.Reachability == ReachabilityAuto {
		mode = dht.ModeAuto
	}
	opts := []dht.Option{
		dht.Mode(mode),
		dht.ProtocolPrefix(dhtPrefix), // DHTProtocol
		dht.BootstrapPeers(n.boot...),
		dht.DisableValues(),
	}
	if n.allow != nil {
		allow := n.allow
		opts = append(opts,
			dht.RoutingTableFilter(func(_ any, p peer.ID) bool { return allow.allowed(p) }),
			dht.QueryFilter(func(_ any, ai peer.AddrInfo) bool { return allow.allowed(ai.ID) }))
	}
	d, err := dht.New(n.host, opts...)
	if err != nil {
		return nil, fmt.Errorf("dht: %w", err)
	}
	return d, nil
}

// startMDNS starts the mDNS service if configured (from Start, first:
// it is the part of discovery that can fail).
func (n *Node) startMDNS() error {
	if !n.cfg.MDNS {
		return nil
	}
	s := mdns.NewMdnsService(n.host, MDNSService(n.cfg.Network), mdnsNotifee{n})
	if err := s.Start(); err != nil {
		_ = s.Close()
		return fmt.Errorf("mdns: %w", err)
	}
	n.disc.mdns = s
	return nil
}

// startDiscovery starts the discovery goroutines (from Start).
func (n *Node) startDiscovery() {
	if !n.cfg.MDNS && n.disc.dht == nil {
		return
	}
	for range discoveryWorkers {
		n.goroutine(n.discoveryWorker)
	}
	if n.disc.dht != nil {
		n.goroutine(n.rendezvousLoop)
	}
}

type mdnsNotifee struct{ n *Node }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { m.n.discoveredPeer(ai, "mdns") }

// discoveredPeer queues a peer for the discovery workers; it never
// blocks (a full queue drops the peer: it is found again).
func (n *Node) discoveredPeer(ai peer.AddrInfo, source string) {
	if ai.ID == n.self || ai.ID == "" || len(ai.Addrs) == 0 || !n.allow.allowed(ai.ID) {
		return
	}
	n.disc.mu.Lock()
	if _, ok := n.disc.sources[ai.ID]; ok || len(n.disc.sources) < maxSources {
		n.disc.sources[ai.ID] = source
	}
	n.disc.mu.Unlock()
	select {
	case n.disc.found <- discovered{ai, source}:
	default:
		n.m.discovered.WithLabelValues(source, "skipped").Inc()
	}
}

// DiscoveredBy tells how p was last found: "mdns", "dht", or "" if
// discovery never found it.
func (n *Node) DiscoveredBy(p peer.ID) string {
	n.disc.mu.Lock()
	defer n.disc.mu.Unlock()
	return n.disc.sources[p]
}

// discoveryWorker dials discovered peers that are not connected (without
// a relayed connection counting as connected), at most once per
// discoveryRedial each, while the host has fewer than ConnLow peers.
func (n *Node) discoveryWorker() {
	for {
		var d discovered
		select {
		case <-n.ctx.Done():
			return
		case d = <-n.disc.found:
		}
		p := d.ai.ID
		if n.host.Network().Connectedness(p) == network.Connected {
			n.m.discovered.WithLabelValues(d.source, "known").Inc()
			continue
		}
		if len(n.host.Network().Peers()) >= n.cfg.ConnLow {
			n.m.discovered.WithLabelValues(d.source, "skipped").Inc()
			continue
		}
		now := time.Now()
		n.disc.mu.Lock()
		last, seen := n.disc.dialed[p]
		if seen && now.Sub(last) < discoveryRedial {
			n.disc.mu.Unlock()
			n.m.discovered.WithLabelValues(d.source, "known").Inc()
			continue
		}
		n.disc.dialed[p] = now
		for q, t := range n.disc.dialed { // keep the table small
			if now.Sub(t) >= discoveryRedial {
				delete(n.disc.dialed, q)
			}
		}
		n.disc.mu.Unlock()

		ctx, cancel := context.WithTimeout(network.WithForceDirectDial(n.ctx, "discovery"), n.cfg.DirectDialTimeout)
		err := n.host.Connect(ctx, d.ai)
		cancel()
		if n.ctx.Err() != nil {
			return
		}
		if err != nil {
			n.m.discovered.WithLabelValues(d.source, "failed").Inc()
			n.log.Debug("discovered relay: dial failed", "remote", p.String(), "source", d.source, "err", err)
			continue
		}
		n.m.discovered.WithLabelValues(d.source, "connected").Inc()
		n.log.Info("discovered relay connected", "remote", p.String(), "source", d.source)
	}
}

// rendezvousLoop advertises the relay under RendezvousKey and looks the
// key up: 1 s after the DHT routing table has a peer, then at doubling
// intervals up to DHTFindInterval; the advertisement is renewed every
// DHTAdvertiseInterval (retried at the lookup pace while it fails).
func (n *Node) rendezvousLoop() {
	rd := drouting.NewRoutingDiscovery(n.disc.dht)
	key := RendezvousKey(n.cfg.Network)
	wait := time.Second
	var nextAdvertise time.Time
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if n.disc.dht.RoutingTable().Size() == 0 {
			t.Reset(time.Second)
			continue
		}
		if now := time.Now(); !now.Before(nextAdvertise) {
			ctx, cancel := context.WithTimeout(n.ctx, rendezvousTimeout)
			_, err := rd.Advertise(ctx, key)
			cancel()
			if err != nil {
				if n.ctx.Err() != nil {
					return
				}
				n.log.Debug("dht advertise failed", "err", err)
			} else {
				nextAdvertise = now.Add(n.cfg.DHTAdvertiseInterval)
			}
		}
		ctx, cancel := context.WithTimeout(n.ctx, rendezvousTimeout)
		if ch, err := rd.FindPeers(ctx, key); err == nil {
			for ai := range ch {
				n.discoveredPeer(ai, "dht")
			}
		}
		cancel()
		wait = min(2*wait, n.cfg.DHTFindInterval)
		t.Reset(wait)
	}
}

// closeMDNS stops mDNS (in Close, before our goroutines are waited for).
func (n *Node) closeMDNS() {
	if n.disc.mdns != nil {
		_ = n.disc.mdns.Close()
		n.disc.mdns = nil
	}
}

// closeDHT stops the DHT, after the rendezvous loop has ended.
func (n *Node) closeDHT() error {
	if n.disc.dht == nil {
		return nil
	}
	if err := n.disc.dht.Close(); err != nil {
		return fmt.Errorf("close dht: %w", err)
	}
	return nil
}
