package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// scenario is one traffic pattern.
type scenario struct {
	name     string  // S1, S1-paced, S2, …
	servers  int     // servers in the target
	pubs     int     // publishers (senders)
	subs     int     // fan-out: receivers of every publisher; 0 for direct pairs
	rate     float64 // messages/s offered in all; 0: as fast as the window allows
	window   int     // messages in flight per publisher (sent, not yet received by all)
	duration time.Duration
	payload  int  // bytes of the GSIO payload value
	idle     int  // S4: idle connections
	partial  bool // relays in a partial mesh (partialBoots), not a full one
	spread   bool // fan-out publisher i on server i mod n (default: all on server 0)
	s5       bool // run S5's steady-state and join phases after the warm-up
}

func (sc *scenario) direct() bool { return sc.subs == 0 && sc.idle == 0 }

func (sc *scenario) describe() string {
	switch {
	case sc.idle > 0:
		return fmt.Sprintf("%d idle clients on 1 server", sc.idle)
	case sc.direct():
		s := fmt.Sprintf("%d sender/recipient pairs on different servers of %d", sc.pubs, sc.servers)
		if sc.rate > 0 {
			s += fmt.Sprintf(", %.0f msg/s in all", sc.rate)
		}
		return s
	case sc.s5:
		return fmt.Sprintf("%d relays (partial mesh), %d nodes; broadcast: 1 publisher per relay, %.0f msg/s in all", sc.servers, sc.subs+sc.pubs, sc.rate)
	default:
		s := fmt.Sprintf("%d pub -> %d subs on %d server(s), %d B payload", sc.pubs, sc.subs, sc.servers, sc.payload)
		if sc.rate > 0 {
			s += fmt.Sprintf(", paced %.0f msg/s", sc.rate)
		} else {
			s += fmt.Sprintf(", window %d", sc.window)
		}
		return s
	}
}

// result is what one scenario measured on one target.
type result struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Detail   string `json:"detail"`

	Sent      int64   `json:"sent"`
	Expected  int64   `json:"expected"`
	Received  int64   `json:"received"`
	Lost      int64   `json:"lost"`
	Dup       int64   `json:"duplicated"`
	Other     int64   `json:"other_frames"`
	SentRate  float64 `json:"sent_per_s"`
	Rate      float64 `json:"delivered_per_s"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
	Max       float64 `json:"max_ms"`
	Seconds   float64 `json:"seconds"`
	ServerCPU float64 `json:"server_cpu_pct"` // percent of one core, all servers
	CPUPerMsg float64 `json:"server_cpu_us_per_delivery"`
	ServerRSS int64   `json:"server_rss_bytes"`
	GenCPU    float64 `json:"generator_cpu_pct"`
	Load      string  `json:"loadavg"`

	Conns        int     `json:"conns,omitempty"`
	RSSPerConn   float64 `json:"rss_per_conn_bytes,omitempty"`
	HeapPerConn  float64 `json:"heap_per_conn_bytes,omitempty"`
	StackPerConn float64 `json:"stack_per_conn_bytes,omitempty"`

	S5 *s5Result `json:"s5,omitempty"`

	Notes []string `json:"notes,omitempty"`
	Err   string   `json:"error,omitempty"`
}

func (r *result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Bounds of a scenario's phases.
const (
	warmupTimeout = 30 * time.Second
	drainQuiet    = 2 * time.Second  // no delivery for that long ends the drain
	drainMax      = 10 * time.Second // the drain never takes longer
)

// runTraffic runs a fan-out or direct scenario against t.
func runTraffic(ctx context.Context, cfg *config, sc *scenario, t *target) (res result) {
	res = result{Scenario: sc.name, Target: t.kind, Detail: sc.describe(), Load: loadAvg()}
	proto := protoOf(t.kind)
	fail := func(err error) result {
		res.Err = err.Error()
		return res
	}

	// Placement. Fan-out: publishers on server 0, subscriber i on server
	// i mod n. Direct: sender i on server i mod n, its recipient on the
	// next server.
	n := len(t.servers)
	type place struct {
		srv     *server
		id, sub string
	}
	var rplaces, pplaces []place
	if sc.direct() {
		for i := range sc.pubs {
			subj := fmt.Sprintf("bench.d.%d", i)
			rplaces = append(rplaces, place{t.servers[(i+1)%n], fmt.Sprintf("rcv-%d", i), subj})
			pplaces = append(pplaces, place{t.servers[i%n], fmt.Sprintf("snd-%d", i), ""})
		}
	} else {
		for i := range sc.subs {
			rplaces = append(rplaces, place{t.servers[i%n], fmt.Sprintf("sub-%d", i), "bench.fan"})
		}
		for i := range sc.pubs {
			srv := t.servers[0]
			if sc.spread {
				srv = t.servers[i%n]
			}
			pplaces = append(pplaces, place{srv, fmt.Sprintf("pub-%d", i), ""})
		}
	}
	rconns, err := dialAll(len(rplaces), 16, func(i int) (*conn, error) {
		return dialClient(rplaces[i].srv, proto, rplaces[i].id, rplaces[i].sub)
	})
	if err != nil {
		return fail(fmt.Errorf("dial receivers: %w", err))
	}
	pconns, err := dialAll(len(pplaces), 16, func(i int) (*conn, error) {
		return dialClient(pplaces[i].srv, proto, pplaces[i].id, "")
	})
	if err != nil {
		for _, c := range rconns {
			c.close()
		}
		return fail(fmt.Errorf("dial publishers: %w", err))
	}
	all := append(append([]*conn(nil), rconns...), pconns...)
	defer func() {
		for _, c := range all {
			c.close()
		}
		for _, c := range all {
			if !c.waitDone(5 * time.Second) {
				res.note("a reader did not end within 5 s")
				break
			}
		}
	}()

	pubs := make([]*publisher, len(pconns))
	rcvs := make([]*receiver, len(rconns))
	measuring := new(atomic.Bool)
	for i := range rcvs {
		rcvs[i] = newReceiver(len(pconns), measuring)
	}
	for i, c := range pconns {
		recipient, subject := "", "bench.fan"
		if sc.direct() {
			recipient, subject = rplaces[i].id, rplaces[i].sub
		}
		pubs[i] = newPublisher(i, c, pplaces[i].id, recipient, subject, sc.payload, sc.window)
	}
	for i, r := range rcvs {
		if sc.direct() {
			r.expect(pubs[i])
		} else {
			for _, p := range pubs {
				r.expect(p)
			}
		}
		rconns[i].start(r)
	}
	prcv := make([]*receiver, len(pconns))
	for i, c := range pconns {
		prcv[i] = newReceiver(len(pconns), measuring)
		c.start(prcv[i])
	}

	// S5's steady state and joins come first, with no traffic at all.
	var dups0, firsts0 float64
	if sc.s5 {
		res.S5 = &s5Result{Relays: n, Nodes: len(rplaces) + len(pplaces)}
		local := make([]int, n)
		for _, pl := range append(append([]place(nil), rplaces...), pplaces...) {
			for k, s := range t.servers {
				if s == pl.srv {
					local[k]++
				}
			}
		}
		if err := s5Phases(ctx, cfg, t, local, &res); err != nil {
			return fail(fmt.Errorf("S5: %w", err))
		}
	}

	// Warm-up: every publisher reaches every one of its receivers. A
	// warm-up message every 20 ms; with S5's thousands of receivers, one
	// a second (20 ms would be 50 x 10,000 deliveries/s per publisher).
	deadline := time.Now().Add(warmupTimeout)
	period := 20 * time.Millisecond
	if sc.s5 {
		deadline, period = time.Now().Add(4*warmupTimeout), time.Second
	}
	if err := forEach(pubs, func(p *publisher) error { return p.warmup(deadline, period) }); err != nil {
		return fail(fmt.Errorf("warm-up: %w", err))
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	if sc.s5 {
		dups0, firsts0, _ = s5Dups(t)
	}

	// Measured run.
	var profWG sync.WaitGroup
	defer profWG.Wait()
	profErrs := make([]error, len(t.servers)) // one per profiling goroutine
	if cfg.profileDir != "" && t.kind == kindRelay {
		secs := max(1, int(sc.duration/time.Second))
		for i, s := range t.servers {
			profWG.Go(func() {
				path := filepath.Join(cfg.profileDir, fmt.Sprintf("%s-%s.cpu.pprof", sc.name, s.name))
				url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprof, secs)
				if err := fetchProfile(ctx, url, path, time.Duration(secs+15)*time.Second); err != nil {
					profErrs[i] = fmt.Errorf("cpu profile of %s: %w", s.name, err)
				}
			})
		}
	}
	before, err := t.stats()
	if err != nil {
		return fail(err)
	}
	genBefore := selfCPU()
	measuring.Store(true)
	start := clock()
	until := start + int64(sc.duration)
	perPub := sc.rate / float64(len(pubs))
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Go(func() { p.run(until, perPub) })
	}
	wg.Wait()
	pubEnd := clock()

	// Drain: until everything expected arrived, or deliveries stop.
	var sent, expected int64
	for _, p := range pubs {
		sent += p.sent
		expected += p.sent * int64(len(p.streams))
	}
	got := func() int64 {
		var g int64
		for _, r := range rcvs {
			for _, s := range r.streams {
				if s != nil {
					g += s.count.Load()
				}
			}
		}
		return g
	}
	last, lastChange, drainStart := got(), time.Now(), time.Now()
	for last < expected && time.Since(lastChange) < drainQuiet && time.Since(drainStart) < drainMax && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		if g := got(); g != last {
			last, lastChange = g, time.Now()
		}
	}
	after, err := t.stats()
	if err != nil {
		return fail(err)
	}
	genCPU := selfCPU() - genBefore
	wall := after[0].at.Sub(before[0].at)
	var lastRecv int64
	for _, r := range rcvs {
		lastRecv = max(lastRecv, r.lastRecv.Load())
	}
	profWG.Wait()
	for _, err := range profErrs {
		if err != nil {
			res.note("%v", err)
		}
	}
	if cfg.profileDir != "" && t.kind == kindRelay {
		for _, s := range t.servers {
			for _, p := range []string{"allocs", "heap"} {
				path := filepath.Join(cfg.profileDir, fmt.Sprintf("%s-%s.%s.pprof", sc.name, s.name, p))
				if err := fetchProfile(ctx, "http://"+s.pprof+"/debug/pprof/"+p, path, 10*time.Second); err != nil {
					res.note("%s profile of %s: %v", p, s.name, err)
				}
			}
		}
	}

	// Stop the readers before reading what they own.
	for _, c := range all {
		c.close()
	}
	for _, c := range all {
		c.waitDone(5 * time.Second)
	}

	var h histogram
	var otherWarm int64
	for _, r := range append(append([]*receiver(nil), rcvs...), prcv...) {
		otherWarm += r.otherWarm
	}
	if otherWarm > 0 {
		res.note("%d non-benchmark frames during warm-up (RelayError recipient_unknown while presence spreads, for direct messages)", otherWarm)
	}
	for _, r := range rcvs {
		h.merge(&r.hist)
		for _, s := range r.streams {
			if s != nil {
				res.Received += s.seq.unique
				res.Dup += s.seq.dup
			}
		}
		if r.stray > 0 {
			res.note("%d messages reached a receiver they were not sent to", r.stray)
		}
		if r.other > 0 {
			res.Other += r.other
		}
		if err := r.failure(); err != nil {
			res.note("receiver: %v", err)
		}
	}
	for i, r := range prcv {
		res.Other += r.other
		if r.other > 0 && len(res.Notes) < 8 {
			res.note("%s got %d other frames, e.g. %s", pubs[i].name, r.other, r.example)
		}
		if err := r.failure(); err != nil {
			res.note("publisher connection: %v", err)
		}
	}
	for _, p := range pubs {
		if p.stalled {
			res.note("%s stalled: its window did not move for %v", p.name, stallTimeout)
		}
		if p.err != nil {
			res.note("%s: %v", p.name, p.err)
		}
	}
	for _, r := range rcvs {
		if r.other > 0 && r.example != "" {
			res.note("a receiver got %d other frames, e.g. %s", r.other, r.example)
			break
		}
	}
	res.Sent, res.Expected = sent, expected
	res.Lost = max(expected-res.Received, 0)
	res.Seconds = time.Duration(pubEnd - start).Seconds()
	res.SentRate = float64(sent) / res.Seconds
	if sc.rate > 0 && res.SentRate < 0.95*sc.rate {
		res.note("could not keep the pace: %.0f msg/s offered, %.0f sent (the in-flight window was full: saturated)", sc.rate, res.SentRate)
	}
	if span := time.Duration(max(lastRecv, pubEnd) - start).Seconds(); span > 0 {
		res.Rate = float64(res.Received) / span
	}
	res.P50 = ms(h.quantile(0.50))
	res.P99 = ms(h.quantile(0.99))
	res.P999 = ms(h.quantile(0.999))
	res.Max = ms(time.Duration(h.max))
	var cpu time.Duration
	for i := range after {
		cpu += after[i].cpu - before[i].cpu
		res.ServerRSS += after[i].rss
	}
	res.ServerCPU = pct(cpu, wall)
	if res.Received > 0 {
		res.CPUPerMsg = float64(cpu.Microseconds()) / float64(res.Received)
	}
	res.GenCPU = pct(genCPU, wall)
	if sc.s5 {
		dups1, firsts1, found := s5Dups(t)
		res.S5.DupPerMsg = -1
		if found && firsts1 > firsts0 {
			res.S5.DupPerMsg = (dups1 - dups0) / (firsts1 - firsts0)
		}
		var rss []float64
		for i := range after {
			rss = append(rss, float64(after[i].rss))
		}
		res.S5.RSS, res.S5.RSSMax = meanMax(rss)
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * float64(cpu) / float64(wall)
}

// forEach runs f for every publisher concurrently and joins the errors.
func forEach(pubs []*publisher, f func(*publisher) error) error {
	errs := make([]error, len(pubs))
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Go(func() { errs[i] = f(p) })
	}
	wg.Wait()
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if len(msgs) > 3 {
		msgs = append(msgs[:3], fmt.Sprintf("and %d more", len(msgs)-3))
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}
