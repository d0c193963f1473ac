package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// Receiver is what the node delivers to: the router (relay.Inbound).
type Receiver interface {
	// Deliver is called for every validated broadcast or direct message
	// from another relay or a plain GossipSub peer, never for our own
	// publishes. env.Raw must not be modified; it may be retained.
	Deliver(env *message.Envelope)
	// Learned is Deliver for a broadcast learned by reconciliation
	// (sync.go); it may block to pace a burst of them to slow readers.
	Learned(env *message.Envelope)
	// Undeliverable reports a direct message of a local sender that could
	// not be delivered remotely (NACK, dial or write failure, queue full).
	Undeliverable(sender, messageID, recipient string)
}

var (
	errClosed       = errors.New("node closed")
	errNotStarted   = errors.New("node not started")
	errBackpressure = errors.New("broadcast queue full")
)

// Node is one relay's libp2p side. It composes the components of doc.go,
// each owning its goroutines, state and close, and keeps their order:
// Start starts them, Close stops them in reverse. It implements
// relay.Mesh; the read-only views for the admin API come from inspector.
type Node struct {
	*inspector

	host   host.Host
	cancel context.CancelFunc // of the node's context, every component's parent: Close's first step

	gossip   *gossip
	presence *presence
	pub      *publisher
	direct   *direct
	disc     *discovery
	insp     *inspectService
	sync     *syncer // nil without a history

	mu        sync.Mutex // guards started and closed; serializes Start and Close
	started   bool
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// Option configures what a programmer injects into a Node.
type Option func(*options)

type options struct {
	logger       *slog.Logger
	registerer   prometheus.Registerer
	gossipParams *pubsub.GossipSubParams
	inspect      inspectOptions // inspectproto.go
	history      HistoryStore   // sync.go
	gater        connmgr.ConnectionGater
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the node's metrics (gsio_node_*) and
// go-libp2p's with r. Without it the node's metrics are kept unregistered
// and libp2p metrics are off.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) { o.registerer = r }
}

// WithGossipSubParams replaces the GossipSub router parameters (tests use
// a short heartbeat). Default pubsub.DefaultGossipSubParams().
func WithGossipSubParams(p pubsub.GossipSubParams) Option {
	return func(o *options) { o.gossipParams = &p }
}

// WithConnectionGater adds a connection gater (tests cut relays apart
// with one); with an allow-list both must admit a connection.
func WithConnectionGater(g connmgr.ConnectionGater) Option {
	return func(o *options) { o.gater = g }
}

// core is what every component is built with.
type core struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	host   host.Host
	self   peer.ID
	tracer *tracer
}

// routines are a component's goroutines: its context (a child of the
// node's), the WaitGroup every one of them goes through, and stop.
type routines struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newRoutines(parent context.Context) routines {
	ctx, cancel := context.WithCancel(parent)
	return routines{ctx: ctx, cancel: cancel}
}

// spawn runs f in a goroutine tracked by the WaitGroup.
func (r *routines) spawn(f func()) { r.wg.Go(f) }

// stop cancels the context and waits for the goroutines.
func (r *routines) stop() {
	r.cancel()
	r.wg.Wait()
}

// New creates the libp2p host (listening), GossipSub and the DHT when
// configured. ctx bounds only the construction; the node lives until
// Close. Call Start to join the federation.
func New(ctx context.Context, cfg Config, opts ...Option) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A sync frame holds the largest broadcast.
	cfg.Sync.Limits.MaxFrame = max(cfg.Sync.Limits.MaxFrame, cfg.MaxMessageSize+64<<10)
	cfg.Sync.Limits.MaxBytes = max(cfg.Sync.Limits.MaxBytes, 4*int64(cfg.Sync.Limits.MaxFrame))
	a, perr := cfg.parse()
	if err := errors.Join(cfg.validate(), cfg.Inspect.validate(), cfg.Sync.validate(cfg.MaxMessageSize), perr); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	key, err := LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("node identity: %w", err)
	}
	c := core{cfg: cfg, log: o.logger.With("peer", self.String()), m: newMetrics(), self: self}
	c.tracer = newTracer(c.m, cfg.Network)
	var boot []peer.AddrInfo
	for _, b := range a.boot {
		if b.ID != self {
			boot = append(boot, b)
		}
	}
	allow := newAllowList(self, a.allow, boot)
	rsvps := newReservations(cfg.RelayService.ReservationTTL)
	if c.host, err = newHost(c, a, key, allow, rsvps, o); err != nil {
		return nil, err
	}
	n := &Node{host: c.host}
	// life is the node's context, every component's parent.
	life, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	dir := newDirectory(cfg.Presence, c.m)
	if n.disc, err = newDiscovery(life, c, boot, allow); err != nil {
		n.cancel()
		_ = c.host.Close()
		return nil, err
	}
	isRelay := func(p peer.ID) bool { return !dir.lastSeen(p).IsZero() }
	if n.gossip, err = newGossip(life, c, allow, isRelay, o.gossipParams); err != nil {
		n.cancel()
		_ = n.disc.close()
		_ = c.host.Close()
		return nil, err
	}
	std := &standing{g: n.gossip, allow: allow, boot: n.disc.isBootstrap}
	n.presence = newPresence(life, c, dir, n.gossip, std.good, allow)
	speak := newSpeakFor(life.Done(), dir, n.presence.isLocal, c.tracer, newHeldBudget(cfg.Gossip.ValidateConcurrency))
	federated := func() bool { return len(boot) > 0 || dir.relayCount() > 0 }
	n.pub = newPublisher(life, c, n.gossip, speak, federated, isRelay, std.good)
	n.direct = newDirect(life, c, dir, n.presence.isLocal, speak, allow)
	n.inspector = &inspector{cfg: cfg, self: self, host: c.host, gossip: n.gossip, dir: dir, disc: n.disc, rsvps: rsvps}
	if n.insp, err = newInspectService(life, c, n.inspector, n.presence, dir, allow, o); err != nil {
		_ = n.Close()
		return nil, err
	}
	if o.history != nil && cfg.Sync.Enable {
		n.sync = newSyncer(life, c, o.history, n.gossip, dir, n.presence.isLocal, isRelay, std.good)
		heard := n.sync.heard
		n.presence.heard.Store(&heard)
	}
	onLastDisconnect(c.host, rsvps.ended) // the relay service drops the reservation too
	if o.registerer != nil {
		if err := c.m.register(o.registerer); err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("node metrics: %w", err)
		}
	}
	c.log.Info("libp2p host up", "addrs", fmt.Sprint(n.Addrs()))
	return n, nil
}

// onLastDisconnect calls f for a peer whose last connection closed.
func onLastDisconnect(h host.Host, f func(peer.ID)) {
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(net network.Network, c network.Conn) {
		if p := c.RemotePeer(); net.Connectedness(p) != network.Connected {
			f(p)
		}
	}})
}

// Start joins the topics and starts the components' goroutines. r
// receives remote messages.
func (n *Node) Start(r Receiver) error {
	if r == nil {
		return errors.New("node start: nil receiver")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errClosed
	}
	if n.started {
		return errors.New("node already started")
	}
	if err := n.disc.startMDNS(); err != nil {
		return err
	}
	if err := n.gossip.join(n.pub.validate, n.presence.validate); err != nil {
		n.gossip.leave()
		n.disc.closeMDNS()
		return err
	}
	n.started = true
	n.direct.start(r)
	n.pub.start(r)
	n.presence.start()
	n.gossip.start()
	n.disc.start()
	n.insp.start()
	n.sync.start(r)
	return nil
}

// Close stops the components in reverse order and closes the host: it
// cancels every component's context at once, then waits for each one's
// goroutines and releases what it holds (discovery: mDNS, then the DHT
// after its goroutines; direct: its streams, inbound included; gossip:
// pubsub, then subscriptions and topics). It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()

		n.cancel()
		n.sync.close()
		n.insp.close()
		dhtErr := n.disc.close()
		n.direct.close()
		n.pub.close()
		n.presence.close()
		n.mu.Lock()
		n.gossip.close()
		n.mu.Unlock()
		n.closeErr = errors.Join(dhtErr, n.host.Close())
	})
	return n.closeErr
}

// ID is the relay's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Addrs are the host's addresses with /p2p/<id>, ready to give to another
// relay's Bootstrap.
func (n *Node) Addrs() []ma.Multiaddr {
	p2p, err := ma.NewComponent("p2p", n.host.ID().String())
	if err != nil {
		return nil
	}
	var out []ma.Multiaddr
	for _, a := range n.host.Addrs() {
		out = append(out, a.Encapsulate(p2p.Multiaddr()))
	}
	return out
}

// Broadcast queues env.Raw for publication on the broadcast topic. It
// never blocks: a full queue is an error.
func (n *Node) Broadcast(env *message.Envelope) error { return n.pub.broadcast(env) }

// Direct sends env toward a relay that holds env.Recipient. It reports
// false when no other relay is known to hold it. It never blocks on the
// network; a failure later is reported through Receiver.Undeliverable.
func (n *Node) Direct(env *message.Envelope) bool { return n.direct.send(env) }

// NodeJoined records a local node and announces it at once (a join
// message) and in every snapshot. It never blocks.
func (n *Node) NodeJoined(nodeID string, proof *nodeauth.Proof) { n.presence.joined(nodeID, proof) }

// NodeLeft removes a local node and announces the leave at once.
func (n *Node) NodeLeft(nodeID string) { n.presence.left(nodeID) }

// RemoteNodes lists the node ids held by other relays, each once.
func (n *Node) RemoteNodes() []string { return n.presence.dir.remoteNodes() }

// ClosePeer closes every connection to p (a bootstrap peer is then
// redialled; a connection gater may refuse it).
func (n *Node) ClosePeer(p peer.ID) error { return n.host.Network().ClosePeer(p) }

// RelayWSURLs lists the public WebSocket URLs other relays announce in
// presence (--public-ws-url), sorted: where a draining relay sends its
// nodes.
func (n *Node) RelayWSURLs() []string { return n.presence.dir.wsURLs() }
