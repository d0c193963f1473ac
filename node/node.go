package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	goyamux "github.com/libp2p/go-yamux/v5"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gsio-net/gsio-relay/message"
)

// Receiver is what the node delivers to: the router (relay.Inbound).
type Receiver interface {
	// Deliver is called for every validated broadcast or direct message
	// from another relay or a plain GossipSub peer, never for our own
	// publishes. env.Raw must not be modified; it may be retained.
	Deliver(env *message.Envelope)
	// Undeliverable reports a direct message of a local sender that could
	// not be delivered remotely (NACK, dial or write failure, queue full).
	Undeliverable(sender, messageID, recipient string)
}

// ErrClosed is returned by calls on a closed Node.
var ErrClosed = errors.New("node closed")

// ErrBackpressure is returned by Broadcast when the publish queue is full.
var ErrBackpressure = errors.New("broadcast queue full")

// ErrNotStarted is returned by Broadcast before Start.
var ErrNotStarted = errors.New("node not started")

// Node is one relay's libp2p side: host, GossipSub, presence directory and
// direct streams. It implements relay.Mesh.
type Node struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	host     host.Host
	self     peer.ID
	key      crypto.PrivKey
	boot     []peer.AddrInfo
	announce []ma.Multiaddr
	psk      pnet.PSK
	allow    *allowList    // nil: anyone; static after New
	rsvps    *reservations // relay service reservations (natrelay.go)
	disc     discovery     // mDNS and DHT (discovery.go)

	ps       *pubsub.PubSub
	psCancel context.CancelFunc
	tracer   *tracer

	// ctx is cancelled by Close; every goroutine in wg watches it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	startMu    sync.Mutex // guards started/closed transitions and the fields below
	started    bool
	closed     bool
	recv       Receiver
	bcastTopic *pubsub.Topic
	presTopic  *pubsub.Topic
	bcastSub   *pubsub.Subscription
	presSub    *pubsub.Subscription

	dir *directory

	// local nodes (localMu): see presence.go.
	localMu      sync.Mutex
	local        map[string]struct{}
	localPending map[string]bool
	presenceKick chan struct{}
	snapshotKick chan struct{}
	presEvents   *pubsub.TopicEventHandler
	bcastEvents  *pubsub.TopicEventHandler
	// bcastPeers are the peers pubsub knows subscribed to the broadcast
	// topic; bcastJoined is kicked when one joins (see awaitTopicPeers).
	bcastMu     sync.Mutex
	bcastPeers  map[peer.ID]struct{}
	bcastJoined chan struct{}
	epoch       int64

	pubQ chan []byte

	// direct routing: see direct.go.
	sendersMu     sync.Mutex
	senders       map[peer.ID]*sender
	sendersClosed bool
	undeliv       chan undeliverable
	inMu          sync.Mutex
	inClosed      bool
	inStreams     map[network.Stream]struct{}
	inWG          sync.WaitGroup
	seenDirect    *timeCache
	sentLog       *timeCache

	pendingMu sync.Mutex
	pending   map[peer.ID]int // messages held by the speak-for wait, per origin

	scoresMu sync.Mutex
	scores   map[peer.ID]float64

	bootKick map[peer.ID]chan struct{} // static after New

	closeOnce sync.Once
	closeErr  error
}

// New creates the libp2p host (listening) and GossipSub. ctx bounds only
// the construction; the node lives until Close. Call Start to join the
// federation.
func New(ctx context.Context, cfg Config, opts ...Option) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	listen, announce, boot, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	m := newMetrics()
	key, err := LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("node identity: %w", err)
	}
	n := &Node{
		cfg:          cfg,
		log:          o.logger.With("peer", self.String()),
		m:            m,
		self:         self,
		key:          key,
		announce:     announce,
		local:        map[string]struct{}{},
		localPending: map[string]bool{},
		presenceKick: make(chan struct{}, 1),
		snapshotKick: make(chan struct{}, 1),
		bcastJoined:  make(chan struct{}, 1),
		bcastPeers:   map[peer.ID]struct{}{},
		epoch:        time.Now().UnixMilli(),
		pubQ:         make(chan []byte, cfg.PublishQueueSize),
		senders:      map[peer.ID]*sender{},
		undeliv:      make(chan undeliverable, 4096),
		inStreams:    map[network.Stream]struct{}{},
		seenDirect:   newTimeCache(cfg.SeenMessagesTTL, 1<<16),
		sentLog:      newTimeCache(cfg.SeenMessagesTTL, 1<<16),
		pending:      map[peer.ID]int{},
		scores:       map[peer.ID]float64{},
		bootKick:     map[peer.ID]chan struct{}{},
	}
	for _, b := range boot {
		if b.ID != self {
			n.boot = append(n.boot, b)
			n.bootKick[b.ID] = make(chan struct{}, 1)
		}
	}
	n.allow = newAllowList(self, cfg.AllowPeers, n.boot)
	n.rsvps = newReservations(cfg.RelayReservationTTL)
	n.disc = discovery{found: make(chan discovered, 256), dialed: map[peer.ID]time.Time{}, sources: map[peer.ID]string{}}
	if cfg.SwarmKey != "" {
		if n.psk, err = LoadSwarmKey(cfg.SwarmKey); err != nil {
			return nil, err
		}
		if fi, err := os.Stat(cfg.SwarmKey); err == nil && fi.Mode().Perm()&0o077 != 0 {
			n.log.Warn("swarm key file is readable by group or others: chmod 600 it", "file", cfg.SwarmKey)
		}
		var dropped []ma.Multiaddr
		listen, dropped = dropQUIC(listen)
		n.announce, _ = dropQUIC(n.announce)
		if len(dropped) > 0 {
			n.log.Warn("swarm key set: QUIC disabled (a pre-shared key works with TCP and WebSocket only)", "dropped", fmt.Sprint(dropped))
		}
		if len(listen) == 0 {
			return nil, errors.New("node config: a swarm key does not work with QUIC and no other listen address is left: add a TCP listen address")
		}
	}
	n.dir = newDirectory(cfg, m)
	n.ctx, n.cancel = context.WithCancel(context.Background())

	h, err := n.newHost(listen, o)
	if err != nil {
		n.cancel()
		return nil, err
	}
	n.host = h
	if cfg.DHT {
		if n.disc.dht, err = n.newDHT(); err != nil {
			n.cancel()
			_ = h.Close()
			return nil, err
		}
	}
	h.SetStreamHandler(DirectProtocol, n.handleDirect)
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: n.onDisconnected})

	// Not a child of n.ctx: Close cancels n.ctx first and waits for our
	// goroutines while pubsub still runs.
	psCtx, psCancel := context.WithCancel(context.Background())
	n.psCancel = psCancel
	n.tracer = newTracer(n)
	ps, err := pubsub.NewGossipSub(psCtx, h, n.pubsubOptions(o)...)
	if err != nil {
		psCancel()
		n.cancel()
		_ = n.closeDHT()
		_ = h.Close()
		return nil, fmt.Errorf("gossipsub: %w", err)
	}
	n.ps = ps
	if o.registerer != nil {
		if err := m.register(o.registerer); err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("node metrics: %w", err)
		}
	}
	n.log.Info("libp2p host up", "addrs", fmt.Sprint(n.Addrs()))
	return n, nil
}

// newHost builds the libp2p host: the identity, TCP/QUIC/WebSocket (no
// QUIC with a swarm key), Noise and TLS, yamux, a resource manager scaled
// to the machine, the connection manager, identify and ping; the private
// network key and the allow-list gater; the relay service, AutoNAT and
// hole punching (natOptions).
func (n *Node) newHost(listen []ma.Multiaddr, o options) (host.Host, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(n.cfg.ConnLow, n.cfg.ConnHigh, connmgr.WithGracePeriod(n.cfg.ConnGrace))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	lopts := []libp2p.Option{
		libp2p.Identity(n.key),
		libp2p.ListenAddrs(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(websocket.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, muxer()),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(&watchedConnMgr{BasicConnMgr: cm, rs: n.rsvps}),
		libp2p.Ping(true),
		libp2p.UserAgent("gsio-relay"),
	}
	if n.psk == nil {
		lopts = append(lopts, libp2p.Transport(quic.NewTransport))
	} else {
		lopts = append(lopts, libp2p.PrivateNetwork(n.psk))
	}
	if n.allow != nil && !n.cfg.AllowRelayClients {
		lopts = append(lopts, libp2p.ConnectionGater(allowGater{n.allow}))
	}
	lopts = append(lopts, n.natOptions(o)...)
	if len(n.announce) > 0 {
		announce := n.announce
		lopts = append(lopts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	if o.registerer != nil {
		lopts = append(lopts, libp2p.PrometheusRegisterer(o.registerer))
	} else {
		lopts = append(lopts, libp2p.DisableMetrics())
	}
	lopts = append(lopts, o.libp2pOpts...)
	h, err := libp2p.New(lopts...)
	if err != nil {
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	return h, nil
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

// Start joins the topics, subscribes, and starts the presence, publish,
// bootstrap and housekeeping goroutines. r receives remote messages.
func (n *Node) Start(r Receiver) error {
	if r == nil {
		return errors.New("node start: nil receiver")
	}
	n.startMu.Lock()
	defer n.startMu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if n.started {
		return errors.New("node already started")
	}
	if err := n.startMDNS(); err != nil {
		return err
	}
	if err := n.joinTopics(); err != nil {
		n.leaveTopics()
		n.closeMDNS()
		return err
	}
	n.recv = r
	n.started = true

	n.goroutine(func() { n.subLoop(n.bcastSub, n.onBroadcast) })
	n.goroutine(func() { n.subLoop(n.presSub, n.onPresence) })
	n.goroutine(n.publishLoop)
	n.goroutine(n.presenceLoop)
	n.goroutine(func() { n.presenceEvents(n.presEvents) })
	n.goroutine(func() { n.broadcastEvents(n.bcastEvents) })
	n.goroutine(n.sweepLoop)
	n.goroutine(n.subscriptionWatch)
	n.goroutine(n.undeliverableLoop)
	for _, b := range n.boot {
		n.goroutine(func() { n.bootstrapLoop(b) })
	}
	n.startDiscovery()
	return nil
}

// goroutine starts f tracked by the node's WaitGroup.
func (n *Node) goroutine(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// ID is the relay's peer ID.
func (n *Node) ID() peer.ID { return n.self }

// Host is the libp2p host (for the admin API and probes).
func (n *Node) Host() host.Host { return n.host }

// PubSub is the GossipSub instance.
func (n *Node) PubSub() *pubsub.PubSub { return n.ps }

// Addrs are the host's addresses with /p2p/<id>, ready to give to another
// relay's Bootstrap.
func (n *Node) Addrs() []ma.Multiaddr {
	p2p, err := ma.NewComponent("p2p", n.self.String())
	if err != nil {
		return nil
	}
	var out []ma.Multiaddr
	for _, a := range n.host.Addrs() {
		out = append(out, a.Encapsulate(p2p.Multiaddr()))
	}
	return out
}

// PeerScores returns the last sampled GossipSub score of each connected
// peer (sampled every Config.ScoreInspectInterval).
func (n *Node) PeerScores() map[peer.ID]float64 {
	n.scoresMu.Lock()
	defer n.scoresMu.Unlock()
	out := make(map[peer.ID]float64, len(n.scores))
	for p, s := range n.scores {
		out[p] = s
	}
	return out
}

// MeshPeers lists the peers in our GossipSub mesh for topic (as seen by
// GRAFT/PRUNE events).
func (n *Node) MeshPeers(topic string) []peer.ID { return n.tracer.meshPeers(topic) }

// Topics returns the broadcast and presence topic names.
func (n *Node) Topics() (broadcast, presence string) {
	return BroadcastTopic(n.cfg.Network), PresenceTopic(n.cfg.Network)
}

// Close stops the node: our goroutines, then pubsub, subscriptions and
// topics, and the host, in that order, and waits for every goroutine it
// started and every stream handler it runs. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.startMu.Lock()
		n.closed = true
		n.startMu.Unlock()

		n.cancel()
		n.closeMDNS()
		n.sendersMu.Lock()
		n.sendersClosed = true // no sender goroutine starts after this
		for _, s := range n.senders {
			s.reset() // unblock a write in progress
		}
		n.sendersMu.Unlock()
		n.wg.Wait()
		dhtErr := n.closeDHT()

		// Pubsub is stopped before the subscriptions are cancelled: a
		// graceful unsubscribe sends PRUNE with a 10 s backoff, and a
		// relay restarted within it (same peer id) would be refused by its
		// neighbours' meshes for a minute. The host closes the connections
		// right after anyway. Cancelling the subscriptions and closing the
		// topics then only releases their handles.
		n.psCancel()
		n.startMu.Lock()
		n.leaveTopics()
		n.startMu.Unlock()
		err := n.host.Close()

		n.inMu.Lock()
		n.inClosed = true
		for s := range n.inStreams {
			_ = s.Reset()
		}
		n.inMu.Unlock()
		n.inWG.Wait()
		n.closeErr = errors.Join(dhtErr, err)
	})
	return n.closeErr
}

// leaveTopics cancels subscriptions and closes topics; used by Close and
// by a failed Start. Callers hold startMu or run after closed is set.
func (n *Node) leaveTopics() {
	for _, h := range []*pubsub.TopicEventHandler{n.presEvents, n.bcastEvents} {
		if h != nil {
			h.Cancel()
		}
	}
	n.presEvents, n.bcastEvents = nil, nil
	for _, s := range []*pubsub.Subscription{n.bcastSub, n.presSub} {
		if s != nil {
			s.Cancel()
		}
	}
	for _, t := range []*pubsub.Topic{n.bcastTopic, n.presTopic} {
		if t != nil {
			if err := t.Close(); err != nil && !errors.Is(err, context.Canceled) {
				n.log.Debug("close topic", "topic", t.String(), "err", err)
			}
		}
	}
	if n.ps != nil {
		b, p := n.Topics()
		_ = n.ps.UnregisterTopicValidator(b)
		_ = n.ps.UnregisterTopicValidator(p)
	}
	n.bcastSub, n.presSub, n.bcastTopic, n.presTopic = nil, nil, nil, nil
}

// sweepLoop expires directory entries, samples nothing else, and reports
// drops in one aggregated log line at most every 10 s.
func (n *Node) sweepLoop() {
	sweep := max(n.cfg.PresenceInterval/4, 10*time.Millisecond)
	t := time.NewTicker(sweep)
	defer t.Stop()
	lastReport := time.Now()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			for _, r := range n.dir.expire(now) {
				n.log.Info("relay presence expired", "remote", r.String())
			}
			if now.Sub(lastReport) >= 10*time.Second {
				lastReport = now
				if d := n.tracer.takeDrops(); len(d) > 0 {
					parts := make([]string, 0, len(d))
					for k, v := range d {
						parts = append(parts, fmt.Sprintf("%s=%d", k, v))
					}
					n.log.Warn("federation dropped messages", "drops", strings.Join(parts, " "))
				}
			}
		}
	}
}
