package transport

import (
	"testing"

	"github.com/gsio-net/gsio-relay/wsframe"
)

// The write path observes every frame it writes: no allocation.
func TestMetricsDoNotAllocate(t *testing.T) {
	m := NewMetrics(nil)
	frames := []*wsframe.Frame{wsframe.NewText([]byte("a")), wsframe.NewText([]byte("b"))}
	n := testing.AllocsPerRun(1000, func() {
		m.observeDelivery(frames)
		m.SlowConsumers.Inc()
		m.reject(rejectOrigin)
	})
	if n != 0 {
		t.Fatalf("%v allocations per batch", n)
	}
}
