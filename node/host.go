package node

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/pnet"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	goyamux "github.com/libp2p/go-yamux/v5"
	ma "github.com/multiformats/go-multiaddr"
)

// newHost builds the libp2p host: the identity, TCP/QUIC/WebSocket (no
// QUIC with a swarm key), Noise and TLS, yamux, a resource manager scaled
// to the machine, the connection manager, identify and ping; the private
// network key and the allow-list gater; the relay service, AutoNAT and
// hole punching (natOptions).
func newHost(c core, a addrs, key crypto.PrivKey, allow *allowList, rsvps *reservations, o options) (host.Host, error) {
	cfg := c.cfg
	listen, announce := a.listen, a.announce
	var psk pnet.PSK
	if f := cfg.Private.SwarmKey; f != "" {
		var err error
		if psk, err = LoadSwarmKey(f); err != nil {
			return nil, err
		}
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
			c.log.Warn("swarm key file is readable by group or others: chmod 600 it", "file", f)
		}
		var dropped []ma.Multiaddr
		listen, dropped = dropQUIC(listen)
		announce, _ = dropQUIC(announce)
		if len(dropped) > 0 {
			c.log.Warn("swarm key set: QUIC disabled (a pre-shared key works with TCP and WebSocket only)", "dropped", fmt.Sprint(dropped))
		}
		if len(listen) == 0 {
			return nil, errors.New("node config: a swarm key does not work with QUIC and no other listen address is left: add a TCP listen address")
		}
	}

	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(connLimits(cfg.Host)))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.Host.ConnLow, cfg.Host.ConnHigh, connmgr.WithGracePeriod(cfg.Host.ConnGrace))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	lopts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(websocket.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, muxer()),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(&watchedConnMgr{BasicConnMgr: cm, rs: rsvps}),
		libp2p.Ping(true),
		libp2p.UserAgent("gsio-relay"),
	}
	if psk == nil {
		lopts = append(lopts, libp2p.Transport(quic.NewTransport))
	} else {
		lopts = append(lopts, libp2p.PrivateNetwork(psk))
	}
	if g := gater(cfg, allow, o.gater); g != nil {
		lopts = append(lopts, libp2p.ConnectionGater(g))
	}
	lopts = append(lopts, natOptions(cfg, a.reserve, announce)...)
	if len(announce) > 0 {
		lopts = append(lopts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	if o.registerer != nil {
		lopts = append(lopts, libp2p.PrometheusRegisterer(o.registerer))
	} else {
		lopts = append(lopts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(lopts...)
	if err != nil {
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	return h, nil
}

// connLimits are go-libp2p's resource manager limits scaled to the
// machine, with the system's connections raised, where the scaling left
// them lower, to half again the connection manager's high water mark
// (inbound) and twice it (in all): the connection manager must trim
// connections before the resource manager refuses new ones, or a peer
// that opens connections until the limit (from many addresses: one
// address gets 8, the resource manager's per-IP limit) keeps honest
// relays out until its connections age past ConnGrace.
func connLimits(h HostConfig) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	scaled := limits.AutoScale()
	p := scaled.ToPartialLimitConfig()
	in, all := rcmgr.LimitVal(h.ConnHigh+h.ConnHigh/2), rcmgr.LimitVal(2*h.ConnHigh)
	if p.System.ConnsInbound < in {
		p.System.ConnsInbound = in
	}
	if p.System.Conns < all {
		p.System.Conns = all
	}
	if p.System.FD < all {
		p.System.FD = all
	}
	return p.Build(scaled)
}

// muxKeepAlive is yamux's keepalive interval. A connection whose peer
// stopped answering (cut off, not closed) is closed after this plus yamux's
// 10 s write timeout: 15 s instead of yamux's default 40 s, so that a
// relay cut off and back on a new address meets live connections only.
const muxKeepAlive = 5 * time.Second

// muxer is go-libp2p's yamux transport with muxKeepAlive.
func muxer() *yamux.Transport {
	cfg := *(*goyamux.Config)(yamux.DefaultTransport)
	cfg.KeepAliveInterval = muxKeepAlive
	return (*yamux.Transport)(&cfg)
}
