package history

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Short, bounded benchmarks of the store as the router will drive it
// (go test -run '^$' -bench . -benchtime 100000x ./history/). The engine
// comparison that chose pebble is summarised in doc.go.

var benchFrame = []byte(`{"message_type":"Broadcast","sender_id":"node-1","payload":"` + strings.Repeat("ab", 110) + `"}`)

// BenchmarkAppend measures the writer's sustained throughput: ~300-byte
// broadcasts, synced batches of up to 1000, the producer backing off while
// the queue is more than half full so that nothing is dropped.
func BenchmarkAppend(b *testing.B) {
	cfg := testConfig(b)
	cfg.FlushInterval = DefaultConfig().FlushInterval
	s := openStore(b, cfg)
	ts := time.Now().UnixMilli()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	b.ResetTimer()
	for i := range b.N {
		s.Append(ts+int64(i/100), "node-1", ids[i], benchFrame)
		if i%1000 == 999 {
			for len(s.queue) > cfg.QueueLen/2 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	flush(b, s)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(s.Stats().Dropped), "dropped")
}

// BenchmarkRange10k reads a 10,000-broadcast window out of 50,000.
func BenchmarkRange10k(b *testing.B) {
	s := openStore(b, testConfig(b))
	ts := time.Now().UnixMilli()
	for i := range 50_000 {
		s.Append(ts+int64(i/10), "node-1", fmt.Sprint(i), benchFrame)
		if i%10_000 == 9_999 {
			flush(b, s)
		}
	}
	flush(b, s)
	b.ResetTimer()
	for b.Loop() {
		res, err := s.Range(ts+2000, 0, MaxLimit, "", func(int64, string, []byte) error { return nil })
		if err != nil || res.Count != MaxLimit {
			b.Fatalf("Range: %+v %v", res, err)
		}
	}
}
