package node

import (
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus collectors. Label values are fixed
// small sets (never peer or node ids).
type metrics struct {
	drops          *prometheus.CounterVec   // reason
	validation     *prometheus.CounterVec   // topic, result, reason
	delivered      *prometheus.CounterVec   // kind: broadcast, direct
	published      prometheus.Counter       // broadcasts handed to pubsub
	batch          prometheus.Histogram     // messages per published gossip message
	subResets      prometheus.Counter       // relays disconnected by subscriptionWatch
	publishWait    prometheus.Histogram     // publishes held until a topic peer appeared
	dirNodes       prometheus.Gauge         // distinct remote node ids
	dirRelays      prometheus.Gauge         // relays in the directory
	dirRefused     prometheus.Counter       // presence updates refused by a bound
	dirEvicted     prometheus.Counter       // entries or relays evicted to make room for a fairer claim
	unproven       prometheus.Counter       // key-id presence claims ignored for a missing or invalid proof
	directSent     prometheus.Counter       // direct frames written
	directFailed   *prometheus.CounterVec   // reason
	directLatency  prometheus.Histogram     // enqueue -> written
	directRecv     *prometheus.CounterVec   // kind: message, nack
	bootstrapDials *prometheus.CounterVec   // result
	discovered     *prometheus.CounterVec   // source, result
	peerScore      *prometheus.HistogramVec // sampled gossip scores
	subLag         prometheus.Histogram     // validation -> subscription reader
	syncSessions   *prometheus.CounterVec   // role, result
	syncRounds     prometheus.Counter       // request/answer exchanges
	syncBytes      *prometheus.CounterVec   // direction: sent, received
	syncMessages   *prometheus.CounterVec   // direction: received, sent, ignored
	syncErrors     *prometheus.CounterVec   // reason
	presenceBytes  *prometheus.CounterVec   // via: gossip, pull
	presencePulls  *prometheus.CounterVec   // result
	presenceServed *prometheus.CounterVec   // result
	duplicates     *prometheus.CounterVec   // topic: gossip copies seen again
}

// validated counts one validation result of a gossip or direct message.
func (m *metrics) validated(topic string, r pubsub.ValidationResult, reason string) {
	result := "accept"
	switch r {
	case pubsub.ValidationReject:
		result = "reject"
	case pubsub.ValidationIgnore:
		result = "ignore"
	}
	m.validation.WithLabelValues(topic, result, reason).Inc()
}

// newMetrics creates the collectors (unregistered: see register).
func newMetrics() *metrics {
	const ns, sub = "gsio", "node"
	m := &metrics{
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "dropped_total",
			Help: "Messages dropped by the federation layer, by reason (outbound_queue_full, validate_queue_full, validate_throttled, subscriber_too_slow, publish_queue_full, direct_queue_full, speak_for_pending_full, undeliverable_queue_full, origin_rate, peer_rate, nack_not_relay).",
		}, []string{"reason"}),
		validation: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "validation_total",
			Help: "Validation results of gossip, direct and reconciled messages by topic (broadcast, presence, direct, sync), result (accept, reject, ignore) and reason.",
		}, []string{"topic", "result", "reason"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "delivered_total",
			Help: "Messages from other relays handed to the router, by kind (broadcast, direct).",
		}, []string{"kind"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "broadcast_published_total",
			Help: "Local broadcasts published on the broadcast topic.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "broadcast_batch_messages",
			Help:    "Local broadcasts per gossip message published (1: a lone message; more: a batch).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
		}),
		subResets: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "subscription_resets_total",
			Help: "Relays whose connections were closed because pubsub did not know them as subscribers of our topics for SubscriptionGrace (a go-libp2p-pubsub v0.19 failure after a reconnect).",
		}),
		publishWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "publish_peer_wait_seconds",
			Help:    "How long a broadcast publish was held because no federation peer was subscribed yet (at start, or after losing every peer).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1 ms .. 16 s
		}),
		dirNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "directory_nodes",
			Help: "Distinct node ids held by other relays.",
		}),
		dirRelays: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "directory_relays",
			Help: "Other relays in the presence directory.",
		}),
		dirRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "directory_refused_total",
			Help: "Presence updates refused because a directory bound (relays, entries) was reached.",
		}),
		dirEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "directory_evicted_total",
			Help: "Directory entries (or whole relays) of relays not in good standing evicted to make room for a relay in good standing or a relay with fewer entries.",
		}),
		presenceBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "presence_received_bytes_total",
			Help: "Presence bytes received: via gossip (the data of every presence message in received RPCs, duplicates included) or pull (/gsio/presence/1.0.0 frames read).",
		}, []string{"via"}),
		presencePulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "presence_pulls_total",
			Help: "Presence set pulls made by this relay, by result (ok, incomplete, unneeded, stale, skipped, dial, stream, invalid, too_large).",
		}, []string{"result"}),
		presenceServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "presence_pulls_served_total",
			Help: "Presence set pulls answered (ok) or refused (rate, busy, bad_request, not_allowed) by this relay.",
		}, []string{"result"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "gossip_duplicates_total",
			Help: "Gossip messages received again after the first copy, by topic (broadcast, presence).",
		}, []string{"topic"}),
		unproven: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "presence_unproven_total",
			Help: "Key-id claims in presence ignored because their node's proof was missing or invalid.",
		}),
		directSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "direct_sent_total",
			Help: "Direct messages written to a " + DirectProtocol + " stream.",
		}),
		directFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "direct_failed_total",
			Help: "Direct messages that could not be sent, by reason (dial, stream, write, queue_full, closed).",
		}, []string{"reason"}),
		directLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "direct_send_seconds",
			Help:    "Time from Direct to the frame written on the stream (includes dialling).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		directRecv: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "direct_received_total",
			Help: "Frames received on " + DirectProtocol + " streams, by kind (message, nack).",
		}, []string{"kind"}),
		bootstrapDials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "bootstrap_dials_total",
			Help: "Bootstrap dials by result (ok, error).",
		}, []string{"result"}),
		discovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "discovered_total",
			Help: "Peers found by mDNS or the DHT rendezvous, by source (mdns, dht) and result (connected: dialled now; known: already connected or dialled recently; failed: dial failed; skipped: queue full or enough peers).",
		}, []string{"source", "result"}),
		peerScore: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "peer_score",
			Help:    "Sampled GossipSub scores of connected peers, by sign (negative, nonnegative).",
			Buckets: []float64{-1000, -100, -80, -50, -10, 0, 1, 10, 100},
		}, []string{"sign"}),
		subLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "subscription_lag_seconds",
			Help:    "Time from a broadcast's acceptance by the validator to its hand-over to the router (subscription backlog).",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
		}),
		syncSessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sync_sessions_total",
			Help: "History reconciliation sessions (" + SyncProtocol + ") by role (initiator, responder) and result (reconciled, unreconciled, error).",
		}, []string{"role", "result"}),
		syncRounds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sync_rounds_total",
			Help: "Request/answer exchanges of reconciliation sessions.",
		}),
		syncBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sync_bytes_total",
			Help: "Bytes of reconciliation sessions by direction (sent, received).",
		}, []string{"direction"}),
		syncMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sync_messages_total",
			Help: "Broadcasts moved by reconciliation by direction (received: learned and stored; sent: given to a peer; ignored: refused without penalty or gone at the peer).",
		}, []string{"direction"}),
		syncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sync_errors_total",
			Help: "Reconciliation sessions refused or failed, by reason (forbidden, busy, stream, protocol, frame_too_large, budget, rounds, ranges, lie, invalid_message, refused, dense, io, store, other).",
		}, []string{"reason"}),
	}
	return m
}

// register registers every collector with reg; on an error it
// unregisters those it registered.
func (m *metrics) register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{
		m.drops, m.validation, m.delivered, m.published, m.batch, m.subResets, m.publishWait, m.dirNodes, m.dirRelays,
		m.dirRefused, m.dirEvicted, m.unproven, m.directSent, m.directFailed, m.directLatency, m.directRecv,
		m.bootstrapDials, m.discovered, m.peerScore, m.subLag,
		m.syncSessions, m.syncRounds, m.syncBytes, m.syncMessages, m.syncErrors,
		m.presenceBytes, m.presencePulls, m.presenceServed, m.duplicates,
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}
