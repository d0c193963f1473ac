package docker

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// chaosFixture: clients a (on relay1) and b (on relay2) each sent two
// broadcasts; everyone got everything, both relays hold everything.
func chaosFixture() ChaosInput {
	t0 := time.Unix(1_800_000_000, 0)
	k := func(s, id string) MsgKey { return MsgKey{s, id} }
	sent := []ChaosSent{
		{Key: k("a", "a-1"), At: t0, Relays: []string{"relay1"}, OK: true},
		{Key: k("a", "a-2"), At: t0.Add(time.Second), Relays: []string{"relay1"}, OK: true},
		{Key: k("b", "b-1"), At: t0, Relays: []string{"relay2"}, OK: true},
		{Key: k("b", "b-2"), At: t0.Add(time.Second), Relays: []string{"relay2"}, OK: true},
	}
	all := map[MsgKey]bool{}
	for _, s := range sent {
		all[s.Key] = true
	}
	return ChaosInput{
		Sent: sent,
		Received: map[string]map[MsgKey]int{
			"a": {k("b", "b-1"): 1, k("b", "b-2"): 1},
			"b": {k("a", "a-1"): 1, k("a", "a-2"): 1},
		},
		Dropped:   map[string]int64{"a": 3, "b": 0},
		Histories: map[string]map[MsgKey]bool{"relay1": clone(all), "relay2": clone(all)},
		Relays:    []string{"relay1", "relay2"},
		Outages:   map[string][]Outage{},
		InFlight:  2 * time.Second,
	}
}

func clone(m map[MsgKey]bool) map[MsgKey]bool {
	c := map[MsgKey]bool{}
	for k, v := range m {
		c[k] = v
	}
	return c
}

func TestCheckChaosAllDelivered(t *testing.T) {
	r := CheckChaos(chaosFixture())
	if !r.OK() || !r.Converged() || len(r.Failures()) != 0 {
		t.Fatalf("want a pass, got %+v, failures %v", r, r.Failures())
	}
	if r.Universe != 4 || r.SentOK != 4 || r.MissingTotal != 0 || r.DupDropped != 3 || r.DupDelivered != 0 {
		t.Fatalf("got %+v", r)
	}
	if r.RelayHolds["relay1"] != 4 || r.RelayMissing["relay2"] != 0 {
		t.Fatalf("relay tallies %v %v", r.RelayHolds, r.RelayMissing)
	}
}

// A client that lacks a message another client got, and a relay whose
// history lacks one, fail the check; one's own broadcasts are never due.
func TestCheckChaosMissing(t *testing.T) {
	in := chaosFixture()
	delete(in.Received["a"], MsgKey{"b", "b-2"})
	delete(in.Histories["relay2"], MsgKey{"a", "a-1"})
	r := CheckChaos(in)
	if r.OK() || r.Converged() {
		t.Fatal("want a failure")
	}
	if r.Missing["a"] != 1 || r.Missing["b"] != 0 || r.MissingTotal != 1 || r.MissingMax != 1 {
		t.Fatalf("missing %v total %d max %d", r.Missing, r.MissingTotal, r.MissingMax)
	}
	if r.RelayMissing["relay2"] != 1 || r.RelayHolds["relay2"] != 3 || r.RelayMissing["relay1"] != 0 {
		t.Fatalf("relays %v %v", r.RelayHolds, r.RelayMissing)
	}
	if f := r.Failures(); len(f) != 2 || !strings.Contains(f[0], "a: b/b-2") {
		t.Fatalf("failures %v", f)
	}
}

// A message only one client received (its relay delivered it and lost it
// from its store) is in the universe: the others miss it.
func TestCheckChaosOnlyAtClient(t *testing.T) {
	in := chaosFixture()
	extra := MsgKey{"a", "a-3"}
	in.Sent = append(in.Sent, ChaosSent{Key: extra, At: time.Unix(1_800_000_002, 0), Relays: []string{"relay1"}, OK: true})
	in.Received["b"][extra] = 1
	r := CheckChaos(in)
	if r.Universe != 5 || r.OnlyAtClients != 1 || r.RelayMissing["relay1"] != 1 || r.Missing["a"] != 0 || r.OK() {
		t.Fatalf("got %+v", r)
	}
}

// Duplicates past the clients' filters and messages nobody sent fail it.
func TestCheckChaosDuplicatesAndStrangers(t *testing.T) {
	in := chaosFixture()
	in.Received["a"][MsgKey{"b", "b-1"}] = 3
	r := CheckChaos(in)
	if r.DupDelivered != 2 || r.OK() || !r.Converged() {
		t.Fatalf("got %+v", r)
	}
	in = chaosFixture()
	stranger := MsgKey{"z", "z-1"}
	in.Received["a"][stranger] = 1
	in.Received["b"][stranger] = 1
	in.Histories["relay1"][stranger] = true
	in.Histories["relay2"][stranger] = true
	r = CheckChaos(in)
	if r.UnknownReceived != 2 || r.OK() {
		t.Fatalf("got %+v", r)
	}
}

// A broadcast found nowhere is forgiven only when its relay was killed
// within the in-flight window after the send (or was down then).
func TestCheckChaosLost(t *testing.T) {
	t0 := time.Unix(1_800_000_100, 0)
	for _, tc := range []struct {
		name    string
		at      time.Time
		relays  []string
		outages []Outage
		ok      bool
		forgive bool
	}{
		{"no kill", t0, []string{"relay1"}, nil, true, false},
		{"killed just after", t0, []string{"relay1"}, []Outage{{Killed: t0.Add(time.Second), Started: t0.Add(5 * time.Second)}}, true, true},
		{"killed long after", t0, []string{"relay1"}, []Outage{{Killed: t0.Add(3 * time.Second), Started: t0.Add(5 * time.Second)}}, true, false},
		{"sent while down", t0, []string{"relay1"}, []Outage{{Killed: t0.Add(-10 * time.Second), Started: t0.Add(5 * time.Second)}}, true, true},
		{"sent after the restart", t0, []string{"relay1"}, []Outage{{Killed: t0.Add(-10 * time.Second), Started: t0.Add(-5 * time.Second)}}, true, false},
		{"never restarted", t0, []string{"relay1"}, []Outage{{Killed: t0.Add(-10 * time.Second)}}, true, true},
		{"second relay of the send", t0, []string{"relay2", "relay1"}, []Outage{{Killed: t0.Add(time.Second)}}, true, true},
		{"send failed", t0, []string{"relay1"}, nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := chaosFixture()
			lost := MsgKey{"a", "a-lost"}
			in.Sent = append(in.Sent, ChaosSent{Key: lost, At: tc.at, Relays: tc.relays, OK: tc.ok})
			in.Outages["relay1"] = tc.outages
			r := CheckChaos(in)
			switch {
			case !tc.ok:
				if r.SendErrors != 1 || len(r.Lost) != 0 || r.LostWithKill != 0 || !r.OK() {
					t.Fatalf("a failed send found nowhere is no loss: %+v", r)
				}
			case tc.forgive:
				if r.LostWithKill != 1 || len(r.Lost) != 0 || !r.OK() {
					t.Fatalf("want forgiven: %+v", r)
				}
			default:
				if r.LostWithKill != 0 || !slices.Equal(r.Lost, []MsgKey{lost}) || r.OK() {
					t.Fatalf("want lost: %+v", r)
				}
			}
		})
	}
}

// A send that returned an error but whose frame went out is due like any
// other (and counted).
func TestCheckChaosFailedSendDelivered(t *testing.T) {
	in := chaosFixture()
	late := MsgKey{"a", "a-late"}
	in.Sent = append(in.Sent, ChaosSent{Key: late, OK: false})
	in.Histories["relay1"][late] = true
	r := CheckChaos(in)
	if r.SendErrorsInUniverse != 1 || r.Missing["b"] != 1 || r.RelayMissing["relay2"] != 1 || r.OK() {
		t.Fatalf("got %+v", r)
	}
}

func TestCheckChaosUnreadRelay(t *testing.T) {
	in := chaosFixture()
	delete(in.Histories, "relay2")
	r := CheckChaos(in)
	if r.Converged() || !slices.Equal(r.RelaysUnread, []string{"relay2"}) {
		t.Fatalf("got %+v", r)
	}
	var b bytes.Buffer
	WriteSummary(&b, ChaosRun{Relays: 2, Clients: 2}, r, in.Relays)
	if !strings.Contains(b.String(), "not read; admin count unread") || !strings.Contains(b.String(), "FAIL") {
		t.Fatalf("summary:\n%s", b.String())
	}
}

func TestWriteSummary(t *testing.T) {
	in := chaosFixture()
	r := CheckChaos(in)
	var b bytes.Buffer
	WriteSummary(&b, ChaosRun{Relays: 2, Clients: 2, Duration: 45 * time.Second, SymPartitions: 2, AsymPartitions: 1,
		Kills: 3, Restarts: 3, Converged: true, HealToConvergence: 1500 * time.Millisecond,
		AdminCounts: map[string]int64{"relay1": 4, "relay2": -1}, AdminComplete: map[string]bool{"relay1": true}}, r, in.Relays)
	out := b.String()
	for _, want := range []string{
		"partitions                    3 (2 symmetric, 1 asymmetric)",
		"kills / restarts              3 / 3",
		"missing per client            max 0, total 0",
		"heal -> convergence           1.5s",
		"relay1 history                4 of 4 (missing 0); admin window count 4, complete true",
		"relay2 history                4 of 4 (missing 0); admin count unread",
		"result                        PASS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// RulesFor: a symmetric cut drops both ways on both ends; a one-way cut
// drops the packets of connections the blocked side opens, on both ends;
// a relay down (no address) is named by no rule.
func TestRulesFor(t *testing.T) {
	addrs := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	join := func(rs [][]string) []string {
		var out []string
		for _, r := range rs {
			out = append(out, strings.Join(r, " "))
		}
		return out
	}
	sym := []Block{{From: 0, To: 1}}
	if got := join(RulesFor(0, sym, addrs)); !slices.Equal(got, []string{"-d 10.0.0.2 -j DROP", "-s 10.0.0.2 -j DROP"}) {
		t.Fatalf("symmetric, relay 0: %v", got)
	}
	if got := join(RulesFor(1, sym, addrs)); !slices.Equal(got, []string{"-d 10.0.0.1 -j DROP", "-s 10.0.0.1 -j DROP"}) {
		t.Fatalf("symmetric, relay 1: %v", got)
	}
	if got := RulesFor(2, sym, addrs); len(got) != 0 {
		t.Fatalf("relay 2 is not cut: %v", got)
	}
	one := []Block{{From: 0, To: 2, OneWay: true}}
	if got := join(RulesFor(0, one, addrs)); !slices.Equal(got, []string{"-d 10.0.0.3 -m conntrack --ctdir ORIGINAL -j DROP"}) {
		t.Fatalf("one-way, blocked side: %v", got)
	}
	if got := join(RulesFor(2, one, addrs)); !slices.Equal(got, []string{"-s 10.0.0.1 -m conntrack --ctdir ORIGINAL -j DROP"}) {
		t.Fatalf("one-way, reached side: %v", got)
	}
	if got := RulesFor(0, sym, []string{"10.0.0.1", "", "10.0.0.3"}); len(got) != 0 {
		t.Fatalf("a relay down is named: %v", got)
	}
}

// RandomPartition splits into two non-empty groups and cuts every pair
// across the split once.
func TestRandomPartition(t *testing.T) {
	names := []string{"relay1", "relay2", "relay3", "relay4", "relay5"}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		oneWay := i%2 == 1
		p := RandomPartition(rnd, names, oneWay)
		from, to := map[int]bool{}, map[int]bool{}
		pairs := map[[2]int]bool{}
		for _, b := range p.Blocks {
			if b.OneWay != oneWay || b.From == b.To {
				t.Fatalf("block %+v", b)
			}
			from[b.From], to[b.To] = true, true
			pairs[[2]int{b.From, b.To}] = true
		}
		for f := range from {
			if to[f] {
				t.Fatalf("relay %d on both sides: %+v", f, p)
			}
		}
		if len(from)+len(to) != len(names) || len(pairs) != len(from)*len(to) || len(p.Blocks) != len(pairs) {
			t.Fatalf("not a split of all relays: %+v", p)
		}
		if oneWay != strings.HasPrefix(p.Desc, "asymmetric") {
			t.Fatalf("desc %q", p.Desc)
		}
	}
}
