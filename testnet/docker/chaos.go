package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/client"
)

// The chaos run (tnctl chaos, make testnet-chaos; docs/TESTNET.md): clients
// on every relay broadcast at a bounded rate while the relays are
// partitioned (chaosnet.go), killed and started again; then everything is
// healed and the run waits, bounded, until every client has every
// broadcast and every relay's history holds all of them (chaoscheck.go).

// ChaosConfig is what a chaos run does.
type ChaosConfig struct {
	Duration        time.Duration // the chaos phase (broadcasts, partitions, kills)
	ClientsPerRelay int           // clients whose first relay is each relay
	Rate            float64       // broadcasts per second of each client
	EventMin        time.Duration // time between two chaos events: uniform in [EventMin, EventMax]
	EventMax        time.Duration
	DownMin         time.Duration // a killed relay is started again after a time uniform in [DownMin, DownMax]
	DownMax         time.Duration
	MaxDown         int           // relays down at once, at most
	PartitionMin    time.Duration // a partition holds for a time uniform in [PartitionMin, PartitionMax],
	PartitionMax    time.Duration // then heals or gives way to another
	Partitions      bool          // make partitions
	Kills           bool          // kill and restart relays
	ConvergeTimeout time.Duration // after the heal, wait this long at most for convergence
	Poll            time.Duration // convergence check period
	InFlight        time.Duration // see ChaosInput.InFlight
	ResumeMargin    time.Duration // the clients' client.Config.ResumeMargin
	Seed            uint64        // 0: random
	Log             io.Writer     // progress (events); nil: discarded
}

// DefaultChaosConfig is a 3-minute run.
func DefaultChaosConfig() ChaosConfig {
	return ChaosConfig{
		Duration:        3 * time.Minute,
		ClientsPerRelay: 2,
		Rate:            2,
		EventMin:        3 * time.Second,
		EventMax:        8 * time.Second,
		PartitionMin:    15 * time.Second,
		PartitionMax:    40 * time.Second,
		DownMin:         3 * time.Second,
		DownMax:         12 * time.Second,
		MaxDown:         2,
		Partitions:      true,
		Kills:           true,
		ConvergeTimeout: 2 * time.Minute,
		Poll:            2 * time.Second,
		InFlight:        2 * time.Second,
		ResumeMargin:    client.DefaultConfig().ResumeMargin,
	}
}

// chaosType is the message_type of the run's broadcasts.
const chaosType = "ChaosBroadcast"

// chaosClient is one client of the run and what it saw.
type chaosClient struct {
	id   string
	home int // index of its first relay
	c    *client.Client
	done chan struct{} // its reader ended

	mu    sync.Mutex
	got   map[MsgKey]int
	sent  []ChaosSent
	conns []connEvent // its connection history, for the diagnosis

	ups atomic.Int64 // connections bound
}

// connEvent: a client's connection to a relay was bound (up) or ended.
type connEvent struct {
	at    time.Time
	relay string
	up    bool
}

type chaosRunner struct {
	st    *State
	cfg   ChaosConfig
	rnd   *mrand.Rand
	runID string
	start time.Time
	log   func(format string, args ...any)

	clients []*chaosClient
	urlName map[string]string

	// Relay state, owned by the event loop.
	down      map[int]time.Time // relay -> when to start it again
	outages   map[string][]Outage
	partition *Partition
	partUntil time.Time // when the partition in force may end
	run       ChaosRun
}

// RunChaos runs a chaos run against the running testnet. The error is for
// a run that could not be made (no testnet, docker failing); a run made
// whose check fails returns its result with OK() false.
func (s *State) RunChaos(ctx context.Context, cfg ChaosConfig) (ChaosRun, ChaosResult, error) {
	if len(s.Relays) < 2 {
		return ChaosRun{}, ChaosResult{}, errors.New("a chaos run needs two relays")
	}
	if cfg.Rate <= 0 || cfg.Rate > 50 {
		return ChaosRun{}, ChaosResult{}, fmt.Errorf("rate %v: want (0, 50] broadcasts per second per client", cfg.Rate)
	}
	if cfg.ResumeMargin <= 0 {
		return ChaosRun{}, ChaosResult{}, fmt.Errorf("resume margin %v: want > 0", cfg.ResumeMargin)
	}
	if cfg.ClientsPerRelay < 1 || cfg.ClientsPerRelay > 20 {
		return ChaosRun{}, ChaosResult{}, fmt.Errorf("clients per relay %d: want 1 to 20", cfg.ClientsPerRelay)
	}
	if cfg.EventMin <= 0 || cfg.EventMax < cfg.EventMin || cfg.DownMin <= 0 || cfg.DownMax < cfg.DownMin ||
		cfg.PartitionMin <= 0 || cfg.PartitionMax < cfg.PartitionMin || cfg.Poll <= 0 {
		return ChaosRun{}, ChaosResult{}, errors.New("chaos config: event and down times must be positive, max >= min")
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	r := &chaosRunner{
		st: s, cfg: cfg, rnd: mrand.New(mrand.NewPCG(seed, 0x6773696f)),
		runID: hex.EncodeToString(b[:]), urlName: map[string]string{},
		down: map[int]time.Time{}, outages: map[string][]Outage{},
	}
	out := cfg.Log
	if out == nil {
		out = io.Discard
	}
	r.log = func(format string, args ...any) {
		fmt.Fprintf(out, "  %6.1fs  %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
	}
	r.start = time.Now()
	r.log("chaos run %s, seed %d: %d relays, %d clients per relay, %.1f broadcasts/s each, %v; clients resume with a margin of %v",
		r.runID, seed, len(s.Relays), cfg.ClientsPerRelay, cfg.Rate, cfg.Duration, cfg.ResumeMargin)
	for _, rl := range s.Relays {
		r.urlName[rl.WS] = rl.Name
	}
	r.run = ChaosRun{Relays: len(s.Relays), ConvergeTimeout: cfg.ConvergeTimeout,
		AdminCounts: map[string]int64{}, AdminComplete: map[string]bool{}}
	// Whatever happens, the testnet is left healed: no rule, every relay
	// started.
	defer func() { _, _ = r.healAll(context.WithoutCancel(ctx)) }()
	// The run's broadcasts are those with ts after this (less a margin
	// for the relays' clocks).
	since := time.Now().Add(-5 * time.Second)
	if err := r.dialClients(ctx); err != nil {
		return r.run, ChaosResult{}, err
	}
	defer r.closeClients()

	// Chaos: senders and events until the end of the phase.
	phase, cancel := context.WithTimeout(ctx, cfg.Duration)
	var wg sync.WaitGroup
	for _, c := range r.clients {
		wg.Add(1)
		go func() { defer wg.Done(); r.send(phase, c) }()
	}
	evErr := r.events(phase)
	cancel()
	wg.Wait()
	r.run.Duration = time.Since(r.start)
	if evErr != nil && ctx.Err() == nil {
		return r.run, ChaosResult{}, evErr
	}
	if ctx.Err() != nil {
		return r.run, ChaosResult{}, ctx.Err()
	}

	// Heal, then wait for convergence.
	r.log("heal: removing every partition rule, starting every relay down")
	healed := time.Now()
	unhealthy, err := r.healAll(ctx)
	if err != nil {
		return r.run, ChaosResult{}, err
	}
	if len(unhealthy) > 0 {
		r.log("not healthy two minutes after the heal: %s", strings.Join(unhealthy, ", "))
		r.run.Unhealthy = unhealthy
	}
	audit := newAuditors(s, r.runID)
	defer audit.close()
	var res ChaosResult
	deadline := healed.Add(cfg.ConvergeTimeout)
	last := ""
	for {
		res = CheckChaos(r.input(ctx, audit))
		if res.Converged() {
			r.run.Converged = true
			r.run.HealToConvergence = time.Since(healed)
			r.log("converged %.1fs after the heal", r.run.HealToConvergence.Seconds())
			break
		}
		if msg := convergeProgress(res); msg != last {
			r.log("not converged: %s", msg)
			last = msg
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.log("not converged within %v of the heal", cfg.ConvergeTimeout)
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Poll):
		}
	}
	// A last quiet second, then the final tally: late duplicates count.
	time.Sleep(time.Second)
	res = CheckChaos(r.input(ctx, audit))
	if res.Converged() != r.run.Converged && r.run.Converged {
		r.log("the final tally differs from the converged one: %s", convergeProgress(res))
	}
	for _, rl := range s.Relays {
		r.run.AdminCounts[rl.Name] = -1
		if ac, err := audit.admin(rl); err == nil {
			if v, _, err := ac.History(ctx, since.UnixMilli()); err == nil {
				r.run.AdminCounts[rl.Name] = v.Window.Count
				r.run.AdminComplete[rl.Name] = v.Window.Complete
			}
		}
	}
	r.run.Clients = len(r.clients)
	for _, c := range r.clients {
		u := c.c.URL()
		switch {
		case u == "":
			r.run.ClientsNotConnected++
		case u != s.Relays[c.home].WS:
			r.run.ClientsOnOtherRelay++
		}
		r.run.ClientReconnectsTotal += max(c.ups.Load()-1, 0)
	}
	if !res.OK() {
		r.explain(res)
	}
	return r.run, res, nil
}

// explain logs, for each client that misses broadcasts, which ones (by
// sender and sequence number, with when they were sent) and where the
// client was connected meanwhile: the material to tell a relay that did
// not deliver from a resume that did not reach back far enough.
func (r *chaosRunner) explain(res ChaosResult) {
	sentAt := map[MsgKey]time.Time{}
	for _, c := range r.clients {
		c.mu.Lock()
		for _, s := range c.sent {
			sentAt[s.Key] = s.At
		}
		c.mu.Unlock()
	}
	short := func(id string) string { return strings.TrimPrefix(id, "chaos-"+r.runID+"-") }
	rel := func(t time.Time) string { return fmt.Sprintf("%.1fs", t.Sub(r.start).Seconds()) }
	for _, c := range r.clients {
		keys := res.MissingKeys[c.id]
		if len(keys) == 0 {
			continue
		}
		// Runs of consecutive sequence numbers per sender.
		type run struct {
			sender     string
			from, to   int
			first, end time.Time
		}
		var runs []run
		for _, k := range sortBySeq(keys) {
			seq := seqOf(k.ID)
			at := sentAt[k]
			if n := len(runs); n > 0 && runs[n-1].sender == k.Sender && runs[n-1].to+1 == seq {
				runs[n-1].to, runs[n-1].end = seq, at
				continue
			}
			runs = append(runs, run{k.Sender, seq, seq, at, at})
		}
		var parts []string
		for i, ru := range runs {
			if i == 12 {
				parts = append(parts, fmt.Sprintf("… %d more runs", len(runs)-i))
				break
			}
			parts = append(parts, fmt.Sprintf("%s #%d-%d (sent %s-%s)", short(ru.sender), ru.from, ru.to, rel(ru.first), rel(ru.end)))
		}
		c.mu.Lock()
		var conns []string
		for _, e := range c.conns {
			if e.up {
				conns = append(conns, fmt.Sprintf("%s from %s", e.relay, rel(e.at)))
			} else {
				conns = append(conns, fmt.Sprintf("off %s at %s", e.relay, rel(e.at)))
			}
		}
		c.mu.Unlock()
		r.log("%s misses %d: %s; its connections: %s", short(c.id), len(keys), strings.Join(parts, ", "), strings.Join(conns, ", "))
	}
}

// seqOf is the sequence number at the end of a chaos message id.
func seqOf(id string) int {
	n := 0
	if i := strings.LastIndexByte(id, '-'); i >= 0 {
		_, _ = fmt.Sscanf(id[i+1:], "%d", &n)
	}
	return n
}

func sortBySeq(keys []MsgKey) []MsgKey {
	out := slices.Clone(keys)
	slices.SortFunc(out, func(a, b MsgKey) int {
		if c := strings.Compare(a.Sender, b.Sender); c != 0 {
			return c
		}
		return seqOf(a.ID) - seqOf(b.ID)
	})
	return out
}

func convergeProgress(res ChaosResult) string {
	var parts []string
	parts = append(parts, fmt.Sprintf("%d of %d broadcasts missing at clients (max %d)", res.MissingTotal, res.Universe, res.MissingMax))
	names := make([]string, 0, len(res.RelayMissing))
	for name := range res.RelayMissing {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if n := res.RelayMissing[name]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s lacks %d", name, n))
		}
	}
	if len(res.RelaysUnread) > 0 {
		parts = append(parts, fmt.Sprintf("unread %v", res.RelaysUnread))
	}
	return strings.Join(parts, "; ")
}

// dialClients connects every client, to its own relay first.
func (r *chaosRunner) dialClients(ctx context.Context) error {
	n := len(r.st.Relays)
	for i := range n {
		for j := range r.cfg.ClientsPerRelay {
			cfg := client.DefaultConfig()
			for k := range n {
				cfg.URLs = append(cfg.URLs, r.st.Relays[(i+k)%n].WS)
			}
			c := &chaosClient{
				id:   fmt.Sprintf("chaos-%s-r%d-c%d", r.runID, i+1, j+1),
				home: i, got: map[MsgKey]int{}, done: make(chan struct{}),
			}
			cfg.NodeID = c.id
			cfg.Resume = true
			cfg.ResumeMargin = r.cfg.ResumeMargin
			cfg.BackoffMax = 3 * time.Second
			cfg.HandshakeTimeout = 5 * time.Second
			cfg.PingInterval = 3 * time.Second
			cfg.ReadTimeout = 10 * time.Second // a relay gone behind docker-proxy
			cfg.WriteTimeout = 5 * time.Second
			cfg.Buffer = 8192
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			cl, err := client.Dial(dctx, cfg, client.WithStateHook(func(s client.State) {
				if s.Connected {
					c.ups.Add(1)
				}
				c.mu.Lock()
				c.conns = append(c.conns, connEvent{time.Now(), r.urlName[s.URL], s.Connected})
				c.mu.Unlock()
			}))
			cancel()
			if err != nil {
				return fmt.Errorf("client %s: %w", c.id, err)
			}
			c.c = cl
			go c.read("chaos-" + r.runID + "-r")
			r.clients = append(r.clients, c)
		}
	}
	r.log("%d clients connected", len(r.clients))
	return nil
}

func (r *chaosRunner) closeClients() {
	for _, c := range r.clients {
		_ = c.c.Close()
		<-c.done
	}
}

// read records the run's broadcasts a client receives (a resume replay
// reaches back before the run: broadcasts of an earlier run on the same
// testnet are not this run's).
func (c *chaosClient) read(prefix string) {
	defer close(c.done)
	for m := range c.c.Messages() {
		if m.Type != chaosType || !m.Broadcast() || !strings.HasPrefix(m.Sender, prefix) {
			continue
		}
		c.mu.Lock()
		c.got[MsgKey{m.Sender, m.ID}]++
		c.mu.Unlock()
	}
}

// send broadcasts at the configured rate until ctx ends.
func (r *chaosRunner) send(ctx context.Context, c *chaosClient) {
	every := time.Duration(float64(time.Second) / r.cfg.Rate)
	// Spread the clients' ticks.
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(mrand.Int64N(int64(every)))):
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for seq := 1; ; seq++ {
		id := fmt.Sprintf("%s-%d", c.id, seq)
		before := r.urlName[c.c.URL()]
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.c.Send(sctx, client.Message{Type: chaosType, ID: id, Payload: []byte(fmt.Sprintf(`{"seq":%d}`, seq))})
		cancel()
		after := r.urlName[c.c.URL()]
		s := ChaosSent{Key: MsgKey{c.id, id}, At: time.Now(), OK: err == nil}
		for _, n := range []string{before, after} {
			if n != "" && (len(s.Relays) == 0 || s.Relays[0] != n) {
				s.Relays = append(s.Relays, n)
			}
		}
		c.mu.Lock()
		c.sent = append(c.sent, s)
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// events makes partitions, kills and restarts until ctx ends.
func (r *chaosRunner) events(ctx context.Context) error {
	cfg := r.cfg
	names := make([]string, len(r.st.Relays))
	for i, rl := range r.st.Relays {
		names[i] = rl.Name
	}
	for {
		d := cfg.EventMin + time.Duration(r.rnd.Int64N(int64(cfg.EventMax-cfg.EventMin)+1))
		// Wake up for a restart due before the next event.
		for _, at := range r.down {
			if w := time.Until(at); w < d {
				d = max(w, 0)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		if ctx.Err() != nil {
			return nil
		}
		// What the previous events made of the federation, as each relay
		// sees it: the relays it has a connection to.
		r.log("links: %s", r.links(ctx))
		if started, err := r.restartDue(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // the phase ended during it: the heal starts what is down
			}
			return err
		} else if started {
			continue
		}
		// A partition in force holds until its time is over, then heals
		// or gives way to another; with none in force, one may start.
		choices := []string{"wait"}
		if cfg.Partitions {
			switch {
			case r.partition == nil:
				choices = append(choices, "partition")
			case time.Now().After(r.partUntil):
				choices = append(choices, "partition", "heal")
			}
		}
		if cfg.Kills && len(r.down) < cfg.MaxDown {
			choices = append(choices, "kill")
		}
		var err error
		switch choices[r.rnd.IntN(len(choices))] {
		case "partition":
			oneWay := r.rnd.IntN(2) == 1
			p := RandomPartition(r.rnd, names, oneWay)
			if _, err = r.st.ApplyPartition(ctx, p.Blocks); err == nil {
				r.partition = &p
				hold := cfg.PartitionMin + time.Duration(r.rnd.Int64N(int64(cfg.PartitionMax-cfg.PartitionMin)+1))
				r.partUntil = time.Now().Add(hold)
				if oneWay {
					r.run.AsymPartitions++
				} else {
					r.run.SymPartitions++
				}
				r.log("partition %s (for %v at least)", p.Desc, hold.Round(time.Second))
			}
		case "heal":
			if _, err = r.st.ApplyPartition(ctx, nil); err == nil {
				r.partition = nil
				r.run.Heals++
				r.log("partition healed")
			}
		case "kill":
			var up []int
			for i := range r.st.Relays {
				if _, isDown := r.down[i]; !isDown {
					up = append(up, i)
				}
			}
			i := up[r.rnd.IntN(len(up))]
			rl := r.st.Relays[i]
			if _, err = Docker(ctx, "kill", rl.Container); err == nil {
				downFor := cfg.DownMin + time.Duration(r.rnd.Int64N(int64(cfg.DownMax-cfg.DownMin)+1))
				r.down[i] = time.Now().Add(downFor)
				r.outages[rl.Name] = append(r.outages[rl.Name], Outage{Killed: time.Now()})
				r.run.Kills++
				r.log("docker kill %s (back in %v)", rl.Name, downFor.Round(100*time.Millisecond))
			}
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// links says how many other relays each relay is connected to (admin
// API /api/v1/peers), "down" for a relay down, "?" when it did not answer.
func (r *chaosRunner) links(ctx context.Context) string {
	var parts []string
	for i, rl := range r.st.Relays {
		v := "?"
		if _, isDown := r.down[i]; isDown {
			v = "down"
		} else if c, err := admin.NewClient(rl.Admin, r.st.AdminToken, 2*time.Second); err == nil {
			if peers, _, err := c.Peers(ctx); err == nil {
				n := 0
				for _, p := range peers.Peers {
					if p.GsioRelay {
						n++
					}
				}
				v = fmt.Sprint(n)
			}
			c.Close()
		}
		parts = append(parts, rl.Name+" "+v)
	}
	return strings.Join(parts, ", ")
}

// restartDue starts the relays whose down time is over, and installs the
// partition in force in their new namespaces.
func (r *chaosRunner) restartDue(ctx context.Context) (bool, error) {
	started := false
	for i, at := range r.down {
		if time.Now().Before(at) {
			continue
		}
		if err := r.startRelay(ctx, i); err != nil {
			return started, err
		}
		r.run.Restarts++
		started = true
	}
	if started && r.partition != nil {
		if _, err := r.st.ApplyPartition(ctx, r.partition.Blocks); err != nil {
			return started, err
		}
	}
	return started, nil
}

// startRelay runs docker start on a killed relay (same container, same
// volume: its identity and history survive).
func (r *chaosRunner) startRelay(ctx context.Context, i int) error {
	rl := r.st.Relays[i]
	if _, err := Docker(ctx, "start", rl.Container); err != nil {
		return err
	}
	delete(r.down, i)
	o := r.outages[rl.Name]
	if len(o) > 0 && o[len(o)-1].Started.IsZero() {
		o[len(o)-1].Started = time.Now()
	}
	r.log("docker start %s", rl.Name)
	return nil
}

// healAll removes every rule and starts every relay down, then waits
// (at most two minutes) until every relay's container reports healthy. It
// returns the relays that did not, with their last status (on a machine
// under heavy load the health check itself can time out: the run goes on
// and the table names them); the error is for a docker command that
// failed.
func (r *chaosRunner) healAll(ctx context.Context) ([]string, error) {
	var errs []error
	for i := range r.st.Relays {
		if _, isDown := r.down[i]; isDown {
			if err := r.startRelay(ctx, i); err != nil {
				errs = append(errs, err)
			} else {
				r.run.Restarts++
			}
		}
	}
	if _, err := r.st.ApplyPartition(ctx, nil); err != nil {
		errs = append(errs, err)
	}
	r.partition = nil
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var unhealthy []string
		for _, rl := range r.st.Relays {
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			h, err := Health(hctx, rl.Container)
			cancel()
			if err != nil {
				h = err.Error()
			}
			if h != "healthy" {
				unhealthy = append(unhealthy, rl.Name+" ("+h+")")
			}
		}
		if len(unhealthy) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return unhealthy, errors.Join(errs...)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// input collects what the run observed, reading every relay's history.
func (r *chaosRunner) input(ctx context.Context, a *auditors) ChaosInput {
	in := ChaosInput{
		Received:  map[string]map[MsgKey]int{},
		Dropped:   map[string]int64{},
		Histories: map[string]map[MsgKey]bool{},
		Outages:   r.outages,
		InFlight:  r.cfg.InFlight,
	}
	for _, c := range r.clients {
		c.mu.Lock()
		got := make(map[MsgKey]int, len(c.got))
		for k, v := range c.got {
			got[k] = v
		}
		in.Sent = append(in.Sent, c.sent...)
		c.mu.Unlock()
		in.Received[c.id] = got
		in.Dropped[c.id] = c.c.Stats().Duplicates
	}
	for _, rl := range r.st.Relays {
		in.Relays = append(in.Relays, rl.Name)
		h, err := a.history(ctx, rl, r.start.Add(-5*time.Second))
		if err != nil {
			r.log("%s: history not read: %v", rl.Name, err)
			continue
		}
		in.Histories[rl.Name] = h
	}
	return in
}

// auditors read each relay's history of the run through a client of its
// own on that relay only (HistoryRequest: the broadcasts themselves, not
// only their count).
type auditors struct {
	st     *State
	runID  string
	mu     sync.Mutex
	byName map[string]*client.Client
	admins map[string]*admin.Client
}

func newAuditors(st *State, runID string) *auditors {
	return &auditors{st: st, runID: runID, byName: map[string]*client.Client{}, admins: map[string]*admin.Client{}}
}

func (a *auditors) close() {
	for _, c := range a.byName {
		_ = c.Close()
	}
	for _, c := range a.admins {
		c.Close()
	}
}

// admin is the relay's admin API client.
func (a *auditors) admin(rl Relay) (c *admin.Client, err error) {
	if c = a.admins[rl.Name]; c != nil {
		return c, nil
	}
	if c, err = admin.NewClient(rl.Admin, a.st.AdminToken, 5*time.Second); err == nil {
		a.admins[rl.Name] = c
	}
	return c, err
}

// history returns the run's broadcasts the relay's history holds from
// since on, following cut answers.
func (a *auditors) history(ctx context.Context, rl Relay, since time.Time) (map[MsgKey]bool, error) {
	c := a.byName[rl.Name]
	if c == nil || c.Err() != nil {
		cfg := client.DefaultConfig()
		cfg.URLs = []string{rl.WS}
		cfg.NodeID = fmt.Sprintf("chaos-%s-audit-%s", a.runID, rl.Name)
		cfg.BackoffMax = 2 * time.Second
		cfg.Buffer = 64 // it receives live traffic too: dropped by drain
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		var err error
		c, err = client.Dial(dctx, cfg)
		cancel()
		if err != nil {
			return nil, err
		}
		a.byName[rl.Name] = c
		go func() {
			for range c.Messages() { // live broadcasts: not the audit's
			}
		}()
	}
	prefix := "chaos-" + a.runID + "-r"
	got := map[MsgKey]bool{}
	for range 100 { // at most 100 answers of up to 10,000
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := c.History(hctx, since, time.Time{}, client.MaxHistoryLimit)
		cancel()
		var re *client.RelayError
		if errors.As(err, &re) && re.Code == client.CodeRateLimited {
			time.Sleep(600 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, m := range res.Messages {
			if m.Type == chaosType && strings.HasPrefix(m.Sender, prefix) {
				got[MsgKey{m.Sender, m.ID}] = true
			}
		}
		if res.NextSince.IsZero() || !res.NextSince.After(since) {
			return got, nil
		}
		since = res.NextSince
		time.Sleep(500 * time.Millisecond) // 2 requests a second per connection
	}
	return got, fmt.Errorf("history of %s: more than 100 answers", rl.Name)
}
