package syncproto

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/internal/testutil"
)

// BenchmarkReconcile measures one session between two history stores of
// N broadcasts (GSIO_SYNC_BENCH_N, default 1,000,000; 300-byte frames
// spread over [now − 23 h, now − 1 h)) whose initiator lacks 0, 100 or 10,000
// of them, over an in-memory pipe: time, rounds and bytes both ways. The
// initiator's Accept checks each fetched frame but does not store it, so
// every iteration moves the same difference. Filling the stores takes
// about a minute per million on two cores (three stores).
//
//	go test -run '^$' -bench BenchmarkReconcile -benchtime 3x ./syncproto/
func BenchmarkReconcile(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("GSIO_SYNC_BENCH_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		n = v
	}
	st := benchStores(b, n)
	for _, tc := range []struct {
		missing int
		lacking *history.Store
	}{{0, st.full}, {100, st.miss100}, {10_000, st.miss10k}} {
		b.Run(fmt.Sprintf("stored=%d/missing=%d", n, tc.missing), func(b *testing.B) {
			l := DefaultLimits()
			var last Result
			b.ResetTimer()
			for range b.N {
				ini := side(tc.lacking, l)
				fetched := 0
				ini.Accept = func(frame []byte, want *history.Entry, _ Window) error {
					if want == nil || len(frame) == 0 {
						return &Refusal{Reason: "unexpected", Hostile: true}
					}
					fetched++
					return nil
				}
				w := Propose(time.Now(), 24*time.Hour, 5*time.Second, tc.lacking.Horizon())
				ra, _, ea, eb := reconcile(b, ini, side(st.full, l), w)
				if ea != nil || eb != nil {
					b.Fatalf("%v / %v", ea, eb)
				}
				if fetched != tc.missing || ra.Sent != 0 {
					b.Fatalf("fetched %d, pushed %d; want %d, 0", fetched, ra.Sent, tc.missing)
				}
				last = ra
			}
			b.ReportMetric(float64(last.Rounds), "rounds")
			b.ReportMetric(float64(last.Ranges), "ranges")
			b.ReportMetric(float64(last.BytesSent), "bytes_sent")
			b.ReportMetric(float64(last.BytesRecv), "bytes_recv")
		})
	}
}

type benchSet struct{ full, miss100, miss10k *history.Store }

// benchStores fills three stores: every broadcast, all but 100, all but
// 10,000 (chosen at random). They are closed and removed when b ends.
func benchStores(b *testing.B, n int) benchSet {
	var benchSt benchSet
	dir := b.TempDir()
	{
		open := func(name string) *history.Store {
			cfg := history.DefaultConfig()
			cfg.Dir = dir + "/" + name
			cfg.MinFreeDisk = 0
			cfg.QueueLen = 1 << 20
			cfg.QueueMaxBytes = 1 << 30
			cfg.MaxBytes = 4 << 30
			s, err := history.Open(cfg, history.WithLogger(testutil.Logger()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}
		benchSt = benchSet{open("full"), open("miss100"), open("miss10k")}
		rng := rand.New(rand.NewPCG(1, 2))
		skip100, skip10k := map[int]bool{}, map[int]bool{}
		for len(skip10k) < min(10_000, n) {
			skip10k[rng.IntN(n)] = true
		}
		for len(skip100) < min(100, n) {
			skip100[rng.IntN(n)] = true
		}
		start := time.Now().Add(-23 * time.Hour).UnixMilli()
		step := float64(22*time.Hour/time.Millisecond) / float64(n) // up to an hour ago
		pad := strings.Repeat("x", 200)
		t0 := time.Now()
		for i := range n {
			ts := start + int64(float64(i)*step)
			id := fmt.Sprint("m", i)
			f := frameAt(ts, "node-bench", id, `{"p":"`+pad+`"}`)
			benchSt.full.Append(ts, "node-bench", id, f)
			if !skip100[i] {
				benchSt.miss100.Append(ts, "node-bench", id, f)
			}
			if !skip10k[i] {
				benchSt.miss10k.Append(ts, "node-bench", id, f)
			}
			if i%100_000 == 99_999 {
				flush(b, benchSt.full, benchSt.miss100, benchSt.miss10k)
			}
		}
		flush(b, benchSt.full, benchSt.miss100, benchSt.miss10k)
		b.Logf("filled 3 stores of ~%d broadcasts in %v", n, time.Since(t0).Round(time.Second))
	}
	return benchSt
}
