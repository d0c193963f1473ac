package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// gossip owns GossipSub: the pubsub instance (with the tracer of core),
// our two topics, joined by Start and left by Close, and the sampled peer
// scores. Its goroutines are subscriptionWatch (subwatch.go) and
// reportDrops. The topics' readers are presence's and publisher's.
type gossip struct {
	core
	routines
	isRelay  func(peer.ID) bool // p is a relay in the presence directory
	ps       *pubsub.PubSub
	psCancel context.CancelFunc

	// The topics: written by join and leave only (Start, and Close once
	// every reader has ended, both under Node.mu), read by the goroutines
	// that run in between.
	bcast, pres topicHandle

	scoresMu sync.Mutex
	scores   map[peer.ID]float64
}

// topicHandle is one joined topic.
type topicHandle struct {
	name   string
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	events *pubsub.TopicEventHandler
}

// maxSubscriptionsPerRPC bounds the subscriptions of one GossipSub RPC: a
// relay announces two, a plain peer of other applications a few more.
const maxSubscriptionsPerRPC = 64

// dropReportInterval is the least time between two log lines of drops.
const dropReportInterval = 10 * time.Second

func newGossip(parent context.Context, c core, allow *allowList, isRelay func(peer.ID) bool, params *pubsub.GossipSubParams) (*gossip, error) {
	g := &gossip{core: c, routines: newRoutines(parent), isRelay: isRelay, scores: map[peer.ID]float64{}}
	g.bcast.name, g.pres.name = broadcastTopic(c.cfg.Network), presenceTopic(c.cfg.Network)
	// Not a child of the node's context: Close stops every component's
	// goroutines first, while pubsub still runs.
	psCtx, psCancel := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(psCtx, c.host, g.options(allow, params)...)
	if err != nil {
		psCancel()
		g.cancel()
		return nil, fmt.Errorf("gossipsub: %w", err)
	}
	g.ps, g.psCancel = ps, psCancel
	// Pubsub emits no PRUNE event when a peer disconnects.
	onLastDisconnect(c.host, c.tracer.removePeer)
	return g, nil
}

func (g *gossip) options(allow *allowList, params *pubsub.GossipSubParams) []pubsub.Option {
	cfg := g.cfg
	gp := pubsub.DefaultGossipSubParams()
	if params != nil {
		gp = *params
	}
	policy := pubsub.StrictSign
	if !cfg.Gossip.Sign {
		policy = pubsub.StrictNoSign
	}
	opts := []pubsub.Option{
		pubsub.WithGossipSubParams(gp),
		pubsub.WithMessageIdFn(pubsubMsgID),
		pubsub.WithMessageSignaturePolicy(policy),
		pubsub.WithMaxMessageSize(cfg.MaxMessageSize + 64<<10),
		pubsub.WithPeerOutboundQueueSize(cfg.Gossip.PeerOutboundQueueSize),
		pubsub.WithValidateQueueSize(cfg.Gossip.ValidateQueueSize),
		pubsub.WithValidateWorkers(cfg.Gossip.ValidateWorkers),
		pubsub.WithValidateThrottle(2 * cfg.Gossip.ValidateConcurrency),
		pubsub.WithSeenMessagesTTL(cfg.SeenMessagesTTL),
		pubsub.WithPeerExchange(false),
		// Our own messages go to every subscribed peer, not only to the
		// mesh (go-libp2p-pubsub v0.19 has it off by default): a relay
		// just started or reconnected has an empty mesh until the next
		// heartbeat, and what it published meanwhile would reach no one.
		pubsub.WithFloodPublish(true),
		pubsub.WithRawTracer(g.tracer),
		pubsub.WithLogger(g.log.With("system", "pubsub")),
		pubsub.WithPeerScore(scoreParams(cfg.Network), scoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(g.inspectScores), cfg.Gossip.ScoreInspectInterval),
		// Our two topics only, and an RPC announcing more than
		// maxSubscriptionsPerRPC subscriptions is dropped whole: a peer
		// cannot make pubsub track a million topics.
		pubsub.WithSubscriptionFilter(pubsub.WrapLimitSubscriptionFilter(
			pubsub.NewAllowlistSubscriptionFilter(g.bcast.name, g.pres.name), maxSubscriptionsPerRPC)),
		pubsub.WithAppSpecificRpcInspector(newPeerGate(cfg, g.tracer).inspect),
	}
	if allow != nil {
		opts = append(opts, pubsub.WithBlacklist(&allowBlacklist{allow: allow, extra: map[peer.ID]struct{}{}}))
	}
	if !cfg.Gossip.Sign {
		// StrictNoSign with an author would still send From/Seqno; the
		// message id is content-derived anyway.
		opts = append(opts, pubsub.WithNoAuthor())
	}
	return opts
}

// join registers the validators, joins both topics, opens their peer
// event handlers and subscribes.
func (g *gossip) join(validateBroadcast, validatePresence pubsub.ValidatorEx) error {
	if err := g.ps.RegisterTopicValidator(g.bcast.name, validateBroadcast,
		pubsub.WithValidatorConcurrency(g.cfg.Gossip.ValidateConcurrency)); err != nil {
		return fmt.Errorf("register validator %q: %w", g.bcast.name, err)
	}
	if err := g.ps.RegisterTopicValidator(g.pres.name, validatePresence, pubsub.WithValidatorInline(true)); err != nil {
		return fmt.Errorf("register validator %q: %w", g.pres.name, err)
	}
	open := func(h *topicHandle, buffer int) error {
		var err error
		if h.topic, err = g.ps.Join(h.name); err != nil {
			return fmt.Errorf("join topic %q: %w", h.name, err)
		}
		if h.events, err = h.topic.EventHandler(); err != nil {
			return fmt.Errorf("topic %q events: %w", h.name, err)
		}
		if h.sub, err = h.topic.Subscribe(pubsub.WithBufferSize(buffer)); err != nil {
			return fmt.Errorf("subscribe %q: %w", h.name, err)
		}
		return nil
	}
	if err := open(&g.bcast, g.cfg.Gossip.SubscriptionBuffer); err != nil {
		return err
	}
	return open(&g.pres, max(1024, g.cfg.Gossip.SubscriptionBuffer/8))
}

// leave cancels the event handlers and subscriptions, closes the topics
// and unregisters the validators; used by Close and by a failed Start.
func (g *gossip) leave() {
	for _, h := range []*topicHandle{&g.pres, &g.bcast} {
		if h.events != nil {
			h.events.Cancel()
		}
	}
	for _, h := range []*topicHandle{&g.bcast, &g.pres} {
		if h.sub != nil {
			h.sub.Cancel()
		}
	}
	for _, h := range []*topicHandle{&g.bcast, &g.pres} {
		if h.topic != nil {
			if err := h.topic.Close(); err != nil && !errors.Is(err, context.Canceled) {
				g.log.Debug("close topic", "topic", h.name, "err", err)
			}
		}
		_ = g.ps.UnregisterTopicValidator(h.name)
		h.topic, h.sub, h.events = nil, nil, nil
	}
}

// start starts subscriptionWatch and reportDrops.
func (g *gossip) start() {
	g.spawn(g.subscriptionWatch)
	g.spawn(g.reportDrops)
}

// close waits for the goroutines, then stops pubsub and leaves the topics.
// Pubsub is stopped before the subscriptions are cancelled: a graceful
// unsubscribe sends PRUNE with a 10 s backoff, and a relay restarted
// within it (same peer id) would be refused by its neighbours' meshes for
// a minute. The host closes the connections right after anyway.
// Cancelling the subscriptions and closing the topics then only releases
// their handles.
func (g *gossip) close() {
	g.stop()
	g.psCancel()
	g.leave()
}

// readSub reads sub until ctx ends or it is cancelled, and hands each
// message that is not our own publish (pubsub hands those back) to handle.
func readSub(ctx context.Context, self peer.ID, sub *pubsub.Subscription, handle func(*pubsub.Message)) {
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if m.ReceivedFrom == self {
			continue
		}
		handle(m)
	}
}

// origin is the authenticated author of a gossip message: the From field
// under StrictSign; "" under StrictNoSign (unknown).
func (g *gossip) origin(m *pubsub.Message) peer.ID {
	if !g.cfg.Gossip.Sign {
		return ""
	}
	return m.GetFrom()
}

func (g *gossip) inspectScores(scores map[peer.ID]float64) {
	g.scoresMu.Lock()
	g.scores = scores
	g.scoresMu.Unlock()
	for _, s := range scores {
		sign := "nonnegative"
		if s < 0 {
			sign = "negative"
		}
		g.m.peerScore.WithLabelValues(sign).Observe(s)
	}
}

// score returns p's last sampled GossipSub score, if it was sampled.
func (g *gossip) score(p peer.ID) (float64, bool) {
	g.scoresMu.Lock()
	defer g.scoresMu.Unlock()
	s, ok := g.scores[p]
	return s, ok
}

// peerScores returns the last sampled GossipSub score of each connected
// peer (sampled every Gossip.ScoreInspectInterval).
func (g *gossip) peerScores() map[peer.ID]float64 {
	g.scoresMu.Lock()
	defer g.scoresMu.Unlock()
	out := make(map[peer.ID]float64, len(g.scores))
	for p, s := range g.scores {
		out[p] = s
	}
	return out
}

// reportDrops logs the drops counted by the tracer in one aggregated line
// at most every dropReportInterval.
func (g *gossip) reportDrops() {
	t := time.NewTicker(dropReportInterval)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			d := g.tracer.takeDrops()
			if len(d) == 0 {
				continue
			}
			parts := make([]string, 0, len(d))
			for k, v := range d {
				parts = append(parts, fmt.Sprintf("%s=%d", k, v))
			}
			g.log.Warn("federation dropped messages", "drops", strings.Join(parts, " "))
		}
	}
}
