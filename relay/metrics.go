package relay

import "github.com/prometheus/client_golang/prometheus"

// Routes of a message, the "route" label: where it came from (in) or went
// to (out).
const (
	RouteLocal  = "local"  // a client of this relay
	RouteGossip = "gossip" // the federation's broadcast topic
	RouteDirect = "direct" // a direct stream from or to another relay
)

// Drop reasons, the "reason" label of gsio_relay_dropped_total.
const (
	DropInvalid          = "invalid"           // unparsable or invalid client message (a RelayError was sent)
	DropSenderMismatch   = "sender_mismatch"   // sender_id not the connection's node id
	DropRateLimited      = "rate_limited"      // over the per-connection rate
	DropRecipientUnknown = "recipient_unknown" // direct message to no known node
	DropSendRefused      = "send_refused"      // the receiving connection was closing or a slow consumer
	DropPublishFailed    = "publish_failed"    // the federation refused a broadcast (queue full, closed)
	DropUnauthenticated  = "unauthenticated"   // sent before the node id was proven (auth_required)
	DropMailboxFull      = "mailbox_full"      // direct message for an absent node whose mailbox is full
)

// metricTypes are the values of the "type" label: the GSIO-Net message
// types, the relay's own RelayError, and "other" for every other type (a
// client chooses message_type freely, so the label set must stay fixed).
var metricTypes = [...]string{
	"NodeAnnounce", "NodeListRequest", "NodeListResponse",
	"EntryAnnounce", "EntryRequest", "EntryResponse",
	"LedgerSyncRequest", "LedgerSyncResponse",
	"RelayError", "other",
}

var metricRoutes = [...]string{RouteLocal, RouteGossip, RouteDirect}

var dropReasons = [...]string{
	DropInvalid, DropSenderMismatch, DropRateLimited,
	DropRecipientUnknown, DropSendRefused, DropPublishFailed, DropUnauthenticated, DropMailboxFull,
}

// typeIndex maps a message_type to its index in metricTypes.
func typeIndex(t string) int {
	switch t {
	case "NodeAnnounce":
		return 0
	case "NodeListRequest":
		return 1
	case "NodeListResponse":
		return 2
	case "EntryAnnounce":
		return 3
	case "EntryRequest":
		return 4
	case "EntryResponse":
		return 5
	case "LedgerSyncRequest":
		return 6
	case "LedgerSyncResponse":
		return 7
	case "RelayError":
		return 8
	}
	return 9
}

func routeIndex(r string) int {
	switch r {
	case RouteGossip:
		return 1
	case RouteDirect:
		return 2
	}
	return 0
}

// Metrics are the router's Prometheus collectors. The per-message ones
// are resolved to their children once, in NewMetrics, so that counting a
// message is an atomic add: no label lookup, no allocation.
type Metrics struct {
	Connections prometheus.Gauge       // open client connections
	LocalNodes  prometheus.Gauge       // node ids bound on this relay
	In          *prometheus.CounterVec // messages received, by type and route
	Out         *prometheus.CounterVec // messages sent, by type and route
	BytesIn     *prometheus.CounterVec // bytes of messages received, by route
	BytesOut    *prometheus.CounterVec // bytes of messages sent, by route
	Dropped     *prometheus.CounterVec // messages dropped, by reason
	Errors      *prometheus.CounterVec // RelayErrors sent and policy closes, by code
	DedupHits   prometheus.Counter     // duplicate messages dropped
	MailboxIn   prometheus.Counter     // direct messages kept for an absent recipient
	MailboxKept prometheus.Gauge       // bytes of messages in mailboxes
	Draining    prometheus.Gauge       // 1 once the relay drains

	in, out           [len(metricTypes)][len(metricRoutes)]prometheus.Counter
	bytesIn, bytesOut [len(metricRoutes)]prometheus.Counter
	dropped           map[string]prometheus.Counter // read-only after NewMetrics
}

// NewMetrics creates the collectors and registers them on reg when reg is
// not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gsio_relay_connections", Help: "Open WebSocket client connections (bound to a node id or not)."}),
		LocalNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gsio_relay_local_nodes", Help: "Node ids bound to connections on this relay."}),
		In: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_relay_messages_in_total",
			Help: "Messages accepted for routing, by message type and route (local: from a client of this relay; gossip, direct: from another relay). Refused messages are counted in gsio_relay_dropped_total."},
			[]string{"type", "route"}),
		Out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_relay_messages_out_total",
			Help: "Messages sent, by message type and route (local: queued to a client of this relay, once per receiver; gossip: published to the federation; direct: sent toward another relay)."},
			[]string{"type", "route"}),
		BytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_relay_bytes_in_total", Help: "Bytes of the messages counted in gsio_relay_messages_in_total, by route."},
			[]string{"route"}),
		BytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_relay_bytes_out_total", Help: "Bytes of the messages counted in gsio_relay_messages_out_total, by route."},
			[]string{"route"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_relay_dropped_total",
			Help: "Messages the router dropped, by reason (invalid, sender_mismatch, rate_limited, recipient_unknown, send_refused, publish_failed)."},
			[]string{"reason"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_relay_errors_total", Help: "RelayErrors sent to clients and policy closes, by code."}, []string{"code"}),
		MailboxIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gsio_relay_mailbox_kept_total", Help: "Direct messages kept in a mailbox for a node connected nowhere."}),
		MailboxKept: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gsio_relay_mailbox_bytes", Help: "Bytes of direct messages waiting in mailboxes."}),
		DedupHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gsio_relay_dedup_hits_total", Help: "Duplicate (sender_id, message_id) messages dropped."}),
		Draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gsio_relay_draining", Help: "1 while the relay drains (gsio-relay drain): it takes no new nodes and asks its nodes to move."}),
		dropped: make(map[string]prometheus.Counter, len(dropReasons)),
	}
	for i, t := range metricTypes {
		for j, r := range metricRoutes {
			m.in[i][j] = m.In.WithLabelValues(t, r)
			m.out[i][j] = m.Out.WithLabelValues(t, r)
		}
	}
	for j, r := range metricRoutes {
		m.bytesIn[j] = m.BytesIn.WithLabelValues(r)
		m.bytesOut[j] = m.BytesOut.WithLabelValues(r)
	}
	for _, reason := range dropReasons {
		m.dropped[reason] = m.Dropped.WithLabelValues(reason)
	}
	if reg != nil {
		reg.MustRegister(m.Connections, m.LocalNodes, m.In, m.Out, m.BytesIn, m.BytesOut, m.Dropped, m.Errors, m.DedupHits, m.MailboxIn, m.MailboxKept, m.Draining)
	}
	return m
}

// countIn counts one message of type typ and size bytes received on route.
func (m *Metrics) countIn(typ, route string, size int) {
	r := routeIndex(route)
	m.in[typeIndex(typ)][r].Inc()
	m.bytesIn[r].Add(float64(size))
}

// countOut counts k messages of type typ and size bytes each sent on route.
func (m *Metrics) countOut(typ, route string, size, k int) {
	if k <= 0 {
		return
	}
	r := routeIndex(route)
	m.out[typeIndex(typ)][r].Add(float64(k))
	m.bytesOut[r].Add(float64(size * k))
}

// drop counts a dropped message; reason is one of the Drop constants.
func (m *Metrics) drop(reason string) {
	if c, ok := m.dropped[reason]; ok {
		c.Inc()
	}
}
