package testnet

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkPartitionHeal is the heal figure: four relays with the
// default configuration (reconciliation on connect and every minute), cut
// into {0,1} | {2,3} for GSIO_HEAL_PARTITION (30 s) while a node on each
// side broadcasts GSIO_HEAL_RATE (500) messages a second; then the heal,
// and the time until every node on every relay has every broadcast of
// both sides (heal_s), with the broadcasts still missing (missing, 0 or
// the run fails) and the duplicates delivered (dups). One partition per
// run whatever b.N: run it with -benchtime 1x.
//
//	go test -run '^$' -bench PartitionHeal -benchtime 1x ./testnet/
func BenchmarkPartitionHeal(b *testing.B) {
	partition := envDuration(b, "GSIO_HEAL_PARTITION", 30*time.Second)
	rate := 500
	if s := os.Getenv("GSIO_HEAL_RATE"); s != "" {
		if _, err := fmt.Sscan(s, &rate); err != nil || rate <= 0 || rate > 1000 {
			b.Fatalf("GSIO_HEAL_RATE=%q: a rate of 1 to 1000 messages a second", s)
		}
	}
	h := StartHarness(b, 4, Full)
	cs := clients(b, h)
	h.WaitMesh()
	h.Partition([]int{0, 1}, []int{2, 3})

	// Sender A is node-0, sender B node-2; both send in 10 ms ticks until
	// the partition has lasted its time.
	sent := 0
	tick := time.NewTicker(10 * time.Millisecond)
	start := time.Now()
	for ; time.Since(start) < partition; <-tick.C {
		due := int(float64(rate) * time.Since(start).Seconds())
		for ; sent < due; sent++ {
			cs[0].Send("EntryAnnounce", fmt.Sprint("A-", sent), "", fmt.Sprintf(`{"i":%d}`, sent))
			cs[2].Send("EntryAnnounce", fmt.Sprint("B-", sent), "", fmt.Sprintf(`{"i":%d}`, sent))
		}
	}
	tick.Stop()
	b.ResetTimer()
	healed := time.Now()
	h.Heal()

	// Each node is read until it has the other senders' broadcasts; the
	// time is taken when the last one is complete.
	dups := 0
	for i, c := range cs {
		want := map[string]bool{}
		for n := range sent {
			if i != 0 {
				want[fmt.Sprint("A-", n)] = true
			}
			if i != 2 {
				want[fmt.Sprint("B-", n)] = true
			}
		}
		got := map[string]bool{}
		deadline := time.Now().Add(3 * time.Minute)
		for len(got) < len(want) {
			if time.Now().After(deadline) {
				b.Fatalf("%s: %d of %d broadcasts 3 minutes after the heal", c.NodeID, len(got), len(want))
			}
			m := c.Next()
			if !strings.HasPrefix(m.ID, "A-") && !strings.HasPrefix(m.ID, "B-") {
				continue
			}
			if got[m.ID] {
				dups++
			}
			got[m.ID] = true
		}
	}
	took := time.Since(healed)
	b.StopTimer()
	b.ReportMetric(took.Seconds(), "heal_s")
	b.ReportMetric(float64(2*sent), "broadcasts")
	b.ReportMetric(float64(dups), "dups")
	b.ReportMetric(0, "missing")
	b.Logf("partition %v, %d msg/s per side, %d broadcasts; every node had every one %v after the heal; %d duplicates",
		partition, rate, 2*sent, took.Round(time.Millisecond), dups)
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > 10*time.Minute {
		b.Fatalf("%s=%q: a duration up to 10m", name, s)
	}
	return d
}
