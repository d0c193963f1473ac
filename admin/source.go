package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/transport"
)

// Source is what the API reports on. Its methods are called concurrently
// from request goroutines.
type Source interface {
	Info() Info
	Peers() Peers
	Nodes() Nodes
	Topics() Topics
	Reservations() Reservations
	// Ready returns why the relay is not ready, or nil.
	Ready() error
}

// Sampler is a Source that measures something in the background (peer
// latency). The server calls Sample from one goroutine, at Start and then
// periodically, until Close; Sample must return soon after ctx ends.
type Sampler interface {
	Sample(ctx context.Context)
}

// RelaySource reports on one relay. Node is nil for a standalone relay.
// Fill it before the server starts; it is not changed afterwards, except
// for the sampler's own state.
type RelaySource struct {
	Node    *node.Node
	Router  *relay.Router
	WS      *transport.Server
	Version string
	Started time.Time // when the relay started; default: when first asked
	// PingInterval is how often each connected peer is pinged to measure
	// its latency (Peer.LatencyMS). Default 15 s.
	PingInterval time.Duration

	once     sync.Once
	lastPing map[peer.ID]time.Time // owned by the sampler goroutine
}

var (
	_ Source  = (*RelaySource)(nil)
	_ Sampler = (*RelaySource)(nil)
)

func (s *RelaySource) init() {
	s.once.Do(func() {
		if s.Started.IsZero() {
			s.Started = time.Now()
		}
		if s.PingInterval <= 0 {
			s.PingInterval = 15 * time.Second
		}
		s.lastPing = map[peer.ID]time.Time{}
	})
}

// Ready: the relay is not draining, the WebSocket listener serves, and
// when bootstrap peers are configured, at least one federation peer (a
// bootstrap peer or a relay in the presence directory) is connected.
func (s *RelaySource) Ready() error {
	if s.Router.Draining() {
		return errors.New("draining: the relay takes no new nodes")
	}
	if !s.WS.Ready() {
		return errors.New("websocket listener not serving")
	}
	if s.Node != nil {
		if boot := len(s.Node.BootstrapPeers()); boot > 0 && s.Node.FederationPeers() == 0 {
			return fmt.Errorf("no federation peer connected (%d bootstrap %s configured)", boot, plural(boot, "peer", "peers"))
		}
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Info describes the relay.
func (s *RelaySource) Info() Info {
	s.init()
	now := time.Now()
	info := Info{
		Version:        s.Version,
		Standalone:     s.Node == nil,
		StartedAt:      s.Started.UTC(),
		UptimeSeconds:  seconds(now.Sub(s.Started)),
		ListenAddrs:    []string{},
		AnnouncedAddrs: []string{},
	}
	if a := s.WS.Addr(); a != nil {
		info.WebSocket = a.String()
	}
	if err := s.Ready(); err != nil {
		info.NotReady = err.Error()
	} else {
		info.Ready = true
	}
	info.Draining = s.Router.Draining()
	info.Counts.Connections = s.WS.Conns()
	info.Counts.LocalNodes = len(s.Router.LocalNodes())
	info.Counts.FederationNodes = len(s.Router.Nodes())
	if n := s.Node; n != nil {
		info.PeerID = n.ID().String()
		info.Network = n.Network()
		info.ListenAddrs = addrStrings(n.ListenAddrs())
		info.AnnouncedAddrs = addrStrings(n.AnnouncedAddrs())
		slices.Sort(info.ListenAddrs)
		slices.Sort(info.AnnouncedAddrs)
		for _, p := range n.PeerInfos() {
			info.Counts.Peers++
			if p.Relay {
				info.Counts.Relays++
			}
		}
		info.Counts.Reservations = len(n.Reservations())
	}
	return info
}

// Peers describes the connected libp2p peers.
func (s *RelaySource) Peers() Peers {
	out := Peers{Peers: []Peer{}}
	if s.Node == nil {
		return out
	}
	now := time.Now()
	for _, pi := range s.Node.PeerInfos() {
		p := Peer{
			ID:         pi.ID.String(),
			Addrs:      []string{},
			Protocols:  []string{},
			Agent:      pi.Agent,
			GsioRelay:  pi.Relay,
			Bootstrap:  pi.Bootstrap,
			Subscribed: nonNil(pi.Subscribed),
			Mesh:       nonNil(pi.Mesh),
			Limited:    len(pi.Conns) > 0,
		}
		for _, c := range pi.Conns {
			dir := direction(c.Direction)
			p.Addrs = append(p.Addrs, c.Remote.String())
			p.Connections = append(p.Connections, Conn{Addr: c.Remote.String(), Direction: dir, OpenedAt: c.Opened.UTC(), Limited: c.Limited})
			p.Limited = p.Limited && c.Limited
		}
		if len(pi.Conns) > 0 {
			p.Direction = direction(pi.Conns[0].Direction)
			p.ConnectedAt = pi.Conns[0].Opened.UTC()
			p.AgeSeconds = seconds(now.Sub(pi.Conns[0].Opened))
		}
		if pi.Latency > 0 {
			ms := float64(pi.Latency) / float64(time.Millisecond)
			p.LatencyMS = &ms
		}
		for _, pr := range pi.Protocols {
			p.Protocols = append(p.Protocols, string(pr))
		}
		if pi.Scored {
			sc := pi.Score
			p.Score = &sc
		}
		out.Peers = append(out.Peers, p)
	}
	return out
}

// Nodes lists the local nodes and every node of the federation with the
// relays that hold it.
func (s *RelaySource) Nodes() Nodes {
	now := time.Now()
	out := Nodes{Local: []LocalNode{}, Federation: []FederationNode{}}
	if s.Node != nil {
		out.Relay = s.Node.ID().String()
	}
	holders := map[string][]string{}
	local := map[string]bool{}
	for _, si := range s.Router.Sessions() {
		out.Local = append(out.Local, LocalNode{
			ID:          si.NodeID,
			Remote:      si.Remote,
			ConnectedAt: si.ConnectedAt.UTC(),
			AgeSeconds:  seconds(now.Sub(si.ConnectedAt)),
			MessagesIn:  si.MessagesIn,
			MessagesOut: si.MessagesOut,
			QueueFrames: si.QueueFrames,
			QueueBytes:  si.QueueBytes,
		})
		local[si.NodeID] = true
		holders[si.NodeID] = nil
		if out.Relay != "" {
			holders[si.NodeID] = []string{out.Relay}
		}
	}
	if s.Node != nil {
		for r, ids := range s.Node.RemoteRelays() {
			for _, id := range ids {
				holders[id] = append(holders[id], r.String())
			}
		}
	}
	for id, rs := range holders {
		slices.Sort(rs)
		out.Federation = append(out.Federation, FederationNode{ID: id, Local: local[id], Relays: nonNil(slices.Compact(rs))})
	}
	slices.SortFunc(out.Federation, func(a, b FederationNode) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Topics lists the peers of each topic.
func (s *RelaySource) Topics() Topics {
	out := Topics{Topics: []Topic{}}
	if s.Node == nil {
		return out
	}
	for _, t := range s.Node.TopicInfos() {
		out.Topics = append(out.Topics, Topic{Topic: t.Topic, Subscribed: peerStrings(t.Subscribed), Mesh: peerStrings(t.Mesh)})
	}
	return out
}

// Reservations lists the circuit relay v2 reservations.
func (s *RelaySource) Reservations() Reservations {
	out := Reservations{Reservations: []Reservation{}}
	if s.Node == nil {
		return out
	}
	for _, r := range s.Node.Reservations() {
		out.Reservations = append(out.Reservations, Reservation{Peer: r.Peer.String(), Expires: r.Expires.UTC(), Addrs: addrStrings(r.Addrs)})
	}
	return out
}

// pingTimeout bounds one latency ping; pingParallel bounds pings at once.
const (
	pingTimeout  = 5 * time.Second
	pingParallel = 8
)

// Sample pings the connected peers not pinged within PingInterval; the
// round trips go to the peerstore, where Peers reads them. It returns when
// every ping it started has ended.
func (s *RelaySource) Sample(ctx context.Context) {
	s.init()
	if s.Node == nil {
		return
	}
	now := time.Now()
	peers := s.Node.ConnectedPeers()
	connected := make(map[peer.ID]bool, len(peers))
	var due []peer.ID
	for _, p := range peers {
		connected[p] = true
		if now.Sub(s.lastPing[p]) >= s.PingInterval {
			due = append(due, p)
			s.lastPing[p] = now
		}
	}
	for p := range s.lastPing {
		if !connected[p] {
			delete(s.lastPing, p)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, pingParallel)
	for _, p := range due {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			defer cancel()
			_, _ = s.Node.Ping(pctx, p)
		})
	}
	wg.Wait()
}

func direction(d network.Direction) string {
	switch d {
	case network.DirInbound:
		return "inbound"
	case network.DirOutbound:
		return "outbound"
	}
	return "unknown"
}

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func peerStrings(ps []peer.ID) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
