package transport

import "testing"

// The write path observes every frame it writes: no allocation.
func TestMetricsDoNotAllocate(t *testing.T) {
	m := NewMetrics(nil)
	frames := []*Frame{NewFrame([]byte("a")), NewFrame([]byte("b"))}
	n := testing.AllocsPerRun(1000, func() {
		m.observeDelivery(frames)
		m.SlowConsumers.Inc()
		m.reject(rejectOrigin)
	})
	if n != 0 {
		t.Fatalf("%v allocations per batch", n)
	}
}
