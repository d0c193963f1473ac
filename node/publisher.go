package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gsio-net/gsio-relay/message"
)

// maxBatchMessages bounds the messages of one batch a relay accepts from
// the broadcast topic (docs/PROTOCOL.md "Batches").
const maxBatchMessages = 1024

// publisher owns the broadcast topic's traffic both ways. Outbound:
// broadcast queues a local message, publishLoop publishes what queued as
// one gossip message (a batch) once a peer can receive it. Inbound:
// validate (the topic validator, run by pubsub, holding a message for the
// speak-for rule) and readLoop, which hands accepted messages to the
// Receiver. broadcastEvents keeps the topic's peers for publishLoop.
type publisher struct {
	core
	routines
	g         *gossip
	speak     *speakFor
	federated func() bool // there are relays to wait for (bootstrap peers, or relays in the directory)
	isRelay   func(peer.ID) bool
	good      func(peer.ID) bool // standing.good
	rate      originRate
	recv      Receiver // set by start, before the goroutines
	started   atomic.Bool
	q         chan []byte

	peersMu sync.Mutex
	peers   map[peer.ID]struct{} // peers pubsub knows subscribed to the broadcast topic
	joined  chan struct{}        // kicked when one joins (awaitTopicPeers)
}

func newPublisher(parent context.Context, c core, g *gossip, speak *speakFor, federated func() bool, isRelay, good func(peer.ID) bool) *publisher {
	return &publisher{
		core:      c,
		routines:  newRoutines(parent),
		g:         g,
		speak:     speak,
		federated: federated,
		isRelay:   isRelay,
		good:      good,
		rate:      newOriginRate(c.cfg),
		q:         make(chan []byte, c.cfg.Publish.QueueSize),
		peers:     map[peer.ID]struct{}{},
		joined:    make(chan struct{}, 1),
	}
}

// start starts readLoop, publishLoop and broadcastEvents (the topic is
// joined).
func (p *publisher) start(r Receiver) {
	p.recv = r
	p.started.Store(true)
	p.spawn(func() { readSub(p.ctx, p.self, p.g.bcast.sub, p.deliver) })
	p.spawn(p.publishLoop)
	p.spawn(p.broadcastEvents)
}

func (p *publisher) close() { p.stop() }

// broadcast queues env.Raw for publication. It never blocks: a full queue
// returns errBackpressure.
func (p *publisher) broadcast(env *message.Envelope) error {
	if env == nil || env.ID == "" || env.Sender == "" || env.Recipient != "" {
		return errors.New("broadcast: need a broadcast message with sender_id and message_id")
	}
	if len(env.Raw) > p.cfg.MaxMessageSize {
		return fmt.Errorf("broadcast: message of %d bytes over the federation limit of %d", len(env.Raw), p.cfg.MaxMessageSize)
	}
	if p.ctx.Err() != nil {
		return errClosed
	}
	if !p.started.Load() {
		return errNotStarted
	}
	select {
	case p.q <- env.Raw:
		return nil
	default:
		p.tracer.drop("publish_queue_full", 1)
		return errBackpressure
	}
}

// publishLoop is the only publisher of broadcasts: it takes the
// network-facing blocking off the router's goroutines. What queued while
// it was publishing goes out as one batch: signing, validation and
// pubsub's per-message work are then paid per batch, and a lone message
// is published as it is.
func (p *publisher) publishLoop() {
	limit := min(p.cfg.Publish.BatchBytes, p.cfg.MaxMessageSize)
	topic := p.g.bcast.topic
	emptySince := time.Now() // the topic has had no peer since
	var (
		batch [][]byte
		carry []byte // taken from the queue but over the byte limit: next batch
	)
	for {
		batch = batch[:0]
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case <-p.ctx.Done():
				return
			case data := <-p.q:
				batch = append(batch, data)
			}
		}
		size := len(batch[0]) + 2
	fill:
		for len(batch) < p.cfg.Publish.BatchMax {
			select {
			case data := <-p.q:
				if size+len(data)+1 > limit {
					carry = data
					break fill
				}
				batch = append(batch, data)
				size += len(data) + 1
			default:
				break fill
			}
		}
		p.awaitTopicPeers(&emptySince)
		data := batch[0]
		if len(batch) > 1 {
			// A fresh buffer: pubsub keeps the bytes (seen cache, gossip).
			data = message.AppendBatch(make([]byte, 0, size), batch)
		}
		if err := topic.Publish(p.ctx, data); err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.log.Warn("publish broadcast", "topic", p.g.bcast.name, "messages", len(batch), "err", err)
			continue
		}
		p.m.published.Add(float64(len(batch)))
		p.m.batch.Observe(float64(len(batch)))
	}
}

// broadcastEvents keeps peers, the peers known subscribed to the
// broadcast topic, and kicks joined when one joins.
func (p *publisher) broadcastEvents() {
	h := p.g.bcast.events
	for {
		ev, err := h.NextPeerEvent(p.ctx)
		if err != nil {
			return
		}
		p.peersMu.Lock()
		switch ev.Type {
		case pubsub.PeerJoin:
			p.peers[ev.Peer] = struct{}{}
		case pubsub.PeerLeave:
			delete(p.peers, ev.Peer)
		}
		p.peersMu.Unlock()
		if ev.Type == pubsub.PeerJoin {
			select {
			case p.joined <- struct{}{}:
			default:
			}
		}
	}
}

// canPublish reports whether pubsub would send a broadcast to anyone: a
// peer subscribed to the topic to which it has an outbound stream. (A
// peer's subscriptions may arrive before pubsub's stream to it is open;
// an RPC for it is dropped until then.)
func (p *publisher) canPublish() bool {
	p.peersMu.Lock()
	ps := make([]peer.ID, 0, len(p.peers))
	for q := range p.peers {
		ps = append(ps, q)
	}
	p.peersMu.Unlock()
	return p.tracer.anyOutbound(ps)
}

// awaitTopicPeers holds a publish while no peer would receive it although
// the relay has a federation to expect (federated): GossipSub would send
// it to no one, and nothing sends it later. The wait ends when a peer can
// receive it, or Publish.PeerWait after the topic became empty
// (*emptySince); after that, publishes go out at once until the topic has
// had a peer again.
func (p *publisher) awaitTopicPeers(emptySince *time.Time) {
	if p.canPublish() {
		*emptySince = time.Time{}
		return
	}
	if emptySince.IsZero() {
		*emptySince = time.Now()
	}
	if !p.federated() {
		return // alone by configuration: nobody to wait for
	}
	wait := time.Until(emptySince.Add(p.cfg.Publish.PeerWait))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	start := time.Now()
	for !p.canPublish() {
		select {
		case <-p.joined:
		case <-p.tracer.outbound:
		case <-t.C:
			p.log.Warn("publishing broadcasts with no federation peer subscribed", "waited", time.Since(start).Round(time.Millisecond))
			return
		case <-p.ctx.Done():
			return
		}
	}
	p.m.publishWait.Observe(time.Since(start).Seconds())
	*emptySince = time.Time{}
}

// accepted is what validate hands to deliver.
type accepted struct {
	envs []message.Envelope
	at   time.Time
}

// validate is the broadcast topic validator (docs/PROTOCOL.md
// "Validation"). It runs asynchronously: the speak-for rule may hold a
// message for up to Presence.SpeakForWait. A batch is accepted only if
// every message in it is.
func (p *publisher) validate(ctx context.Context, src peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	if src == p.self {
		return pubsub.ValidationAccept // our own publish, checked in broadcast
	}
	envs, reason := checkBroadcast(m.GetData(), p.cfg.MaxMessageSize)
	if reason == "too_large" && p.isRelay(src) && p.good(src) {
		// A relay in good standing with a larger --max-message-size: a
		// configuration mismatch, not hostility. Ignored, not penalised.
		p.m.validated("broadcast", pubsub.ValidationIgnore, reason)
		return pubsub.ValidationIgnore
	}
	if reason != "" {
		p.m.validated("broadcast", pubsub.ValidationReject, reason)
		p.log.Debug("broadcast rejected", "remote", src.String(), "reason", reason)
		return pubsub.ValidationReject
	}
	// A live broadcast carries the federation ts its entry relay gave it
	// (a plain GossipSub peer may leave it out; the receiving relay then
	// stamps it). One far from this relay's clock is a relay with a wrong
	// clock or a backdating one: ignored, not penalised (clock skew is not
	// hostile).
	now := time.Now().UnixMilli()
	for k := range envs {
		if ts := envs[k].TS; ts != 0 && (ts > now+maxTSSkew.Milliseconds() || ts < now-maxTSAge.Milliseconds()) {
			p.m.validated("broadcast", pubsub.ValidationIgnore, "bad_ts")
			p.log.Debug("broadcast ignored", "remote", src.String(), "reason", "bad_ts", "ts", ts)
			return pubsub.ValidationIgnore
		}
	}
	o := p.g.origin(m)
	if o == p.self {
		// Our own message from an earlier run, replayed by a peer.
		p.m.validated("broadcast", pubsub.ValidationIgnore, "own_origin")
		return pubsub.ValidationIgnore
	}
	// The origin's rate, before anything is held for it.
	key := src
	if o != "" && p.isRelay(o) {
		key = o
	}
	if !p.rate.allow(key, len(envs), time.Now()) {
		p.m.validated("broadcast", pubsub.ValidationIgnore, "origin_rate")
		p.tracer.drop("origin_rate", len(envs))
		return pubsub.ValidationIgnore
	}
	if o != "" {
		// One SpeakForWait for the whole batch, not one per sender.
		deadline := time.Now().Add(p.cfg.Presence.SpeakForWait)
		for k := range envs {
			if k > 0 && envs[k].Sender == envs[k-1].Sender {
				continue // the common case: one sender's run
			}
			if r, reason := p.speak.check(ctx, o, src, envs[k].Sender, deadline); r != pubsub.ValidationAccept {
				p.m.validated("broadcast", r, reason)
				p.log.Debug("broadcast refused", "remote", src.String(), "node", envs[k].Sender, "reason", reason)
				return r
			}
		}
	}
	m.ValidatorData = &accepted{envs: envs, at: time.Now()}
	p.m.validated("broadcast", pubsub.ValidationAccept, "")
	return pubsub.ValidationAccept
}

// deliver hands the messages of an accepted gossip message to the
// Receiver.
func (p *publisher) deliver(m *pubsub.Message) {
	a, ok := m.ValidatorData.(*accepted)
	if !ok {
		return
	}
	// How far the subscription reader lags behind validation; when the
	// subscription buffer overflows pubsub drops (subscriber_too_slow).
	p.m.subLag.Observe(time.Since(a.at).Seconds())
	p.m.delivered.WithLabelValues("broadcast").Add(float64(len(a.envs)))
	for k := range a.envs {
		p.recv.Deliver(&a.envs[k])
	}
	// Pubsub's message cache keeps m for its gossip window (5 heartbeats);
	// the parsed envelopes need not stay with it. Pubsub itself never
	// reads ValidatorData after validation.
	m.ValidatorData = nil
}

// Bounds of a live broadcast's ts against the receiver's clock.
const (
	maxTSSkew = time.Minute      // ahead of our clock
	maxTSAge  = 10 * time.Minute // behind it (live gossip is seconds old)
)

// checkBroadcast validates the data of a broadcast topic message: one GSIO
// broadcast message, or a batch of 1 to maxBatchMessages of them, each at
// most maxSize bytes. It returns a reason label when the data is invalid.
func checkBroadcast(data []byte, maxSize int) ([]message.Envelope, string) {
	if len(data) > maxSize {
		return nil, "too_large"
	}
	if !message.IsBatch(data) {
		env, reason := checkEnvelope(data, maxSize, false)
		if reason != "" {
			return nil, reason
		}
		return []message.Envelope{env}, ""
	}
	elems, err := message.SplitBatch(data, maxBatchMessages)
	if err != nil {
		var me *message.Error
		if errors.As(err, &me) {
			return nil, "batch_" + me.Code
		}
		return nil, "batch_" + message.CodeInvalidMessage
	}
	envs := make([]message.Envelope, len(elems))
	for k, e := range elems {
		var reason string
		if envs[k], reason = checkEnvelope(e, maxSize, false); reason != "" {
			return nil, reason
		}
	}
	return envs, ""
}

// checkEnvelope validates a GSIO message received from another relay: size,
// JSON shape, message_id present, and broadcast vs direct. It returns a
// reason label when the message is invalid.
func checkEnvelope(data []byte, maxSize int, direct bool) (message.Envelope, string) {
	if len(data) > maxSize {
		return message.Envelope{}, "too_large"
	}
	env, err := message.Parse(data)
	if err != nil {
		var me *message.Error
		if errors.As(err, &me) {
			return env, me.Code
		}
		return env, message.CodeInvalidMessage
	}
	if env.ID == "" {
		return env, "missing_message_id"
	}
	// The id "relay" and the Relay* types belong to relays: no relay may
	// pass a node's message that claims them (SPEC 6), nor address one to
	// "relay" (a request to a relay is never routed).
	if env.Sender == message.RelayNodeID || env.Recipient == message.RelayNodeID || message.RelayType(env.Type) {
		return env, "reserved"
	}
	if direct && env.Recipient == "" {
		return env, "broadcast_on_direct"
	}
	if !direct && env.Recipient != "" {
		return env, "direct_on_broadcast"
	}
	return env, ""
}
