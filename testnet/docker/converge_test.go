//go:build testnet

package docker

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestConvergence: M simulated gsio-nodes spread over the relays each
// broadcast K EntryAnnounce messages at a steady pace while one relay is
// restarted mid-run; its nodes are closed (1001), connect again as soon as
// it is back and send the rest. At the end every node that stayed connected
// has received every message sent while the mesh was whole (before the
// restart began, and after the restarted relay's links carried broadcasts
// both ways again) and every message of the other nodes that stayed
// connected, each exactly once. The figures: lost and duplicate
// deliveries, delivery latency, the restart's disturbance.
//
// CONVERGE_NODES (default 4 per relay), CONVERGE_MSGS (default 150) and
// CONVERGE_INTERVAL (default 100ms between two messages of a node) change
// the load.
func TestConvergence(t *testing.T) {
	if len(st.Relays) < 2 {
		t.Skip("a convergence run with a restart needs two relays")
	}
	M := envInt(t, "CONVERGE_NODES", 4*len(st.Relays))
	K := envInt(t, "CONVERGE_MSGS", 150)
	interval := 100 * time.Millisecond
	if v := os.Getenv("CONVERGE_INTERVAL"); v != "" {
		var err error
		if interval, err = time.ParseDuration(v); err != nil {
			t.Fatalf("CONVERGE_INTERVAL: %v", err)
		}
	}
	restartIdx := 1 // relay2
	restartAfter := time.Duration(K) * interval / 4
	waitWhole(t, time.Minute)

	nodes := make([]*simNode, M)
	relayOf := make([]int, M)
	sentAt := make([][]time.Time, M) // [node][k]
	var ids []string
	for j := range M {
		relayOf[j] = j % len(st.Relays)
		nodes[j] = newSimNode(t, nodeID("cv", j), st.Relays[relayOf[j]].WS)
		nodes[j].ConnectRetry(t, 10*time.Second)
		sentAt[j] = make([]time.Time, K)
		ids = append(ids, nodes[j].id)
	}
	listsAll(t, nodes[:len(st.Relays)], ids, 20*time.Second)
	for _, n := range nodes { // the node lists above are broadcasts too
		n.mu.Lock()
		n.got = nil
		n.mu.Unlock()
	}

	start := time.Now()
	var restartAt, restartDone time.Time
	var wg sync.WaitGroup
	errs := make(chan error, M+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(restartAfter)
		restartAt = time.Now()
		if _, err := Docker(t.Context(), "restart", "--time", "10", st.Relays[restartIdx].Container); err != nil {
			errs <- err
		}
		restartDone = time.Now()
	}()
	for j, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range K {
				time.Sleep(time.Until(start.Add(time.Duration(k) * interval)))
				id := fmt.Sprintf("cv-%d", k)
				for attempt := 0; ; attempt++ {
					if !n.Connected() && n.Connect() != nil {
						if attempt > 600 { // 60 s
							errs <- fmt.Errorf("%s: could not connect again", n.id)
							return
						}
						time.Sleep(100 * time.Millisecond)
						continue
					}
					if err := n.Send("EntryAnnounce", id, "", fmt.Sprintf(`{"k":%d,"t":%d}`, k, time.Now().UnixNano())); err == nil {
						sentAt[j][k] = time.Now()
						break
					}
					// The write failed: the connection is going; send the
					// same message id again on the next one (the relays
					// drop it if the first attempt got through after all).
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sendDone := time.Since(start)

	stayed := make([]bool, M)
	for j, n := range nodes {
		stayed[j] = len(n.Ends()) == 0
		if !stayed[j] && relayOf[j] != restartIdx {
			t.Fatalf("%s on %s, which was not restarted, lost its connection: %v", n.id, st.Relays[relayOf[j]].Name, n.Ends())
		}
	}

	// received[j][sender][k]: how often node j received message k of sender.
	received := func() [][][]int {
		r := make([][][]int, M)
		index := map[string]int{}
		for j, n := range nodes {
			index[n.id] = j
		}
		for j, n := range nodes {
			r[j] = make([][]int, M)
			for s := range M {
				r[j][s] = make([]int, K)
			}
			for _, a := range n.Arrivals() {
				s, ok := index[a.Msg.Sender]
				var k int
				if a.Msg.Type != "EntryAnnounce" || !ok {
					continue
				}
				if _, err := fmt.Sscanf(a.Msg.ID, "cv-%d", &k); err != nil || k < 0 || k >= K {
					continue
				}
				r[j][s][k]++
			}
		}
		return r
	}

	// The mesh is whole again once, for each ordered pair of the restarted
	// relay and another relay, a message sent after the restart began
	// crossed it; from then on nothing may be lost.
	whole := func(rcv [][][]int) time.Time {
		var reformed time.Time
		for a := range st.Relays {
			for b := range st.Relays {
				if a == b || (a != restartIdx && b != restartIdx) {
					continue
				}
				var first time.Time
				for s := range M {
					for j := range M {
						if relayOf[s] != a || relayOf[j] != b {
							continue
						}
						for k := range K {
							if at := sentAt[s][k]; rcv[j][s][k] > 0 && at.After(restartAt) && (first.IsZero() || at.Before(first)) {
								first = at
							}
						}
					}
				}
				if first.IsZero() {
					return time.Time{} // never
				}
				if first.After(reformed) {
					reformed = first
				}
			}
		}
		return reformed
	}

	// expected says whether stayed node j must have message k of s.
	expected := func(j, s, k int, reformed time.Time) bool {
		if j == s || !stayed[j] {
			return false
		}
		at := sentAt[s][k]
		return stayed[s] || at.Before(restartAt) || (!reformed.IsZero() && !at.Before(reformed))
	}

	// Drain: wait until every stayed node has all it must have (or 30 s).
	var rcv [][][]int
	var reformed time.Time
	drainStart := time.Now()
	for {
		rcv = received()
		reformed = whole(rcv)
		missing := 0
		for j := range M {
			for s := range M {
				for k := range K {
					if expected(j, s, k, reformed) && rcv[j][s][k] == 0 {
						missing++
					}
				}
			}
		}
		if (missing == 0 && !reformed.IsZero()) || time.Since(drainStart) > 30*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // late duplicates
	rcv = received()
	reformed = whole(rcv)

	// Count.
	var (
		want, lost, dups, disturbedSent, disturbedLost, otherLost, otherDups int
		lat                                                                  []time.Duration
	)
	latOf := map[[3]int]time.Duration{}
	for j, n := range nodes {
		if !stayed[j] {
			continue
		}
		for _, a := range n.Arrivals() {
			var p struct {
				K int   `json:"k"`
				T int64 `json:"t"`
			}
			if a.Msg.Type == "EntryAnnounce" && json.Unmarshal(a.Msg.Payload, &p) == nil && p.T > 0 {
				latOf[[3]int{j, slices.Index(ids, a.Msg.Sender), p.K}] = a.At.Sub(time.Unix(0, p.T))
			}
		}
	}
	var lostList []string
	for j := range M {
		for s := range M {
			if j == s {
				continue
			}
			for k := range K {
				got := rcv[j][s][k]
				if !stayed[j] {
					// A restarted node: connected before the restart, and
					// again after its reconnection once the mesh was whole.
					if got > 1 {
						otherDups += got - 1
					}
					at, back := sentAt[s][k], nodes[j].reconnectedAt()
					if got == 0 && (at.Before(restartAt) || (!reformed.IsZero() && !back.IsZero() && at.After(reformed) && at.After(back))) {
						otherLost++
					}
					continue
				}
				if got > 1 {
					dups += got - 1
				}
				if expected(j, s, k, reformed) {
					want++
					if got == 0 {
						lost++
						if len(lostList) < 10 {
							lostList = append(lostList, fmt.Sprintf("%s cv-%d to %s (sent %v after start)", nodes[s].id, k, nodes[j].id, sentAt[s][k].Sub(start).Round(time.Millisecond)))
						}
					} else if d, ok := latOf[[3]int{j, s, k}]; ok {
						lat = append(lat, d)
					}
				} else {
					disturbedSent++
					if got == 0 {
						disturbedLost++
					}
				}
			}
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))].Round(100 * time.Microsecond)
	}
	nStayed := 0
	var downtimes []string
	for j, n := range nodes {
		if stayed[j] {
			nStayed++
			continue
		}
		ends := n.Ends()
		downtimes = append(downtimes, fmt.Sprintf("%s: closed %v after the restart began (%v), connected again %v later", n.id,
			ends[0].At.Sub(restartAt).Round(time.Millisecond), ends[0].Err, n.reconnectGap().Round(time.Millisecond)))
	}
	reform := "never"
	if !reformed.IsZero() {
		reform = fmt.Sprintf("%.1fs", reformed.Sub(restartAt).Seconds())
	}
	t.Logf("restarted nodes: %v", downtimes)
	figure(t, "convergence: %d nodes on %d relays x %d EntryAnnounce each (%d sent) every %v; %s restarted %.1fs into the run (docker restart took %.1fs); mesh whole again %s after the restart began; sending took %.1fs",
		M, len(st.Relays), K, M*K, interval, st.Relays[restartIdx].Name, restartAt.Sub(start).Seconds(), restartDone.Sub(restartAt).Seconds(), reform, sendDone.Seconds())
	figure(t, "convergence: %d nodes stayed connected: %d deliveries due while the mesh was whole, %d lost, %d duplicates; latency p50 %v p99 %v max %v",
		nStayed, want, lost, dups, pct(0.5), pct(0.99), pct(1))
	figure(t, "convergence: messages of the restarted relay's nodes sent during the disturbance: %d deliveries to stayed nodes, %d of them lost (not promised); the %d restarted nodes: %d lost while connected and whole, %d duplicates",
		disturbedSent, disturbedLost, M-nStayed, otherLost, otherDups)
	if reformed.IsZero() {
		t.Fatalf("the restarted relay's links never carried a broadcast both ways")
	}
	if lost > 0 || dups > 0 {
		t.Fatalf("%d deliveries lost, %d duplicates among nodes that stayed connected; lost: %v", lost, dups, lostList)
	}
	waitWhole(t, time.Minute)
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
