package docker

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The checker of a chaos run (tnctl chaos, make testnet-chaos): pure logic
// over what the clients sent and received and what the relays' histories
// hold, so that it is tested with fabricated inputs (chaoscheck_test.go).

// MsgKey names a message federation-wide: (sender_id, message_id).
type MsgKey struct{ Sender, ID string }

// ChaosSent is one broadcast a chaos client tried to send.
type ChaosSent struct {
	Key MsgKey
	At  time.Time // when Send returned
	// Relays: the relay names the client was connected to just before
	// and just after Send (one or two names; none when unknown).
	Relays []string
	OK     bool // Send returned nil: the frame was written to a socket
}

// Outage is a relay's time down: from its docker kill to its docker start
// (Started zero: it was not started again before the heal).
type Outage struct{ Killed, Started time.Time }

// ChaosInput is everything a chaos run observed.
type ChaosInput struct {
	Sent []ChaosSent
	// Received: client node id -> message -> times Messages() delivered
	// it (after the client's own duplicate filter). Every client of the
	// run has an entry, also one that received nothing.
	Received map[string]map[MsgKey]int
	// Dropped: client node id -> duplicates its filter dropped (before
	// dedup: replays of the resume margin, copies from two relays).
	Dropped map[string]int64
	// Histories: relay name -> the run's broadcasts its history holds.
	// A relay whose history could not be read is absent (and fails the
	// check).
	Histories map[string]map[MsgKey]bool
	Relays    []string            // every relay of the testnet, in order
	Outages   map[string][]Outage // relay name -> its kills
	// InFlight: a frame written to a relay this long before it was
	// killed may have died with it (in the relay's or docker-proxy's
	// buffers): SIGKILL forgives that, nothing else does.
	InFlight time.Duration
}

// ChaosResult is the verdict of a chaos run.
type ChaosResult struct {
	SentOK, SendErrors int
	// Universe: the run's broadcasts that entered the federation: held by
	// some relay's history or received by some client. Every client must
	// have received each of them (but its own), every relay must hold
	// each of them.
	Universe int
	// OnlyAtClients: of the universe, those no relay's history holds
	// (a relay delivered them, then lost them from its store).
	OnlyAtClients int
	// LostWithKill: sent (Send returned nil) to a relay killed within
	// InFlight after (or while it was down), and in the universe nowhere.
	LostWithKill int
	// Lost: sent, in the universe nowhere, and no kill explains it.
	Lost []MsgKey
	// Missing: client -> messages of the universe (not its own) it did
	// not receive.
	Missing              map[string]int
	MissingKeys          map[string][]MsgKey // the same, each sorted by sender and id
	MissingMax           int
	MissingTotal         int
	MissingSample        []string // a few "client: sender/id", for the log
	DupDropped           int64    // duplicates dropped by the clients' filters
	DupDelivered         int      // deliveries beyond the first after the filters (should be 0)
	RelayHolds           map[string]int
	RelayMissing         map[string]int
	RelaysUnread         []string
	UnknownReceived      int // received by a client, sent by no client of the run (should be 0)
	SendErrorsInUniverse int // sends that returned an error but whose frame went out anyway
}

// CheckChaos computes the verdict of a run.
func CheckChaos(in ChaosInput) ChaosResult {
	r := ChaosResult{
		Missing:      map[string]int{},
		MissingKeys:  map[string][]MsgKey{},
		RelayHolds:   map[string]int{},
		RelayMissing: map[string]int{},
	}
	sent := map[MsgKey]bool{}
	for _, s := range in.Sent {
		sent[s.Key] = true
		if s.OK {
			r.SentOK++
		} else {
			r.SendErrors++
		}
	}
	universe := map[MsgKey]bool{}
	inHistory := map[MsgKey]bool{}
	for _, h := range in.Histories {
		for k := range h {
			universe[k], inHistory[k] = true, true
		}
	}
	clients := make([]string, 0, len(in.Received))
	for c, got := range in.Received {
		clients = append(clients, c)
		for k, n := range got {
			if n <= 0 {
				continue
			}
			universe[k] = true
			if n > 1 {
				r.DupDelivered += n - 1
			}
			if !sent[k] {
				r.UnknownReceived++
			}
		}
	}
	slices.Sort(clients)
	r.Universe = len(universe)
	r.OnlyAtClients = r.Universe - len(inHistory)
	for _, s := range in.Sent {
		switch {
		case universe[s.Key] && !s.OK:
			r.SendErrorsInUniverse++
		case universe[s.Key] || !s.OK:
		case diedWith(s, in.Outages, in.InFlight):
			r.LostWithKill++
		default:
			r.Lost = append(r.Lost, s.Key)
		}
	}
	keys := make([]MsgKey, 0, len(universe))
	for k := range universe {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b MsgKey) int {
		return strings.Compare(a.Sender+"\x00"+a.ID, b.Sender+"\x00"+b.ID)
	})
	for _, c := range clients {
		got := in.Received[c]
		n := 0
		for _, k := range keys {
			if k.Sender != c && got[k] == 0 {
				n++
				r.MissingKeys[c] = append(r.MissingKeys[c], k)
				if len(r.MissingSample) < 5 {
					r.MissingSample = append(r.MissingSample, c+": "+k.Sender+"/"+k.ID)
				}
			}
		}
		r.Missing[c] = n
		r.MissingTotal += n
		r.MissingMax = max(r.MissingMax, n)
	}
	for _, d := range in.Dropped {
		r.DupDropped += d
	}
	for _, name := range in.Relays {
		h, ok := in.Histories[name]
		if !ok {
			r.RelaysUnread = append(r.RelaysUnread, name)
			continue
		}
		holds := 0
		for _, k := range keys {
			if h[k] {
				holds++
			}
		}
		r.RelayHolds[name] = holds
		r.RelayMissing[name] = len(keys) - holds
	}
	return r
}

// diedWith says whether a lost send is explained by a kill of the relay it
// was written to: sent at most inFlight before the kill, or while the
// relay was down (docker-proxy may have taken the frame).
func diedWith(s ChaosSent, outages map[string][]Outage, inFlight time.Duration) bool {
	for _, name := range s.Relays {
		for _, o := range outages[name] {
			if s.At.Before(o.Killed.Add(-inFlight)) {
				continue
			}
			if o.Started.IsZero() || !s.At.After(o.Started) {
				return true
			}
		}
	}
	return false
}

// Converged says whether every client has every broadcast of the universe
// and every relay's history holds all of them.
func (r ChaosResult) Converged() bool {
	if r.MissingTotal > 0 || len(r.RelaysUnread) > 0 {
		return false
	}
	for _, n := range r.RelayMissing {
		if n > 0 {
			return false
		}
	}
	return true
}

// OK is the verdict: converged, nothing lost that no kill explains, no
// duplicate past the clients' filters, nothing received that nobody sent.
func (r ChaosResult) OK() bool {
	return r.Converged() && len(r.Lost) == 0 && r.DupDelivered == 0 && r.UnknownReceived == 0
}

// Failures lists why the run fails, empty when it passes.
func (r ChaosResult) Failures() []string {
	var f []string
	if r.MissingTotal > 0 {
		f = append(f, fmt.Sprintf("%d deliveries missing at clients (max %d at one client); e.g. %s",
			r.MissingTotal, r.MissingMax, strings.Join(r.MissingSample, ", ")))
	}
	for name, n := range r.RelayMissing {
		if n > 0 {
			f = append(f, fmt.Sprintf("%s's history lacks %d of %d broadcasts", name, n, r.Universe))
		}
	}
	if len(r.RelaysUnread) > 0 {
		f = append(f, fmt.Sprintf("histories not read: %v", r.RelaysUnread))
	}
	if len(r.Lost) > 0 {
		f = append(f, fmt.Sprintf("%d broadcasts sent and found nowhere, no kill explains them (e.g. %v)", len(r.Lost), r.Lost[0]))
	}
	if r.DupDelivered > 0 {
		f = append(f, fmt.Sprintf("%d duplicates delivered past the clients' filters", r.DupDelivered))
	}
	if r.UnknownReceived > 0 {
		f = append(f, fmt.Sprintf("%d received broadcasts that no client sent", r.UnknownReceived))
	}
	slices.Sort(f)
	return f
}

// ChaosRun describes the run beside the verdict, for the summary table.
type ChaosRun struct {
	Relays, Clients       int
	Duration              time.Duration // the chaos phase
	SymPartitions         int
	AsymPartitions        int
	Heals                 int // partitions healed during the run (the final heal not counted)
	Kills, Restarts       int
	Converged             bool
	HealToConvergence     time.Duration // when Converged
	ConvergeTimeout       time.Duration
	AdminCounts           map[string]int64 // relay -> /api/v1/history window count since the run's start (-1: not read)
	AdminComplete         map[string]bool
	ClientsOnOtherRelay   int // clients connected at the end to another relay than their own
	ClientsNotConnected   int
	ClientReconnectsTotal int64
	Unhealthy             []string // relays whose container was not healthy two minutes after the heal, with their status
}

// WriteSummary prints the one summary table of a run.
func WriteSummary(w io.Writer, run ChaosRun, res ChaosResult, relays []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("relays", "%d", run.Relays)
	row("clients", "%d (%d per relay); at the end %d on another relay than their own, %d not connected; %d reconnections",
		run.Clients, run.Clients/max(run.Relays, 1), run.ClientsOnOtherRelay, run.ClientsNotConnected, run.ClientReconnectsTotal)
	row("chaos duration", "%v", run.Duration.Round(time.Second))
	row("partitions", "%d (%d symmetric, %d asymmetric), %d healed during the run", run.SymPartitions+run.AsymPartitions,
		run.SymPartitions, run.AsymPartitions, run.Heals)
	row("kills / restarts", "%d / %d", run.Kills, run.Restarts)
	row("broadcasts sent", "%d (Send ok), %d send errors (%d of them went out anyway)", res.SentOK, res.SendErrors, res.SendErrorsInUniverse)
	row("broadcasts in the federation", "%d (%d in no relay's history)", res.Universe, res.OnlyAtClients)
	row("lost with a killed relay", "%d (written to a relay within the in-flight window of its SIGKILL)", res.LostWithKill)
	row("lost otherwise", "%d", len(res.Lost))
	row("missing per client", "max %d, total %d", res.MissingMax, res.MissingTotal)
	row("duplicates", "%d dropped by the clients' filters (resume overlap, copies), %d delivered past them", res.DupDropped, res.DupDelivered)
	if len(run.Unhealthy) > 0 {
		row("not healthy after the heal", "%s (docker health check, 2 min after the heal)", strings.Join(run.Unhealthy, ", "))
	}
	if run.Converged {
		row("heal -> convergence", "%.1fs", run.HealToConvergence.Seconds())
	} else {
		row("heal -> convergence", "not converged within %v", run.ConvergeTimeout)
	}
	for _, name := range relays {
		admin := "admin count unread"
		if n, ok := run.AdminCounts[name]; ok && n >= 0 {
			admin = fmt.Sprintf("admin window count %d, complete %v", n, run.AdminComplete[name])
		}
		if slices.Contains(res.RelaysUnread, name) {
			row(name+" history", "not read; %s", admin)
			continue
		}
		row(name+" history", "%d of %d (missing %d); %s", res.RelayHolds[name], res.Universe, res.RelayMissing[name], admin)
	}
	verdict := "PASS"
	if !res.OK() {
		verdict = "FAIL"
	}
	row("result", "%s", verdict)
	_ = tw.Flush()
}
