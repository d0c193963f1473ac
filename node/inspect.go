package node

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// inspector is the read-only view of the node for the admin API (package
// admin) and the harness in testnet/: Node embeds it, so its methods are
// Node's. Nothing here changes the node's state, except Ping, which
// records a round-trip time in the peerstore as every libp2p ping does. It
// runs no goroutine and has no state of its own: each call takes the
// locks of the tables it reads one at a time (directory.mu,
// gossip.scoresMu, tracer.mu, reservations.mu) and asks pubsub for topic
// peers through its event loop.
type inspector struct {
	cfg    Config
	self   peer.ID
	host   host.Host
	gossip *gossip
	dir    *directory
	disc   *discovery
	rsvps  *reservations
}

// PeerInfo is what the node knows of one connected libp2p peer.
type PeerInfo struct {
	ID         peer.ID
	Conns      []ConnInfo    // open connections, oldest first
	Latency    time.Duration // peerstore EWMA of ping round trips; 0 = not measured
	Protocols  []protocol.ID // from identify, sorted
	Agent      string        // identify agent version; "" until identified
	Relay      bool          // a gsio relay: in the presence directory, or speaks DirectProtocol
	Bootstrap  bool          // one of Config.Discovery.Bootstrap
	Subscribed []string      // our topics the peer subscribes to
	Mesh       []string      // our topics whose GossipSub mesh holds the peer
	Score      float64       // last sampled GossipSub score
	Scored     bool          // Score has been sampled (Config.Gossip.ScoreInspectInterval)
}

// ConnInfo is one open connection to a peer.
type ConnInfo struct {
	Remote    ma.Multiaddr
	Direction network.Direction
	Opened    time.Time
	Limited   bool // a limited (circuit relay v2) connection
}

// TopicInfo lists the peers of one of our topics.
type TopicInfo struct {
	Topic      string
	Subscribed []peer.ID // peers subscribed to the topic, sorted
	Mesh       []peer.ID // peers in our mesh of the topic, sorted
}

// Reservation is a circuit relay v2 reservation.
type Reservation struct {
	Peer    peer.ID
	Expires time.Time
	Addrs   []ma.Multiaddr
}

// Topics returns the broadcast and presence topic names.
func (n *inspector) Topics() (broadcast, presence string) {
	return n.gossip.bcast.name, n.gossip.pres.name
}

// MeshPeers lists the peers in our GossipSub mesh for topic (as seen by
// GRAFT/PRUNE events).
func (n *inspector) MeshPeers(topic string) []peer.ID { return n.gossip.tracer.meshPeers(topic) }

// ConnectedPeers lists the peers the host is connected to.
func (n *inspector) ConnectedPeers() []peer.ID { return n.host.Network().Peers() }

// RemoteRelays lists the node ids each other relay announces.
func (n *inspector) RemoteRelays() map[peer.ID][]string { return n.dir.snapshot() }

// Network is the federation name (Config.Network).
func (n *inspector) Network() string { return n.cfg.Network }

// ListenAddrs are the addresses the host listens on, as configured (an
// unspecified IP such as 0.0.0.0 stays unexpanded).
func (n *inspector) ListenAddrs() []ma.Multiaddr { return n.host.Network().ListenAddresses() }

// AnnouncedAddrs are the addresses the host gives to other peers
// (identify, presence): Config.Host.Announce when set, else the listen
// addresses expanded to the machine's interfaces. No /p2p component.
func (n *inspector) AnnouncedAddrs() []ma.Multiaddr { return n.host.Addrs() }

// BootstrapPeers are the configured bootstrap peers (without this relay).
func (n *inspector) BootstrapPeers() []peer.ID {
	out := make([]peer.ID, 0, len(n.disc.boot))
	for _, b := range n.disc.boot {
		out = append(out, b.ID)
	}
	return out
}

// FederationPeers counts the connected peers that are bootstrap peers or
// relays in the presence directory.
func (n *inspector) FederationPeers() int {
	k := 0
	for _, p := range n.host.Network().Peers() {
		if n.disc.isBootstrap(p) || !n.dir.lastSeen(p).IsZero() {
			k++
		}
	}
	return k
}

// PeerInfos describes every connected peer, sorted by peer ID.
func (n *inspector) PeerInfos() []PeerInfo {
	peers := n.host.Network().Peers()
	slices.Sort(peers)
	bt, pt := n.Topics()
	topics := []string{bt, pt}
	subscribed := make([]map[peer.ID]bool, len(topics))
	mesh := make([]map[peer.ID]bool, len(topics))
	for i, t := range topics {
		subscribed[i] = peerSet(n.gossip.ps.ListPeers(t))
		mesh[i] = peerSet(n.gossip.tracer.meshPeers(t))
	}
	scores := n.gossip.peerScores()
	ps := n.host.Peerstore()
	out := make([]PeerInfo, 0, len(peers))
	for _, p := range peers {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue // disconnected meanwhile
		}
		info := PeerInfo{ID: p, Latency: ps.LatencyEWMA(p)}
		for _, c := range conns {
			st := c.Stat()
			info.Conns = append(info.Conns, ConnInfo{
				Remote: c.RemoteMultiaddr(), Direction: st.Direction, Opened: st.Opened, Limited: st.Limited,
			})
		}
		slices.SortFunc(info.Conns, func(a, b ConnInfo) int { return a.Opened.Compare(b.Opened) })
		if protos, err := ps.GetProtocols(p); err == nil {
			info.Protocols = slices.Clone(protos)
			slices.Sort(info.Protocols)
		}
		if v, err := ps.Get(p, "AgentVersion"); err == nil {
			info.Agent, _ = v.(string)
		}
		info.Bootstrap = n.disc.isBootstrap(p)
		info.Relay = !n.dir.lastSeen(p).IsZero() || slices.Contains(info.Protocols, protocol.ID(DirectProtocol))
		for i, t := range topics {
			if subscribed[i][p] {
				info.Subscribed = append(info.Subscribed, t)
			}
			if mesh[i][p] {
				info.Mesh = append(info.Mesh, t)
			}
		}
		info.Score, info.Scored = scores[p]
		out = append(out, info)
	}
	return out
}

// TopicInfos lists the subscribed and mesh peers of each of our topics.
func (n *inspector) TopicInfos() []TopicInfo {
	bt, pt := n.Topics()
	out := make([]TopicInfo, 0, 2)
	for _, t := range []string{bt, pt} {
		sub, mesh := n.gossip.ps.ListPeers(t), n.gossip.tracer.meshPeers(t)
		slices.Sort(sub)
		slices.Sort(mesh)
		out = append(out, TopicInfo{Topic: t, Subscribed: sub, Mesh: mesh})
	}
	return out
}

// Reservations lists the circuit relay v2 reservations this relay holds
// for connected peers, sorted by peer ID; Addrs are the circuit addresses
// through which each peer is reachable via this relay (natrelay.go).
func (n *inspector) Reservations() []Reservation {
	if !n.cfg.RelayService.Enable {
		return nil
	}
	live := n.rsvps.live(time.Now())
	if len(live) == 0 {
		return nil
	}
	var own []ma.Multiaddr
	for _, a := range n.host.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue
		}
		own = append(own, a)
	}
	out := make([]Reservation, 0, len(live))
	for p, exp := range live {
		if n.host.Network().Connectedness(p) != network.Connected {
			continue
		}
		r := Reservation{Peer: p, Expires: exp}
		for _, a := range own {
			if c, err := ma.NewMultiaddr(a.String() + "/p2p/" + n.self.String() + "/p2p-circuit/p2p/" + p.String()); err == nil {
				r.Addrs = append(r.Addrs, c)
			}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Reservation) int { return strings.Compare(string(a.Peer), string(b.Peer)) })
	return out
}

// Ping measures one round trip to the connected peer p with the libp2p
// ping protocol; the peerstore records it (PeerInfo.Latency). It waits for
// the ping's goroutine to end before it returns.
func (n *inspector) Ping(ctx context.Context, p peer.ID) (time.Duration, error) {
	if n.host.Network().Connectedness(p) != network.Connected {
		return 0, errors.New("not connected")
	}
	return pingOnce(ctx, n.host, p)
}

func peerSet(ids []peer.ID) map[peer.ID]bool {
	m := make(map[peer.ID]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
