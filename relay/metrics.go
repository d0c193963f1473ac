package relay

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the router's Prometheus collectors.
type Metrics struct {
	Connections prometheus.Gauge       // open client connections
	LocalNodes  prometheus.Gauge       // node ids bound on this relay
	In          *prometheus.CounterVec // client messages by route: broadcast, direct, invalid, rate_limited
	Out         *prometheus.CounterVec // deliveries to local nodes by origin: local, gossip, direct
	Errors      *prometheus.CounterVec // RelayErrors sent and closes, by code
	DedupHits   prometheus.Counter     // duplicate messages dropped
}

// NewMetrics creates the collectors and registers them on reg when reg is
// not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gsio_relay_connections", Help: "Open WebSocket client connections."}),
		LocalNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gsio_relay_local_nodes", Help: "Node ids bound to connections on this relay."}),
		In: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_relay_messages_in_total", Help: "Client messages received, by route."}, []string{"route"}),
		Out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_relay_messages_out_total", Help: "Messages queued to local nodes, by origin."}, []string{"origin"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_relay_errors_total", Help: "RelayErrors sent and policy closes, by code."}, []string{"code"}),
		DedupHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gsio_relay_dedup_hits_total", Help: "Duplicate (sender_id, message_id) messages dropped."}),
	}
	if reg != nil {
		reg.MustRegister(m.Connections, m.LocalNodes, m.In, m.Out, m.Errors, m.DedupHits)
	}
	return m
}
