package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gsio-net/gsio-relay/message"
)

// Message ids (docs/PROTOCOL.md "Message id"): for data that parses as a
// GSIO message with a non-empty message_id,
//
//	hex(sha256("gsio-msgid/1\x00" || uvarint(len(sender_id)) || sender_id || message_id))
//
// and for anything else (presence messages, garbage)
//
//	hex(sha256("gsio-rawid/1\x00" || data)).
const (
	msgIDPrefix = "gsio-msgid/1\x00"
	rawIDPrefix = "gsio-rawid/1\x00"
)

// MessageID is the GossipSub message-id function of the federation, over
// the data of a message (any topic).
func MessageID(data []byte) string {
	env, err := message.Parse(data)
	if err == nil && env.ID != "" {
		return EnvelopeID(env.Sender, env.ID)
	}
	h := sha256.New()
	h.Write([]byte(rawIDPrefix))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// EnvelopeID is the message id of the GSIO message (sender_id, message_id).
func EnvelopeID(sender, messageID string) string {
	h := sha256.New()
	var l [binary.MaxVarintLen64]byte
	h.Write([]byte(msgIDPrefix))
	h.Write(l[:binary.PutUvarint(l[:], uint64(len(sender)))])
	h.Write([]byte(sender))
	h.Write([]byte(messageID))
	return hex.EncodeToString(h.Sum(nil))
}

// PubSubMsgID adapts MessageID to pubsub.WithMessageIdFn.
func PubSubMsgID(m *pb.Message) string { return MessageID(m.GetData()) }

// Score thresholds (docs/PROTOCOL.md "Peer scoring").
const (
	gossipThreshold   = -10
	publishThreshold  = -50
	graylistThreshold = -80
	acceptPXThreshold = 100 // peer exchange is off; only a very good peer could give PX
	oppGraftThreshold = 5
	invalidWeight     = -10 // per topic; P4 is the square of the invalid count
)

// ScoreThresholds are the GossipSub score thresholds the node uses.
func ScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           acceptPXThreshold,
		OpportunisticGraftThreshold: oppGraftThreshold,
	}
}

// ScoreParams are the GossipSub peer score parameters for the two topics
// of network.
func ScoreParams(network string) *pubsub.PeerScoreParams {
	topic := func() *pubsub.TopicScoreParams {
		return &pubsub.TopicScoreParams{
			TopicWeight: 1,
			// P1: a little credit for time in the mesh, capped at +10.
			TimeInMeshWeight:  0.01,
			TimeInMeshQuantum: time.Second,
			TimeInMeshCap:     1000,
			// P2: credit for first deliveries, capped at +20.
			FirstMessageDeliveriesWeight: 1,
			FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
			FirstMessageDeliveriesCap:    20,
			// P3/P3b off: traffic is bursty, a quiet mesh peer is fine.
			// P4: each rejected message counts; the penalty is
			// weight * count^2, so 1 invalid message = -10 (at the gossip
			// threshold), 3 = -90 (graylisted).
			InvalidMessageDeliveriesWeight: invalidWeight,
			InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
		}
	}
	return &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{
			BroadcastTopic(network): topic(),
			PresenceTopic(network):  topic(),
		},
		TopicScoreCap:     50,
		AppSpecificScore:  func(peer.ID) float64 { return 0 },
		AppSpecificWeight: 1,
		// P6 off: several relays behind one address (NAT, one host) are
		// normal in a federation of operators.
		IPColocationFactorWeight: 0,
		// P7: broken gossip promises and GRAFT flooding.
		BehaviourPenaltyWeight:    -1,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
	}
}

func (n *Node) pubsubOptions(o options) []pubsub.Option {
	gp := pubsub.DefaultGossipSubParams()
	if o.gossipParams != nil {
		gp = *o.gossipParams
	}
	policy := pubsub.StrictSign
	if n.cfg.NoSign {
		policy = pubsub.StrictNoSign
	}
	opts := []pubsub.Option{
		pubsub.WithGossipSubParams(gp),
		pubsub.WithMessageIdFn(PubSubMsgID),
		pubsub.WithMessageSignaturePolicy(policy),
		pubsub.WithMaxMessageSize(n.cfg.MaxMessageSize + 64<<10),
		pubsub.WithPeerOutboundQueueSize(n.cfg.PeerOutboundQueueSize),
		pubsub.WithValidateQueueSize(n.cfg.ValidateQueueSize),
		pubsub.WithValidateWorkers(n.cfg.ValidateWorkers),
		pubsub.WithValidateThrottle(2 * n.cfg.ValidateConcurrency),
		pubsub.WithSeenMessagesTTL(n.cfg.SeenMessagesTTL),
		pubsub.WithPeerExchange(false),
		// Our own messages go to every subscribed peer, not only to the
		// mesh (go-libp2p-pubsub v0.19 has it off by default): a relay
		// just started or reconnected has an empty mesh until the next
		// heartbeat, and what it published meanwhile would reach no one.
		pubsub.WithFloodPublish(true),
		pubsub.WithRawTracer(n.tracer),
		pubsub.WithLogger(n.log.With("system", "pubsub")),
		pubsub.WithPeerScore(ScoreParams(n.cfg.Network), ScoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(n.inspectScores), n.cfg.ScoreInspectInterval),
	}
	if n.allow != nil {
		opts = append(opts, pubsub.WithBlacklist(&allowBlacklist{allow: n.allow, extra: map[peer.ID]struct{}{}}))
	}
	if n.cfg.NoSign {
		// StrictNoSign with an author would still send From/Seqno; the
		// message id is content-derived anyway.
		opts = append(opts, pubsub.WithNoAuthor())
	}
	return opts
}

func (n *Node) inspectScores(scores map[peer.ID]float64) {
	n.scoresMu.Lock()
	n.scores = scores
	n.scoresMu.Unlock()
	for _, s := range scores {
		sign := "nonnegative"
		if s < 0 {
			sign = "negative"
		}
		n.m.peerScore.WithLabelValues(sign).Observe(s)
	}
}

// joinTopics registers the validators, joins both topics and subscribes.
func (n *Node) joinTopics() error {
	bt, pt := n.Topics()
	if err := n.ps.RegisterTopicValidator(bt, n.validateBroadcast,
		pubsub.WithValidatorConcurrency(n.cfg.ValidateConcurrency)); err != nil {
		return fmt.Errorf("register validator %q: %w", bt, err)
	}
	if err := n.ps.RegisterTopicValidator(pt, n.validatePresence, pubsub.WithValidatorInline(true)); err != nil {
		return fmt.Errorf("register validator %q: %w", pt, err)
	}
	var err error
	if n.bcastTopic, err = n.ps.Join(bt); err != nil {
		return fmt.Errorf("join topic %q: %w", bt, err)
	}
	if n.presTopic, err = n.ps.Join(pt); err != nil {
		return fmt.Errorf("join topic %q: %w", pt, err)
	}
	if n.bcastEvents, err = n.bcastTopic.EventHandler(); err != nil {
		return fmt.Errorf("topic %q events: %w", bt, err)
	}
	if n.presEvents, err = n.presTopic.EventHandler(); err != nil {
		return fmt.Errorf("topic %q events: %w", pt, err)
	}
	if n.bcastSub, err = n.bcastTopic.Subscribe(pubsub.WithBufferSize(n.cfg.SubscriptionBuffer)); err != nil {
		return fmt.Errorf("subscribe %q: %w", bt, err)
	}
	if n.presSub, err = n.presTopic.Subscribe(pubsub.WithBufferSize(max(1024, n.cfg.SubscriptionBuffer/8))); err != nil {
		return fmt.Errorf("subscribe %q: %w", pt, err)
	}
	return nil
}

// origin is the authenticated author of a gossip message: the From field
// under StrictSign; "" under StrictNoSign (unknown).
func (n *Node) origin(m *pubsub.Message) peer.ID {
	if n.cfg.NoSign {
		return ""
	}
	return m.GetFrom()
}

func (n *Node) countValidation(topic string, r pubsub.ValidationResult, reason string) {
	result := "accept"
	switch r {
	case pubsub.ValidationReject:
		result = "reject"
	case pubsub.ValidationIgnore:
		result = "ignore"
	}
	n.m.validation.WithLabelValues(topic, result, reason).Inc()
}

// MaxBatchMessages bounds the messages of one batch a relay accepts from
// the broadcast topic (docs/PROTOCOL.md "Batches").
const MaxBatchMessages = 1024

// validateBroadcast is the broadcast topic validator (docs/PROTOCOL.md
// "Validation"). It runs asynchronously: the speak-for rule may hold a
// message for up to SpeakForWait. A batch is accepted only if every
// message in it is.
func (n *Node) validateBroadcast(ctx context.Context, src peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	if src == n.self {
		return pubsub.ValidationAccept // our own publish, checked in Broadcast
	}
	envs, reason := n.checkBroadcast(m.GetData())
	if reason != "" {
		n.countValidation("broadcast", pubsub.ValidationReject, reason)
		n.log.Debug("broadcast rejected", "remote", src.String(), "reason", reason)
		return pubsub.ValidationReject
	}
	o := n.origin(m)
	if o == n.self {
		// Our own message from an earlier run, replayed by a peer.
		n.countValidation("broadcast", pubsub.ValidationIgnore, "own_origin")
		return pubsub.ValidationIgnore
	}
	if o != "" {
		// One SpeakForWait for the whole batch, not one per sender.
		deadline := time.Now().Add(n.cfg.SpeakForWait)
		for k := range envs {
			if k > 0 && envs[k].Sender == envs[k-1].Sender {
				continue // the common case: one sender's run
			}
			if r, reason := n.speakFor(ctx, o, envs[k].Sender, deadline); r != pubsub.ValidationAccept {
				n.countValidation("broadcast", r, reason)
				n.log.Debug("broadcast refused", "remote", src.String(), "node", envs[k].Sender, "reason", reason)
				return r
			}
		}
	}
	m.ValidatorData = &accepted{envs: envs, at: time.Now()}
	n.countValidation("broadcast", pubsub.ValidationAccept, "")
	return pubsub.ValidationAccept
}

// checkBroadcast validates the data of a broadcast topic message: one GSIO
// broadcast message, or a batch of 1 to MaxBatchMessages of them.
func (n *Node) checkBroadcast(data []byte) ([]message.Envelope, string) {
	if len(data) > n.cfg.MaxMessageSize {
		return nil, "too_large"
	}
	if !message.IsBatch(data) {
		env, reason := n.checkEnvelope(data, false)
		if reason != "" {
			return nil, reason
		}
		return []message.Envelope{env}, ""
	}
	elems, err := message.SplitBatch(data, MaxBatchMessages)
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
		if envs[k], reason = n.checkEnvelope(e, false); reason != "" {
			return nil, reason
		}
	}
	return envs, ""
}

// checkEnvelope validates a GSIO message received from another relay: size,
// JSON shape, message_id present, and broadcast vs direct. It returns a
// reason label when the message is invalid.
func (n *Node) checkEnvelope(data []byte, direct bool) (message.Envelope, string) {
	if len(data) > n.cfg.MaxMessageSize {
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
	if direct && env.Recipient == "" {
		return env, "broadcast_on_direct"
	}
	if !direct && env.Recipient != "" {
		return env, "direct_on_broadcast"
	}
	return env, ""
}

// speakForPendingMax bounds the messages of one origin held by the
// speak-for wait; beyond it they are ignored (dropped without penalty).
const speakForPendingMax = 1024

// speakFor applies the speak-for rule to a message with sender_id sender
// published by relay origin (docs/PROTOCOL.md "Who may speak for a node"):
//
//   - origin announces sender (or announced it within SpeakForWait): accept;
//   - origin is not a relay (never sent presence) and no relay (this one
//     included) holds sender: accept (a plain GossipSub peer speaks for
//     itself);
//   - otherwise wait until deadline (SpeakForWait after the message, or
//     after the batch, arrived) for origin's presence to announce sender (a
//     join racing the message); then reject.
func (n *Node) speakFor(ctx context.Context, origin peer.ID, sender string, deadline time.Time) (pubsub.ValidationResult, string) {
	var timer *time.Timer
	for {
		v := n.dir.speaks(origin, sender, time.Now())
		if v.held || (!v.originKnown && !v.heldElsewhere && !n.isLocal(sender)) {
			return pubsub.ValidationAccept, ""
		}
		if timer == nil {
			n.pendingMu.Lock()
			if n.pending[origin] >= speakForPendingMax {
				n.pendingMu.Unlock()
				n.tracer.drop("speak_for_pending_full", 1)
				return pubsub.ValidationIgnore, "speak_for_pending_full"
			}
			n.pending[origin]++
			n.pendingMu.Unlock()
			defer func() {
				n.pendingMu.Lock()
				if n.pending[origin]--; n.pending[origin] <= 0 {
					delete(n.pending, origin)
				}
				n.pendingMu.Unlock()
			}()
			timer = time.NewTimer(time.Until(deadline))
			defer timer.Stop()
		}
		select {
		case <-v.changed:
		case <-timer.C:
			return pubsub.ValidationReject, "speak_for"
		case <-ctx.Done():
			return pubsub.ValidationIgnore, "closing"
		case <-n.ctx.Done():
			return pubsub.ValidationIgnore, "closing"
		}
	}
}

// subLoop reads a subscription until it is cancelled and hands each
// message that is not our own to handle.
func (n *Node) subLoop(sub *pubsub.Subscription, handle func(*pubsub.Message)) {
	for {
		m, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		if m.ReceivedFrom == n.self {
			continue // our own publish, handed back by pubsub
		}
		handle(m)
	}
}

// accepted is what validateBroadcast hands to onBroadcast.
type accepted struct {
	envs []message.Envelope
	at   time.Time
}

func (n *Node) onBroadcast(m *pubsub.Message) {
	a, ok := m.ValidatorData.(*accepted)
	if !ok {
		return
	}
	// How far the subscription reader lags behind validation; when the
	// subscription buffer overflows pubsub drops (subscriber_too_slow).
	n.m.subLag.Observe(time.Since(a.at).Seconds())
	n.m.delivered.WithLabelValues("broadcast").Add(float64(len(a.envs)))
	for k := range a.envs {
		n.recv.Deliver(&a.envs[k])
	}
}

// Broadcast queues env.Raw for publication on the broadcast topic. It never
// blocks: a full queue returns ErrBackpressure.
func (n *Node) Broadcast(env *message.Envelope) error {
	if env == nil || env.ID == "" || env.Sender == "" || env.Recipient != "" {
		return errors.New("broadcast: need a broadcast message with sender_id and message_id")
	}
	if len(env.Raw) > n.cfg.MaxMessageSize {
		return fmt.Errorf("broadcast: message of %d bytes over the federation limit of %d", len(env.Raw), n.cfg.MaxMessageSize)
	}
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	n.startMu.Lock()
	started := n.started
	n.startMu.Unlock()
	if !started {
		return ErrNotStarted
	}
	select {
	case n.pubQ <- env.Raw:
		return nil
	default:
		n.tracer.drop("publish_queue_full", 1)
		return ErrBackpressure
	}
}

// publishLoop is the only caller of bcastTopic.Publish: it takes the
// network-facing blocking off the router's goroutines. What queued while
// it was publishing goes out as one batch: signing, validation and
// pubsub's per-message work are then paid per batch, and a lone message
// is published as it is.
func (n *Node) publishLoop() {
	limit := min(n.cfg.PublishBatchBytes, n.cfg.MaxMessageSize)
	emptySince := time.Now() // the topic has had no peer since
	var (
		batch [][]byte
		buf   []byte
		carry []byte // taken from the queue but over the byte limit: next batch
	)
	for {
		batch = batch[:0]
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case <-n.ctx.Done():
				return
			case data := <-n.pubQ:
				batch = append(batch, data)
			}
		}
		size := len(batch[0]) + 2
	fill:
		for len(batch) < n.cfg.PublishBatchMax {
			select {
			case data := <-n.pubQ:
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
		n.awaitTopicPeers(&emptySince)
		data := batch[0]
		if len(batch) > 1 {
			// A fresh buffer: pubsub keeps the bytes (seen cache, gossip).
			buf = message.AppendBatch(make([]byte, 0, size), batch)
			data = buf
		}
		if err := n.bcastTopic.Publish(n.ctx, data); err != nil {
			if n.ctx.Err() != nil {
				return
			}
			n.log.Warn("publish broadcast", "topic", n.bcastTopic.String(), "messages", len(batch), "err", err)
			continue
		}
		n.m.published.Add(float64(len(batch)))
		n.m.batch.Observe(float64(len(batch)))
	}
}

// broadcastEvents keeps bcastPeers, the peers known subscribed to the
// broadcast topic, and kicks bcastJoined when one joins.
func (n *Node) broadcastEvents(h *pubsub.TopicEventHandler) {
	for {
		ev, err := h.NextPeerEvent(n.ctx)
		if err != nil {
			return
		}
		n.bcastMu.Lock()
		switch ev.Type {
		case pubsub.PeerJoin:
			n.bcastPeers[ev.Peer] = struct{}{}
		case pubsub.PeerLeave:
			delete(n.bcastPeers, ev.Peer)
		}
		n.bcastMu.Unlock()
		if ev.Type == pubsub.PeerJoin {
			select {
			case n.bcastJoined <- struct{}{}:
			default:
			}
		}
	}
}

// canPublish reports whether pubsub would send a broadcast to anyone: a
// peer subscribed to the topic to which it has an outbound stream. (A
// peer's subscriptions may arrive before pubsub's stream to it is open;
// an RPC for it is dropped until then.)
func (n *Node) canPublish() bool {
	n.bcastMu.Lock()
	ps := make([]peer.ID, 0, len(n.bcastPeers))
	for p := range n.bcastPeers {
		ps = append(ps, p)
	}
	n.bcastMu.Unlock()
	return n.tracer.anyOutbound(ps)
}

// awaitTopicPeers holds a publish while no peer would receive it although
// the relay has a federation to expect (bootstrap peers, or relays in its
// directory): GossipSub would send it to no one, and nothing sends it
// later. The wait ends when a peer can receive it, or PublishPeerWait
// after the topic became empty (*emptySince); after that, publishes go
// out at once until the topic has had a peer again.
func (n *Node) awaitTopicPeers(emptySince *time.Time) {
	if n.canPublish() {
		*emptySince = time.Time{}
		return
	}
	if emptySince.IsZero() {
		*emptySince = time.Now()
	}
	if len(n.boot) == 0 && n.dir.relayCount() == 0 {
		return // alone by configuration: nobody to wait for
	}
	wait := time.Until(emptySince.Add(n.cfg.PublishPeerWait))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	start := time.Now()
	for !n.canPublish() {
		select {
		case <-n.bcastJoined:
		case <-n.tracer.outbound:
		case <-t.C:
			n.log.Warn("publishing broadcasts with no federation peer subscribed", "waited", time.Since(start).Round(time.Millisecond))
			return
		case <-n.ctx.Done():
			return
		}
	}
	n.m.publishWait.Observe(time.Since(start).Seconds())
	*emptySince = time.Time{}
}
