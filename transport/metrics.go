package transport

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gsio-net/gsio-relay/wsframe"
)

// Metrics are the WebSocket side's Prometheus collectors. Every update is
// an atomic operation on a collector resolved in NewMetrics: the write
// path stays free of allocations and locks.
type Metrics struct {
	Accepted      prometheus.Counter     // connections upgraded
	Rejected      *prometheus.CounterVec // upgrade requests refused, by reason
	SlowConsumers prometheus.Counter     // connections closed as slow consumers (1008)
	WriteErrors   prometheus.Counter     // connections ended by a failed or timed-out write
	Delivery      prometheus.Histogram   // frame built -> written to the client's socket

	rejected map[string]prometheus.Counter // read-only after NewMetrics
}

// Reasons of gsio_ws_rejected_total.
const (
	rejectUnauthorized = "unauthorized"
	rejectOrigin       = "origin"
	rejectMaxConns     = "max_conns"
	rejectMaxConnsIP   = "max_conns_per_ip"
	rejectShutdown     = "shutting_down"
	rejectBadUpgrade   = "bad_upgrade"
)

// NewMetrics creates the collectors and registers them on reg when reg is
// not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gsio_ws_accepted_total", Help: "WebSocket connections upgraded."}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gsio_ws_rejected_total",
			Help: "WebSocket upgrade requests refused, by reason (unauthorized, origin, max_conns, max_conns_per_ip, shutting_down, bad_upgrade)."},
			[]string{"reason"}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gsio_ws_slow_consumers_total", Help: "Connections closed (1008) because their send queue overflowed."}),
		WriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gsio_ws_write_errors_total", Help: "Connections ended by a failed or timed-out write."}),
		Delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gsio_ws_delivery_seconds",
			Help: "Time from a message's frame being built (right after the relay read it from a client or took it from the federation) until it was written to a receiving client's socket: routing plus send-queue wait. Observed once per write to a client, for the oldest message in it.",
			// 50us .. 13s
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 10),
		}),
		rejected: map[string]prometheus.Counter{},
	}
	for _, r := range []string{rejectUnauthorized, rejectOrigin, rejectMaxConns, rejectMaxConnsIP, rejectShutdown, rejectBadUpgrade} {
		m.rejected[r] = m.Rejected.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Accepted, m.Rejected, m.SlowConsumers, m.WriteErrors, m.Delivery)
	}
	return m
}

// WithMetrics sets the collectors the server updates (default:
// unregistered ones).
func WithMetrics(m *Metrics) Option {
	return func(o *options) {
		if m != nil {
			o.metrics = m
		}
	}
}

func (m *Metrics) reject(reason string) { m.rejected[reason].Inc() }

// observeDelivery records the delivery latency of one written batch: that
// of its oldest data frame (queued first), so one observation per write,
// not per frame, keeps the histogram off the per-message path.
func (m *Metrics) observeDelivery(frames []*wsframe.Frame) {
	for _, f := range frames {
		if age := f.Age(); age != 0 {
			m.Delivery.Observe(age.Seconds())
			return
		}
	}
}
