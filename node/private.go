package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
)

// Private federations: a pre-shared swarm key (go-libp2p pnet: every
// connection is encrypted with it before the security handshake, so a peer
// without the key cannot even complete a handshake), and an allow-list of
// peer IDs enforced by a connection gater, the pubsub blacklist, the
// direct stream handler and the DHT filters.

// LoadSwarmKey reads a pre-shared key file in the go-libp2p format
// ("/key/swarm/psk/1.0.0/", then "/base16/" and 64 hex digits).
func LoadSwarmKey(path string) (pnet.PSK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("swarm key: %w", err)
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("swarm key %s: %w (want /key/swarm/psk/1.0.0/, /base16/ and 64 hex digits, one per line)", path, err)
	}
	return psk, nil
}

// NewSwarmKey returns a new random swarm key file's content.
func NewSwarmKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("swarm key: %w", err)
	}
	return []byte("/key/swarm/psk/1.0.0/\n/base16/\n" + hex.EncodeToString(k) + "\n"), nil
}

// dropQUIC removes the QUIC (and WebTransport) addresses of addrs, which
// cannot carry a swarm key, and returns the removed ones.
func dropQUIC(addrs []ma.Multiaddr) (kept, dropped []ma.Multiaddr) {
	for _, a := range addrs {
		quic := false
		ma.ForEach(a, func(c ma.Component) bool {
			switch c.Protocol().Code {
			case ma.P_QUIC, ma.P_QUIC_V1, ma.P_WEBTRANSPORT, ma.P_WEBRTC_DIRECT:
				quic = true
				return false
			}
			return true
		})
		if quic {
			dropped = append(dropped, a)
		} else {
			kept = append(kept, a)
		}
	}
	return kept, dropped
}

// allowList is Config.Private.AllowPeers plus the bootstrap peers (the
// operator told the relay to dial them) and the relay itself. A nil
// *allowList allows everyone. Static after New.
type allowList struct {
	self peer.ID
	ids  map[peer.ID]bool
}

func newAllowList(self peer.ID, ids []peer.ID, boot []peer.AddrInfo) *allowList {
	if len(ids) == 0 {
		return nil
	}
	a := &allowList{self: self, ids: map[peer.ID]bool{}}
	for _, p := range ids {
		a.ids[p] = true
	}
	for _, b := range boot {
		a.ids[b.ID] = true
	}
	return a
}

func (a *allowList) allowed(p peer.ID) bool {
	return a == nil || p == a.self || a.ids[p]
}

// gater is the host's connection gater: the allow-list's (unless relay
// clients are allowed) and the programmer's (WithConnectionGater), both
// when both are set; nil when neither is.
func gater(cfg Config, allow *allowList, extra connmgr.ConnectionGater) connmgr.ConnectionGater {
	var gs bothGaters
	if allow != nil && !cfg.Private.AllowRelayClients {
		gs = append(gs, allowGater{allow})
	}
	if extra != nil {
		gs = append(gs, extra)
	}
	switch len(gs) {
	case 0:
		return nil
	case 1:
		return gs[0]
	}
	return gs
}

// bothGaters admits what every one of its gaters admits.
type bothGaters []connmgr.ConnectionGater

func (b bothGaters) InterceptPeerDial(p peer.ID) bool {
	for _, g := range b {
		if !g.InterceptPeerDial(p) {
			return false
		}
	}
	return true
}

func (b bothGaters) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	for _, g := range b {
		if !g.InterceptAddrDial(p, a) {
			return false
		}
	}
	return true
}

func (b bothGaters) InterceptAccept(c network.ConnMultiaddrs) bool {
	for _, g := range b {
		if !g.InterceptAccept(c) {
			return false
		}
	}
	return true
}

func (b bothGaters) InterceptSecured(d network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	for _, g := range b {
		if !g.InterceptSecured(d, p, c) {
			return false
		}
	}
	return true
}

func (b bothGaters) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	for _, g := range b {
		if ok, r := g.InterceptUpgraded(c); !ok {
			return false, r
		}
	}
	return true, 0
}

// allowGater refuses every connection, inbound or outbound, to a peer not
// on the allow-list. Inbound connections are refused once the security
// handshake has authenticated the peer.
type allowGater struct{ allow *allowList }

var _ connmgr.ConnectionGater = allowGater{}

func (g allowGater) InterceptPeerDial(p peer.ID) bool                 { return g.allow.allowed(p) }
func (g allowGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allow.allowed(p) }
func (g allowGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g allowGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allow.allowed(p)
}
func (g allowGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// allowBlacklist is the pubsub blacklist of a private federation: a peer
// not on the allow-list gets no pubsub stream, and messages it forwards or
// authored are dropped. Messages without an author (StrictNoSign) are not
// blacklisted. Peers added by pubsub.BlacklistPeer are kept too.
type allowBlacklist struct {
	allow *allowList
	mu    sync.Mutex
	extra map[peer.ID]struct{}
}

var _ pubsub.Blacklist = (*allowBlacklist)(nil)

func (b *allowBlacklist) Add(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.extra[p] = struct{}{}
	return true
}

func (b *allowBlacklist) Contains(p peer.ID) bool {
	if p == "" {
		return false
	}
	if !b.allow.allowed(p) {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.extra[p]
	return ok
}
