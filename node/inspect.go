package node

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// Read-only views of the node for the admin API (package admin). Nothing
// here changes the node's state, except Ping, which records a round-trip
// time in the peerstore as every libp2p ping does. Each call takes the
// locks of the tables it reads one at a time (directory.mu, scoresMu,
// tracer.mu) and asks pubsub for topic peers through its event loop.

// PeerInfo is what the node knows of one connected libp2p peer.
type PeerInfo struct {
	ID         peer.ID
	Conns      []ConnInfo    // open connections, oldest first
	Latency    time.Duration // peerstore EWMA of ping round trips; 0 = not measured
	Protocols  []protocol.ID // from identify, sorted
	Agent      string        // identify agent version; "" until identified
	Relay      bool          // a gsio relay: in the presence directory, or speaks DirectProtocol
	Bootstrap  bool          // one of Config.Bootstrap
	Subscribed []string      // our topics the peer subscribes to
	Mesh       []string      // our topics whose GossipSub mesh holds the peer
	Score      float64       // last sampled GossipSub score
	Scored     bool          // Score has been sampled (Config.ScoreInspectInterval)
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

// Network is the federation name (Config.Network).
func (n *Node) Network() string { return n.cfg.Network }

// ListenAddrs are the addresses the host listens on, as configured (an
// unspecified IP such as 0.0.0.0 stays unexpanded).
func (n *Node) ListenAddrs() []ma.Multiaddr { return n.host.Network().ListenAddresses() }

// AnnouncedAddrs are the addresses the host gives to other peers
// (identify, presence): Config.Announce when set, else the listen
// addresses expanded to the machine's interfaces. No /p2p component.
func (n *Node) AnnouncedAddrs() []ma.Multiaddr { return n.host.Addrs() }

// BootstrapPeers are the configured bootstrap peers (without this relay).
func (n *Node) BootstrapPeers() []peer.ID {
	out := make([]peer.ID, 0, len(n.boot))
	for _, b := range n.boot {
		out = append(out, b.ID)
	}
	return out
}

// FederationPeers counts the connected peers that are bootstrap peers or
// relays in the presence directory.
func (n *Node) FederationPeers() int {
	k := 0
	for _, p := range n.host.Network().Peers() {
		if _, boot := n.bootKick[p]; boot || !n.dir.lastSeen(p).IsZero() {
			k++
		}
	}
	return k
}

// PeerInfos describes every connected peer, sorted by peer ID.
func (n *Node) PeerInfos() []PeerInfo {
	peers := n.host.Network().Peers()
	slices.Sort(peers)
	bt, pt := n.Topics()
	topics := []string{bt, pt}
	subscribed := make([]map[peer.ID]bool, len(topics))
	mesh := make([]map[peer.ID]bool, len(topics))
	for i, t := range topics {
		subscribed[i] = peerSet(n.ps.ListPeers(t))
		mesh[i] = peerSet(n.tracer.meshPeers(t))
	}
	scores := n.PeerScores()
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
		_, info.Bootstrap = n.bootKick[p]
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
func (n *Node) TopicInfos() []TopicInfo {
	bt, pt := n.Topics()
	out := make([]TopicInfo, 0, 2)
	for _, t := range []string{bt, pt} {
		sub, mesh := n.ps.ListPeers(t), n.tracer.meshPeers(t)
		slices.Sort(sub)
		slices.Sort(mesh)
		out = append(out, TopicInfo{Topic: t, Subscribed: sub, Mesh: mesh})
	}
	return out
}

// Reservations lists the circuit relay v2 reservations this relay holds
// for connected peers, sorted by peer ID; Addrs are the circuit addresses
// through which each peer is reachable via this relay (natrelay.go).
func (n *Node) Reservations() []Reservation { return n.relayReservations() }

// Ping measures one round trip to the connected peer p with the libp2p
// ping protocol; the peerstore records it (PeerInfo.Latency). It waits for
// the ping's goroutine to end before it returns.
func (n *Node) Ping(ctx context.Context, p peer.ID) (time.Duration, error) {
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
