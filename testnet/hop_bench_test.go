package testnet

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkBroadcastHops is the federation's latency per gossip hop
// without a machine's worth of processes competing for it: eight relays
// in this process bootstrapped in a line (0-1-…-7, so relay k is k hops
// from relay 0), a node on each; the node on relay 0 broadcasts one
// message every 20 ms and every other node's receipt is timed. Reported:
// p50 and p99 at the far end (7 hops), and the p50 per hop.
//
//	go test -run '^$' -bench BroadcastHops -benchtime 200x ./testnet/
func BenchmarkBroadcastHops(b *testing.B) {
	const n = 8
	h := StartHarness(b, n, Line)
	cs := clients(b, h)
	h.WaitMesh()
	far := make([]time.Duration, 0, b.N)
	var perHop []time.Duration
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	k := 0
	for b.Loop() {
		<-tick.C
		id := fmt.Sprint("hop-", k)
		k++
		sent := time.Now()
		cs[0].Send("EntryAnnounce", id, "", `{}`)
		for i := 1; i < n; i++ {
			if m := cs[i].Next(); m.ID != id {
				b.Fatalf("node-%d: got %s, want %s", i, m.ID, id)
			}
			if i == n-1 {
				d := time.Since(sent)
				far = append(far, d)
				perHop = append(perHop, d/(n-1))
			}
		}
	}
	slices.Sort(far)
	slices.Sort(perHop)
	q := func(s []time.Duration, p float64) float64 {
		return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(far, 0.5), "p50_7hops_ms")
	b.ReportMetric(q(far, 0.99), "p99_7hops_ms")
	b.ReportMetric(q(perHop, 0.5), "p50_hop_ms")
}
