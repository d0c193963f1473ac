package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"
)

// Probe dials any libp2p peer with a throwaway identity and reports what
// identify and ping tell of it (gsio-relay probe).

// ProbeResult is what a probe learnt of a peer.
type ProbeResult struct {
	ID              peer.ID
	Addr            ma.Multiaddr // the address of the connection
	AgentVersion    string
	ProtocolVersion string
	ListenAddrs     []ma.Multiaddr // as the peer announces them (identify)
	Protocols       []protocol.ID  // sorted
	ObservedAddr    ma.Multiaddr   // our address as the peer saw it; may be nil
	RTT             time.Duration  // one libp2p ping; 0 if ping failed
	PingErr         error          // why ping failed, if it did
	Limited         bool           // the connection is relayed (limited)
}

// RelayHop reports whether the peer serves circuit relay v2 (hop).
func (r *ProbeResult) RelayHop() bool { return slices.Contains(r.Protocols, proto.ProtoIDv2Hop) }

// GossipSub is the newest GossipSub protocol the peer speaks, or "".
func (r *ProbeResult) GossipSub() protocol.ID {
	var best protocol.ID
	for _, p := range r.Protocols {
		if strings.HasPrefix(string(p), "/meshsub/") && p > best {
			best = p
		}
	}
	return best
}

// GSIODirect reports whether the peer speaks DirectProtocol (a gsio relay).
func (r *ProbeResult) GSIODirect() bool {
	return slices.Contains(r.Protocols, protocol.ID(DirectProtocol))
}

// ProbeOptions configure Probe.
type ProbeOptions struct {
	// SwarmKey is the pre-shared key of a private federation (nil: none;
	// QUIC is then not used).
	SwarmKey pnet.PSK
	// UserAgent is the agent version the probe announces. Default
	// "gsio-relay-probe".
	UserAgent string
}

// errUnreachable wraps every failure to connect to the probed peer.
var errUnreachable = errors.New("unreachable")

// Probe connects to addr with a new identity, waits for identify, pings
// once and closes. addr may lack /p2p/<id>: the peer ID is then learnt
// from the security handshake (a first dial expecting a random ID
// fails with the actual one). ctx bounds the whole probe.
func Probe(ctx context.Context, addr ma.Multiaddr, o ProbeOptions) (*ProbeResult, error) {
	if o.UserAgent == "" {
		o.UserAgent = "gsio-relay-probe"
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("probe identity: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(websocket.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.UserAgent(o.UserAgent),
		libp2p.DisableMetrics(),
		libp2p.Ping(true),
	}
	if o.SwarmKey != nil {
		opts = append(opts, libp2p.PrivateNetwork(o.SwarmKey))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("probe host: %w", err)
	}
	defer h.Close()

	ai, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		// No /p2p/<id>: learn it from the handshake.
		if ai, err = probeLearnID(ctx, h, addr); err != nil {
			return nil, err
		}
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	defer sub.Close()
	if err := h.Connect(ctx, *ai); err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreachable, dialCause(err))
	}
	res := &ProbeResult{ID: ai.ID}
	if conns := h.Network().ConnsToPeer(ai.ID); len(conns) > 0 {
		res.Addr, res.Limited = conns[0].RemoteMultiaddr(), conns[0].Stat().Limited
	}
	idCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for res.AgentVersion == "" && res.Protocols == nil {
		select {
		case e := <-sub.Out():
			ev := e.(event.EvtPeerIdentificationCompleted)
			if ev.Peer != ai.ID {
				continue
			}
			res.AgentVersion, res.ProtocolVersion = ev.AgentVersion, ev.ProtocolVersion
			res.ListenAddrs, res.ObservedAddr = ev.ListenAddrs, ev.ObservedAddr
			res.Protocols = slices.Clone(ev.Protocols)
			if res.Protocols == nil {
				res.Protocols = []protocol.ID{}
			}
		case <-idCtx.Done():
			return nil, fmt.Errorf("%s answered but did not identify itself: %w", ai.ID, idCtx.Err())
		}
	}
	slices.Sort(res.Protocols)
	res.RTT, res.PingErr = probePing(network.WithAllowLimitedConn(ctx, "probe"), h, ai.ID)
	return res, nil
}

// probeLearnID dials addr expecting a random peer ID; the security
// handshake fails naming the actual one.
func probeLearnID(ctx context.Context, h host.Host, addr ma.Multiaddr) (*peer.AddrInfo, error) {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	guess, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return nil, err
	}
	err = h.Connect(ctx, peer.AddrInfo{ID: guess, Addrs: []ma.Multiaddr{addr}})
	var mm sec.ErrPeerIDMismatch
	if errors.As(err, &mm) {
		return &peer.AddrInfo{ID: mm.Actual, Addrs: []ma.Multiaddr{addr}}, nil
	}
	if err == nil {
		return nil, fmt.Errorf("%s: the peer accepted a random peer ID", addr)
	}
	return nil, fmt.Errorf("%w: %w", errUnreachable, dialCause(err))
}

// dialCause reduces a swarm dial error (several lines, one per address)
// to the first address's cause, or the timeout.
func dialCause(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("no answer before the timeout")
	}
	var de *swarm.DialError
	if errors.As(err, &de) {
		if len(de.DialErrors) > 0 {
			te := de.DialErrors[0]
			return fmt.Errorf("%s: %w", te.Address, te.Cause)
		}
		if de.Cause != nil {
			return de.Cause
		}
	}
	return err
}

// probePing measures one libp2p ping round trip to p, within 5 s.
func probePing(ctx context.Context, h host.Host, p peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pingOnce(ctx, h, p)
}

// pingOnce measures one libp2p ping round trip to p. It waits for the ping's
// goroutine to end before it returns.
func pingOnce(ctx context.Context, h host.Host, p peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	results := ping.Ping(ctx, h, p)
	var res ping.Result
	select {
	case r, ok := <-results:
		if ok {
			res = r
		} else {
			res.Error = ctx.Err()
		}
	case <-ctx.Done():
		res.Error = ctx.Err()
	}
	cancel()
	for range results { // ping's goroutine ends on cancel and closes results
	}
	return res.RTT, res.Error
}
