package relay

import "testing"

// Counting a message is on the hot path: no allocation.
func TestCountingDoesNotAllocate(t *testing.T) {
	m := NewMetrics(nil)
	n := testing.AllocsPerRun(1000, func() {
		m.countIn("EntryAnnounce", RouteLocal, 100)
		m.countOut("SomeFutureType", RouteGossip, 100, 3)
		m.drop(DropSendRefused)
	})
	if n != 0 {
		t.Fatalf("%v allocations per message", n)
	}
}
