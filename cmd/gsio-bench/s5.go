package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// S5 is the federation at scale (docs/BENCHMARKS.md "S5"): N relays in a
// partial mesh, M nodes spread over them. runTraffic runs its broadcast
// phase (c); s5Phases runs, after the warm-up and before it, the steady
// state (a) and the joins (b); (d) is the RSS at the end.

// s5Result is what S5 measured beyond the traffic table.
type s5Result struct {
	Relays int `json:"relays"`
	Nodes  int `json:"nodes"`
	// (a) steady state, per relay (mean and max over the relays)
	SteadySeconds   float64 `json:"steady_seconds"`
	ReadBps         float64 `json:"read_bytes_per_s_mean"` // /proc/PID/io rchar: everything the process read
	ReadBpsMax      float64 `json:"read_bytes_per_s_max"`
	PresenceBps     float64 `json:"presence_bytes_per_s_mean"` // gsio_node_presence_received_bytes_total; -1 when the relay lacks it
	PresenceBpsMax  float64 `json:"presence_bytes_per_s_max"`
	PresencePullBps float64 `json:"presence_pull_bytes_per_s_mean"` // the part of PresenceBps read from pulls
	SteadyPulls     float64 `json:"steady_pulls"`                   // pulls made by all relays in the steady state
	PresenceMsgs    float64 `json:"presence_copies_per_s_mean"`     // presence gossip messages received per second (first copies and duplicates)
	SteadyCPU       float64 `json:"steady_cpu_pct_mean"`
	SteadyCPUMax    float64 `json:"steady_cpu_pct_max"`
	SteadyRSS       float64 `json:"steady_rss_bytes_mean"`
	SteadyRSSMax    float64 `json:"steady_rss_bytes_max"`
	PresenceWaitSec float64 `json:"presence_wait_seconds"` // until every relay knew every node
	// (b) joins and leaves: time until visible at every relay, one sample
	// per (wave, relay)
	Joins    int     `json:"joins"`
	JoinP50  float64 `json:"join_p50_ms"`
	JoinP99  float64 `json:"join_p99_ms"`
	JoinMax  float64 `json:"join_max_ms"`
	LeaveP50 float64 `json:"leave_p50_ms"`
	LeaveP99 float64 `json:"leave_p99_ms"`
	LeaveMax float64 `json:"leave_max_ms"`
	// (c) gossip duplicates per broadcast gossip message per relay; -1
	// when the relay lacks the metric
	DupPerMsg float64 `json:"gossip_duplicates_per_message_per_relay"`
	// (d) RSS per relay at the end
	RSS    float64 `json:"rss_bytes_mean"`
	RSSMax float64 `json:"rss_bytes_max"`
}

// s5Config are S5's sizes (flags).
type s5Config struct {
	relays, nodes, joins, wave int
	steady, broadcast          time.Duration
	perRelayRate               float64
}

// Metric names S5 reads.
const (
	mDirNodes      = "gsio_node_directory_nodes"
	mPresenceBytes = "gsio_node_presence_received_bytes_total"
	mPresencePull  = `gsio_node_presence_received_bytes_total{via="pull"}`
	mPulls         = "gsio_node_presence_pulls_total"
	mPresFirst     = `gsio_node_validation_total{reason="",result="accept",topic="presence"}`
	mPresDups      = `gsio_node_gossip_duplicates_total{topic="presence"}`
	mDuplicates    = `gsio_node_gossip_duplicates_total{topic="broadcast"}`
	mAccepted      = `gsio_node_validation_total{reason="",result="accept",topic="broadcast"}`
)

// sumMetric sums every series of name (any labels); a name with labels
// matches that series only. found is false when there is none.
func sumMetric(page []byte, name string) (v float64, found bool) {
	for l := range bytes.SplitSeq(page, []byte("\n")) {
		if len(l) == 0 || l[0] == '#' || !bytes.HasPrefix(l, []byte(name)) {
			continue
		}
		rest := l[len(name):]
		if len(rest) > 0 && rest[0] == '{' && !strings.Contains(name, "{") {
			if i := bytes.IndexByte(rest, '}'); i >= 0 {
				rest = rest[i+1:]
			}
		}
		if len(rest) == 0 || rest[0] != ' ' {
			continue
		}
		if f, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64); err == nil {
			v += f
			found = true
		}
	}
	return v, found
}

// procRead is rchar of /proc/PID/io: the bytes the process read.
func procRead(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no rchar in /proc/PID/io")
}

// metricsAll reads the metrics names at every server (in parallel; a
// relay that does not answer in time is asked up to 3 times).
func metricsAll(t *target, names ...string) ([][]float64, []bool, error) {
	out := make([][]float64, len(t.servers))
	found := make([]bool, len(names))
	errs := make([]error, len(t.servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, s := range t.servers {
		wg.Go(func() {
			var page []byte
			var err error
			for range 3 {
				if page, err = httpGet(s.metrics); err == nil {
					break
				}
			}
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = make([]float64, len(names))
			for j, n := range names {
				v, ok := sumMetric(page, n)
				out[i][j] = v
				if ok {
					mu.Lock()
					found[j] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return out, found, errors.Join(errs...)
}

func meanMax(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	var sum, mx float64
	for _, x := range v {
		sum += x
		mx = max(mx, x)
	}
	return sum / float64(len(v)), mx
}

// s5Phases runs S5's steady state and joins against t, whose relays
// hold local[k] of the scenario's nodes each (receivers and publishers).
func s5Phases(ctx context.Context, cfg *config, t *target, local []int, res *result) error {
	s5 := res.S5
	n := len(t.servers)
	total := 0
	for _, l := range local {
		total += l
	}
	// Every relay knows every node: directory_nodes counts the remote ones.
	start := time.Now()
	if err := waitDir(ctx, t, func(k int, v float64) bool { return int(v) >= total-local[k] }, 120*time.Second); err != nil {
		return fmt.Errorf("presence did not spread: %w", err)
	}
	s5.PresenceWaitSec = time.Since(start).Seconds()

	// (a) Steady state.
	read0 := make([]int64, n)
	for k, s := range t.servers {
		v, err := procRead(s.pid())
		if err != nil {
			return err
		}
		read0[k] = v
	}
	m0, found, err := metricsAll(t, mPresenceBytes, mPresencePull, mPulls, mPresFirst, mPresDups)
	if err != nil {
		return err
	}
	st0, err := t.stats()
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(cfg.s5.steady):
	}
	st1, err := t.stats()
	if err != nil {
		return err
	}
	m1, _, err := metricsAll(t, mPresenceBytes, mPresencePull, mPulls, mPresFirst, mPresDups)
	if err != nil {
		return err
	}
	var reads, pres, pulls, copies, cpus, rss []float64
	for k, s := range t.servers {
		v, err := procRead(s.pid())
		if err != nil {
			return err
		}
		secs := st1[k].at.Sub(st0[k].at).Seconds()
		reads = append(reads, float64(v-read0[k])/secs)
		pres = append(pres, (m1[k][0]-m0[k][0])/secs)
		pulls = append(pulls, (m1[k][1]-m0[k][1])/secs)
		s5.SteadyPulls += m1[k][2] - m0[k][2]
		copies = append(copies, (m1[k][3]-m0[k][3]+m1[k][4]-m0[k][4])/secs)
		cpus = append(cpus, pct(st1[k].cpu-st0[k].cpu, st1[k].at.Sub(st0[k].at)))
		rss = append(rss, float64(st1[k].rss))
	}
	s5.SteadySeconds = st1[0].at.Sub(st0[0].at).Seconds()
	s5.ReadBps, s5.ReadBpsMax = meanMax(reads)
	s5.PresenceBps, s5.PresenceBpsMax = meanMax(pres)
	s5.PresencePullBps, _ = meanMax(pulls)
	s5.PresenceMsgs, _ = meanMax(copies)
	if !found[0] {
		s5.PresenceBps, s5.PresenceBpsMax = -1, -1
	}
	s5.SteadyCPU, s5.SteadyCPUMax = meanMax(cpus)
	s5.SteadyRSS, s5.SteadyRSSMax = meanMax(rss)

	// (b) Joins and leaves, in waves: each wave's nodes connect at once,
	// spread over the relays; then they leave at once.
	var joins, leaves histogram
	waves := (cfg.s5.joins + cfg.s5.wave - 1) / cfg.s5.wave
	base, _, err := metricsAll(t, mDirNodes)
	if err != nil {
		return err
	}
	baseDir := make([]float64, n)
	for k := range base {
		baseDir[k] = base[k][0]
	}
	joined := 0
	var dialMax time.Duration
	for w := range waves {
		size := min(cfg.s5.wave, cfg.s5.joins-joined)
		onRelay := make([]int, n)
		for i := range size {
			onRelay[(joined+i)%n]++
		}
		t0 := time.Now()
		conns, err := dialAll(size, 16, func(i int) (*conn, error) {
			c, err := dialClient(t.servers[(joined+i)%n], protoGSIO, fmt.Sprintf("s5-join-%d-%d", w, i), "")
			if err == nil {
				c.start(newReceiver(0, new(atomic.Bool)))
			}
			return c, err
		})
		if err != nil {
			return fmt.Errorf("joins: %w", err)
		}
		dialMax = max(dialMax, time.Since(t0))
		lat, err := waitDirEach(ctx, t, func(k int, v float64) bool { return v >= baseDir[k]+float64(size-onRelay[k]) }, t0)
		if err != nil {
			closeAll(conns)
			return fmt.Errorf("join wave %d: %w", w, err)
		}
		for _, d := range lat {
			joins.record(int64(d))
		}
		t1 := time.Now()
		closeAll(conns)
		lat, err = waitDirEach(ctx, t, func(k int, v float64) bool { return v <= baseDir[k] }, t1)
		if err != nil {
			return fmt.Errorf("leave wave %d: %w", w, err)
		}
		for _, d := range lat {
			leaves.record(int64(d))
		}
		joined += size
	}
	s5.Joins = joined
	res.note("S5 joins: the slowest wave took %v to connect its %d nodes (included in the join times)", dialMax.Round(time.Millisecond), cfg.s5.wave)
	s5.JoinP50, s5.JoinP99, s5.JoinMax = ms(joins.quantile(0.5)), ms(joins.quantile(0.99)), ms(time.Duration(joins.max))
	s5.LeaveP50, s5.LeaveP99, s5.LeaveMax = ms(leaves.quantile(0.5)), ms(leaves.quantile(0.99)), ms(time.Duration(leaves.max))
	return nil
}

func closeAll(cs []*conn) {
	for _, c := range cs {
		c.close()
	}
	for _, c := range cs {
		c.waitDone(5 * time.Second)
	}
}

// s5Poll is the period at which S5 reads the relays' directories.
const s5Poll = 20 * time.Millisecond

// waitDir polls every relay's directory_nodes until ok holds at all.
func waitDir(ctx context.Context, t *target, ok func(k int, v float64) bool, timeout time.Duration) error {
	_, err := waitDirEach(ctx, t, ok, time.Now().Add(timeout-10*time.Second))
	return err
}

// waitDirEach polls every relay's directory_nodes until ok holds at each
// one (10 s at most after since) and returns, per relay, the time from
// since to the first poll at which it held.
func waitDirEach(ctx context.Context, t *target, ok func(k int, v float64) bool, since time.Time) ([]time.Duration, error) {
	n := len(t.servers)
	lat := make([]time.Duration, n)
	done := make([]bool, n)
	left := n
	deadline := since.Add(10 * time.Second)
	for left > 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A relay too busy to answer within the HTTP timeout (10,000
		// clients connecting on 2 cores) is asked again at the next poll.
		vals, _, err := metricsAll(t, mDirNodes)
		now := time.Now()
		for k := range n {
			if !done[k] && vals[k] != nil && ok(k, vals[k][0]) {
				done[k], lat[k] = true, now.Sub(since)
				left--
			}
		}
		if left == 0 {
			break
		}
		if now.After(deadline) {
			var late []string
			for k := range n {
				if !done[k] && vals[k] != nil {
					late = append(late, fmt.Sprintf("%s=%.0f", t.servers[k].name, vals[k][0]))
				}
			}
			return nil, fmt.Errorf("not visible after %v at %s (last error: %v)", deadline.Sub(since).Round(time.Second), strings.Join(late, ", "), err)
		}
		time.Sleep(s5Poll)
	}
	return lat, nil
}

// s5Dups reads the broadcast duplicates and first copies at every relay.
func s5Dups(t *target) (dups, firsts float64, found bool) {
	vals, f, err := metricsAll(t, mDuplicates, mAccepted)
	if err != nil {
		return 0, 0, false
	}
	for _, v := range vals {
		dups += v[0]
		firsts += v[1]
	}
	return dups, firsts, f[0]
}

// s5Line is S5's report line.
func (s *s5Result) line() string {
	pres := "-"
	if s.PresenceBps >= 0 {
		pres = fmt.Sprintf("%.0f (max %.0f; pulls %.0f B/s, %.0f pulls in all; %.1f gossip copies/s)", s.PresenceBps, s.PresenceBpsMax, s.PresencePullBps, s.SteadyPulls, s.PresenceMsgs)
	}
	dup := "-"
	if s.DupPerMsg >= 0 {
		dup = fmt.Sprintf("%.2f", s.DupPerMsg)
	}
	return fmt.Sprintf("S5 %d relays, %d nodes: presence spread in %.1f s; steady %.0f s: read %.0f B/s per relay (max %.0f), presence %s B/s, CPU %.1f%% (max %.1f%%), RSS %.0f MiB; %d joins p50/p99/max %.0f/%.0f/%.0f ms, leaves %.0f/%.0f/%.0f ms; gossip dups per message per relay %s; RSS at end %.0f MiB (max %.0f)",
		s.Relays, s.Nodes, s.PresenceWaitSec, s.SteadySeconds, s.ReadBps, s.ReadBpsMax, pres, s.SteadyCPU, s.SteadyCPUMax,
		s.SteadyRSS/(1<<20), s.Joins, s.JoinP50, s.JoinP99, s.JoinMax, s.LeaveP50, s.LeaveP99, s.LeaveMax, dup,
		s.RSS/(1<<20), s.RSSMax/(1<<20))
}

// s5Table is S5's Markdown table.
func s5Table(results []result) string {
	var rows []string
	for _, r := range results {
		if r.S5 == nil || r.Err != "" {
			continue
		}
		s := r.S5
		pres, dup := "-", "-"
		if s.PresenceBps >= 0 {
			pres = fmt.Sprintf("%.0f / %.0f", s.PresenceBps, s.PresenceBpsMax)
		}
		if s.DupPerMsg >= 0 {
			dup = fmt.Sprintf("%.2f", s.DupPerMsg)
		}
		rows = append(rows, fmt.Sprintf("| %s | %d | %d | %.0f / %.0f | %s | %.1f%% / %.1f%% | %d | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f | %s / %s / %s | %d | %s | %.0f / %.0f MiB |",
			r.Target, s.Relays, s.Nodes, s.ReadBps, s.ReadBpsMax, pres, s.SteadyCPU, s.SteadyCPUMax, s.Joins,
			s.JoinP50, s.JoinP99, s.JoinMax, s.LeaveP50, s.LeaveP99, s.LeaveMax, f2(r.P50), f2(r.P99), f2(r.Max), r.Lost, dup,
			s.RSS/(1<<20), s.RSSMax/(1<<20)))
	}
	if len(rows) == 0 {
		return ""
	}
	slices.Sort(rows)
	return "\n| S5 target | relays | nodes | steady read B/s per relay (mean / max) | presence B/s per relay (mean / max) | CPU per relay (mean / max) | joins | join visible everywhere p50 / p99 / max ms | leave p50 / p99 / max ms | broadcast p50 / p99 / max ms | lost | gossip dups per msg per relay | RSS per relay (mean / max) |\n" +
		"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n" + strings.Join(rows, "\n") + "\n"
}
