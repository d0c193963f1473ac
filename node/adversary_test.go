package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/testnet/adversary"
)

// The adversary suite (SPEC 8, docs/PROTOCOL.md 3, 5, 6, 9): each test
// runs one attack of package testnet/adversary against real relays on
// loopback while honest traffic flows, and asserts that
//
//   - every honest broadcast and direct message sent before, during and
//     after the attack is delivered exactly once, no direct message is
//     reported undeliverable, and no honest relay's score at another drops
//     below zero;
//   - the relays' goroutines and heap stay bounded during the attack and
//     come back to their baseline once the attacker is gone.
//
// The in-suite variants are short. `make adversary` runs the long ones
// (GSIO_ADVERSARY_LONG=1) and prints one line per attack from the report
// file (GSIO_ADVERSARY_REPORT).

// long reports whether the long variants run.
func long() bool { return os.Getenv("GSIO_ADVERSARY_LONG") != "" }

// scale returns short, or long under make adversary.
func scale(short, long_ int) int {
	if long() {
		return long_
	}
	return short
}

// honestNodes are the nodes of the arena's honest relays.
var honestNodes = map[string]bool{"alice": true, "bob": true, "carol": true, "dave": true}

// arena is two honest relays a and b, connected, alice on a and bob on b,
// with honest traffic both ways, and a probe of the process's resources.
type arena struct {
	t     *testing.T
	a, b  *tnode
	probe *adversary.Probe

	mu    sync.Mutex
	sent  []sentMsg
	round int
	stop  chan struct{}
	done  chan struct{}
}

type sentMsg struct {
	to     *tnode
	sender string
	id     string
}

// newArena starts a and b with mod applied to both configs, and the probe.
func newArena(t *testing.T, mod func(*Config)) *arena {
	t.Helper()
	return newArenaEach(t, mod, mod)
}

// newArenaEach is newArena with a config change for each relay.
func newArenaEach(t *testing.T, modA, modB func(*Config)) *arena {
	t.Helper()
	ar := &arena{t: t}
	cfgOf := func(mod func(*Config)) func(*Config) {
		return func(c *Config) {
			// Presence (expiring after three intervals) survives a
			// process whose two cores the attacker, in the same process,
			// and other tests on the machine keep busy.
			c.Presence.Interval = 5 * time.Second
			if mod != nil {
				mod(c)
			}
		}
	}
	ar.a, ar.b = newNode(t, "a", cfgOf(modA)), newNode(t, "b", cfgOf(modB))
	connectFull(t, ar.a, ar.b)
	ar.a.NodeJoined("alice", nil)
	ar.b.NodeJoined("bob", nil)
	waitRemote(t, ar.a, "bob", true, 5*time.Second)
	waitRemote(t, ar.b, "alice", true, 5*time.Second)
	ar.probe = adversary.StartProbe(20 * time.Millisecond)
	t.Cleanup(func() { ar.probe.Stop() })
	return ar
}

// honestRound sends one broadcast and one direct message each way.
func (ar *arena) honestRound() {
	ar.mu.Lock()
	ar.round++
	r := ar.round
	ar.mu.Unlock()
	for _, s := range []struct {
		from, to *tnode
		sender   string
		peer     string
	}{{ar.a, ar.b, "alice", "bob"}, {ar.b, ar.a, "bob", "alice"}} {
		bid, did := fmt.Sprintf("hb-%d", r), fmt.Sprintf("hd-%d", r)
		if err := s.from.Broadcast(envelope(ar.t, "EntryAnnounce", bid, s.sender, "", `{"honest":true}`)); err != nil {
			ar.t.Errorf("%s: broadcast: %v", s.from.name, err)
		}
		if !s.from.Direct(envelope(ar.t, "EntryRequest", did, s.sender, s.peer, `{"honest":true}`)) {
			ar.t.Errorf("%s: no relay for %s", s.from.name, s.peer)
		}
		ar.mu.Lock()
		ar.sent = append(ar.sent, sentMsg{s.to, s.sender, bid}, sentMsg{s.to, s.sender, did})
		ar.mu.Unlock()
	}
}

// startTraffic sends an honest round every 50 ms until stopTraffic.
func (ar *arena) startTraffic() {
	ar.stop, ar.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ar.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			ar.honestRound()
			select {
			case <-ar.stop:
				return
			case <-t.C:
			}
		}
	}()
	ar.t.Cleanup(ar.stopTraffic)
}

func (ar *arena) stopTraffic() {
	if ar.stop == nil {
		return
	}
	select {
	case <-ar.stop:
	default:
		close(ar.stop)
	}
	<-ar.done
}

// delivered reports how many honest messages sent so far arrived exactly
// once, and of how many.
func (ar *arena) delivered() (ok, all int) {
	ar.mu.Lock()
	sent := append([]sentMsg(nil), ar.sent...)
	ar.mu.Unlock()
	for _, m := range sent {
		if m.to.rec.count(m.sender, m.id) == 1 {
			ok++
		}
	}
	return ok, len(sent)
}

// checkHonest waits until every honest message sent so far is delivered
// exactly once, and checks that no direct message was undeliverable and
// that a and b score each other at zero or more.
func (ar *arena) checkHonest(what string) {
	ar.t.Helper()
	testutil.CheckFor(ar.t, 10*time.Second, func() error {
		if ok, all := ar.delivered(); ok != all {
			return fmt.Errorf("%s: %d of %d honest messages delivered exactly once; a: %s; b: %s", what, ok, all, counters(ar.a), counters(ar.b))
		}
		return nil
	})
	for _, n := range []*tnode{ar.a, ar.b} {
		for _, u := range n.rec.undeliverables() {
			if honestNodes[u.recipient] {
				ar.t.Fatalf("%s: %s reported an honest direct message undeliverable: %v", what, n.name, u)
			}
		}
	}
	ar.checkScores(what)
}

// checkScores fails if a and b score each other below zero.
func (ar *arena) checkScores(what string) {
	ar.t.Helper()
	for _, p := range [][2]*tnode{{ar.a, ar.b}, {ar.b, ar.a}} {
		if s := p[0].gossip.peerScores()[p[1].ID()]; s < 0 {
			ar.t.Fatalf("%s: %s scores honest %s %.1f", what, p[0].name, p[1].name, s)
		}
	}
}

// evil starts a hostile peer, closed at the end of the test, connected
// to the given relays, each of which has opened its GossipSub stream to
// it (and so scores it).
func (ar *arena) evil(connect ...*tnode) *adversary.Peer {
	ar.t.Helper()
	p, err := adversary.New(adversary.Config{})
	if err != nil {
		ar.t.Fatal(err)
	}
	ar.t.Cleanup(func() { _ = p.Close() })
	for _, n := range connect {
		if err := p.Connect(context.Background(), n.addrInfo()); err != nil {
			ar.t.Fatal(err)
		}
		if err := p.WaitGossip(context.Background(), n.ID()); err != nil {
			ar.t.Fatal(err)
		}
	}
	return p
}

// settle waits until the process's goroutines are back to at most the
// baseline plus slack, and its heap to at most the baseline plus
// heapSlack bytes, then records the probe's After.
func (ar *arena) settle(slack int, heapSlack uint64) {
	ar.t.Helper()
	testutil.CheckFor(ar.t, 10*time.Second, func() error {
		s := adversary.Take(true)
		if s.Goroutines > ar.probe.Before.Goroutines+slack {
			return fmt.Errorf("%d goroutines, baseline %d (+%d allowed)", s.Goroutines, ar.probe.Before.Goroutines, slack)
		}
		if s.HeapBytes > ar.probe.Before.HeapBytes+heapSlack {
			return fmt.Errorf("heap %d MB, baseline %d MB (+%d allowed)", s.HeapBytes>>20, ar.probe.Before.HeapBytes>>20, heapSlack>>20)
		}
		return nil
	})
	ar.probe.Stop()
}

// report logs the attack's line and appends it to GSIO_ADVERSARY_REPORT.
// during is the honest delivery while the attack ran; penalty the time
// the relays took to graylist or disconnect the attacker ("-" where the
// defence ignores rather than penalises).
func (ar *arena) report(attack, during, penalty string) {
	line := adversary.Line(attack, during, penalty, ar.probe)
	ar.t.Log(line)
	if err := adversary.Report(line); err != nil {
		ar.t.Errorf("report: %v", err)
	}
}

// mark is the number of honest messages sent so far (those sent before
// or during the attack).
func (ar *arena) mark() int {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return len(ar.sent)
}

// share formats how many of the first n honest messages were delivered
// exactly once (after checkHonest: all of them).
func (ar *arena) share(n int) string {
	ar.mu.Lock()
	sent := append([]sentMsg(nil), ar.sent[:n]...)
	ar.mu.Unlock()
	ok := 0
	for _, m := range sent {
		if m.to.rec.count(m.sender, m.id) == 1 {
			ok++
		}
	}
	return fmt.Sprintf("%d/%d", ok, n)
}

// countPrefix counts n's deliveries whose sender starts with prefix.
func countPrefix(n *tnode, prefix string) int {
	n.rec.mu.Lock()
	defer n.rec.mu.Unlock()
	k := 0
	for _, e := range n.rec.got {
		if strings.HasPrefix(e.Sender, prefix) {
			k++
		}
	}
	return k
}

// countID counts n's deliveries whose message_id starts with prefix.
func countID(n *tnode, prefix string) int {
	n.rec.mu.Lock()
	defer n.rec.mu.Unlock()
	k := 0
	for _, e := range n.rec.got {
		if strings.HasPrefix(e.ID, prefix) {
			k++
		}
	}
	return k
}

// stable waits until f stops changing for d and returns its value.
func stable(t *testing.T, d time.Duration, f func() int) int {
	t.Helper()
	last, since := f(), time.Now()
	testutil.CheckFor(t, 30*time.Second, func() error {
		if v := f(); v != last {
			last, since = v, time.Now()
		}
		if time.Since(since) < d {
			return fmt.Errorf("still changing: %d", last)
		}
		return nil
	})
	return last
}

// TestAdversaryFlood (attack c): one plain GossipSub peer publishes 16
// (make adversary: 100) batches of 1,024 broadcasts from random sender ids nobody holds, as
// fast as it can. The relays accept no more of its messages than the
// per-origin rate allows (here 1,000/s, burst 2,000, so that the bound is
// far from what arrives), ignoring the rest without penalty, and every
// honest message gets through.
func TestAdversaryFlood(t *testing.T) {
	const rate, burst = 1000, 2000
	ar := newArena(t, func(c *Config) { c.Gossip.OriginRate, c.Gossip.OriginBurst = rate, burst })
	evil := ar.evil(ar.a)
	ar.startTraffic()
	start := time.Now()
	sent, err := adversary.Flood(context.Background(), evil, ar.a.ID(), "gsio", scale(16, 100), 1024)
	if err != nil {
		t.Fatal(err)
	}
	published := time.Since(start)
	junk := func() int { return countPrefix(ar.a, "flood-") }
	got := stable(t, time.Second, junk)
	window := time.Since(start) - time.Second // until the last delivery
	during := ar.mark()
	ar.stopTraffic()
	ar.checkHonest("flood")
	limit := burst + int(rate*window.Seconds()*1.1) + 1024
	t.Logf("flood: %d messages published in %v; a delivered %d, b %d within %v (bound %d)",
		sent, published.Round(time.Millisecond), got, countPrefix(ar.b, "flood-"), window.Round(time.Millisecond), limit)
	if got > limit || countPrefix(ar.b, "flood-") > limit {
		t.Fatalf("relays delivered %d and %d flood messages, over the origin rate's %d", got, countPrefix(ar.b, "flood-"), limit)
	}
	_ = evil.Close()
	ar.settle(40, 64<<20)
	ar.report("c flood", ar.share(during), "- (ignored beyond the rate)")
}

// TestAdversaryHeld (attack b): throwaway authors each publish 1,024
// broadcasts from alice, whom relay a holds: relay b must hold every one
// of them for the speak-for wait. Unbounded, they take all of the
// topic's asynchronous validation slots and honest messages are dropped
// (and lost: pubsub marks them seen). Held messages are bounded per
// origin, per peer and in all, so that they never take the slots honest
// messages need; those beyond the bounds are ignored at once, those held
// are rejected and the attacker graylisted. In-suite the validation
// slots are scaled down with the attack (2,048 slots, 4 authors; make
// adversary: the default 8,192 and 16 authors), since under the race
// detector verifying 16,384 signatures takes the two cores for seconds.
func TestAdversaryHeld(t *testing.T) {
	slots := scale(1024, DefaultConfig().Gossip.ValidateConcurrency)
	ar := newArena(t, func(c *Config) {
		c.Presence.SpeakForWait = 3 * time.Second
		c.Gossip.ValidateConcurrency = slots
	})
	keys, err := adversary.NewKeys(scale(4, 16))
	if err != nil {
		t.Fatal(err)
	}
	evil := ar.evil(ar.b)
	msgs, err := adversary.HoldFloodMessages("gsio", keys, 1024, []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	ar.startTraffic()
	start := time.Now()
	watch, watched := make(chan struct{}), make(chan struct{})
	var events []string
	go func() {
		defer close(watched)
		lost := false
		for {
			select {
			case <-watch:
				return
			case <-time.After(5 * time.Millisecond):
			}
			h := hasRemote(ar.b, "alice")
			if h == lost {
				lost = !h
				events = append(events, fmt.Sprintf("%v: b has alice %v; b scores a %.1f, a scores b %.1f; b: %s", time.Since(start).Round(time.Millisecond), h,
					ar.b.gossip.peerScores()[ar.a.ID()], ar.a.gossip.peerScores()[ar.b.ID()], counters(ar.b)))
			}
		}
	}()
	defer func() {
		close(watch)
		<-watched
		if t.Failed() {
			for _, e := range events {
				t.Log(e)
			}
		}
	}()
	if err := evil.Write(context.Background(), ar.b.ID(), msgs, 256); err != nil {
		t.Fatal(err)
	}
	published := time.Since(start)
	// The attacker is graylisted once its held messages are rejected.
	var graylisted time.Duration
	testutil.CheckFor(t, 15*time.Second, func() error {
		if s := ar.b.gossip.peerScores()[evil.ID()]; s >= graylistThreshold {
			return fmt.Errorf("attacker's score at b %.1f, want < %d; b: %s", s, graylistThreshold, counters(ar.b))
		}
		graylisted = time.Since(start)
		return nil
	})
	// Until every held message is decided.
	testutil.CheckFor(t, 15*time.Second, func() error {
		if n := ar.b.pub.speak.held(); n > 0 {
			return fmt.Errorf("b still holds %d messages", n)
		}
		return nil
	})
	during := ar.mark()
	ar.stopTraffic()
	ar.checkHonest("held")
	if k := countID(ar.b, "hold-"); k != 0 {
		t.Fatalf("b delivered %d messages the attacker published for alice", k)
	}
	t.Logf("held: %d messages published in %v; attacker graylisted at b after %v", len(keys)*1024, published.Round(time.Millisecond), graylisted.Round(time.Millisecond))
	_ = evil.Close()
	ar.settle(40, 64<<20)
	ar.report("b held messages", ar.share(during), fmt.Sprintf("graylisted in %v", graylisted.Round(10*time.Millisecond)))
}

// counters returns n's validation results and drops, for the log.
func counters(n *tnode) string {
	var b strings.Builder
	for _, c := range []prometheus.Collector{n.gossip.m.validation, n.gossip.m.drops, n.gossip.m.dirRefused, n.gossip.m.dirEvicted} {
		ch := make(chan prometheus.Metric, 256)
		go func() { c.Collect(ch); close(ch) }()
		for m := range ch {
			var d dto.Metric
			_ = m.Write(&d)
			var ls []string
			for _, l := range d.GetLabel() {
				ls = append(ls, l.GetValue())
			}
			name := strings.Join(ls, "/")
			if name == "" {
				name, _, _ = strings.Cut(strings.TrimPrefix(m.Desc().String(), `Desc{fqName: "`), `"`)
			}
			fmt.Fprintf(&b, "%s=%.0f ", name, d.GetCounter().GetValue())
		}
	}
	return b.String()
}

// expect sends one honest message from sender on n (a broadcast, or a
// direct message for recipient) and records that to must deliver it.
func (ar *arena) expect(n, to *tnode, sender, recipient, id string) {
	ar.t.Helper()
	env := envelope(ar.t, "EntryAnnounce", id, sender, recipient, `{"honest":true}`)
	if recipient == "" {
		if err := n.Broadcast(env); err != nil {
			ar.t.Fatalf("%s: broadcast: %v", n.name, err)
		}
	} else if !n.Direct(env) {
		ar.t.Fatalf("%s: no relay for %s", n.name, recipient)
	}
	ar.mu.Lock()
	ar.sent = append(ar.sent, sentMsg{to, sender, id})
	ar.mu.Unlock()
}

// TestAdversaryPresenceFill (attack a): throwaway authors announce
// MaxNodesPerRelay node ids each until the directory's entries are taken,
// then MaxRelays tiny relays take every relay slot. A node that joins an honest relay
// afterwards, and a relay that joins the federation afterwards, must
// still be known everywhere, their messages delivered, and no honest
// relay penalised: presence is bounded per relay and shared fairly, and
// relays in good standing are never refused for the others' claims.
func TestAdversaryPresenceFill(t *testing.T) {
	// In-suite the bounds are scaled down (a fifth of the entries, a
	// quarter of the relays); make adversary runs the defaults.
	cfg := DefaultConfig().Presence
	if !long() {
		cfg.MaxDirectoryEntries, cfg.MaxNodesPerRelay, cfg.MaxRelays = 20000, 2000, 64
	}
	bounds := func(c *Config) {
		c.Presence.MaxDirectoryEntries, c.Presence.MaxNodesPerRelay, c.Presence.MaxRelays = cfg.MaxDirectoryEntries, cfg.MaxNodesPerRelay, cfg.MaxRelays
	}
	ar := newArena(t, bounds)
	fillers := cfg.MaxDirectoryEntries / cfg.MaxNodesPerRelay
	keys, err := adversary.NewKeys(fillers + cfg.MaxRelays)
	if err != nil {
		t.Fatal(err)
	}
	evil := ar.evil(ar.a)
	ar.startTraffic()
	// Kept alive every second until the attack ends; the entries expire
	// three seconds later.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	fill, err := adversary.FillPresence(ctx, evil, ar.a.ID(), "gsio", keys[:fillers], cfg.MaxNodesPerRelay, 0, "fill", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	full := func(what string, f func(n *tnode) (int, int)) {
		t.Helper()
		for _, n := range []*tnode{ar.a, ar.b} {
			testutil.CheckFor(t, 10*time.Second, func() error {
				if k, bound := f(n); k < bound {
					return fmt.Errorf("%s: %d %s, want the bound %d; a: %s; b: %s", n.name, k, what, bound, counters(ar.a), counters(ar.b))
				}
				return nil
			})
		}
	}
	defer func() {
		if t.Failed() {
			rs := ar.a.dir.snapshot()
			for i, k := range keys[:fillers] {
				if _, ok := rs[k.ID]; !ok {
					t.Logf("filler %d missing at a", i)
				}
			}
		}
	}()
	full("directory entries", func(n *tnode) (int, int) { return n.dir.entryCount(), cfg.MaxDirectoryEntries })
	tiny, err := adversary.FillPresence(ctx, evil, ar.a.ID(), "gsio", keys[fillers:], 1, 0, "tiny", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	full("relays", func(n *tnode) (int, int) { return n.dir.relayCount(), cfg.MaxRelays })
	// A node joins an honest relay.
	ar.b.NodeJoined("carol", nil)
	waitRemote(t, ar.a, "carol", true, 5*time.Second)
	ar.expect(ar.b, ar.a, "carol", "", "carol-b-1")
	ar.expect(ar.a, ar.b, "alice", "carol", "alice-d-1")
	// A relay joins the federation.
	c := newNode(t, "c", func(c *Config) { c.Presence.Interval = 5 * time.Second; bounds(c) })
	connect(t, c, ar.a)
	connect(t, c, ar.b)
	waitMesh(t, ar.a, ar.b, c)
	c.NodeJoined("dave", nil)
	for _, n := range []*tnode{ar.a, ar.b} {
		waitRemote(t, n, "dave", true, 5*time.Second)
	}
	waitRemote(t, c, "alice", true, 5*time.Second)
	waitRemote(t, c, "bob", true, 5*time.Second)
	ar.expect(c, ar.a, "dave", "", "dave-b-1")
	ar.expect(c, ar.b, "dave", "", "dave-b-2")
	ar.expect(ar.a, c, "alice", "dave", "alice-d-2")
	ar.expect(c, ar.b, "dave", "bob", "dave-d-1")
	during := ar.mark()
	ar.stopTraffic()
	ar.checkHonest("presence fill")
	for _, n := range []*tnode{ar.a, ar.b} {
		if s := n.gossip.peerScores()[c.ID()]; s < 0 {
			t.Fatalf("%s scores the new relay c %.1f", n.name, s)
		}
	}
	t.Logf("a: %s", counters(ar.a))
	stop()
	for _, ch := range []<-chan error{fill, tiny} {
		if err := <-ch; err != nil {
			t.Fatalf("attack: %v", err)
		}
	}
	_ = evil.Close()
	_ = c.Close()
	ar.settle(40, 16<<20)
	ar.report("a presence fill", ar.share(during), "- (bounded, not invalid)")
}

// validations is n's count of validation results (topic, result, reason).
func validations(n *tnode, topic, result, reason string) int {
	return int(promtest.ToFloat64(n.gossip.m.validation.WithLabelValues(topic, result, reason)))
}

// TestAdversaryNACKSenders (attack d): 40 (make adversary: 200)
// throwaway peers, each with a key of
// its own, send one direct message each for a node nobody holds. A relay
// answers NACKs only to relays of its directory: for anyone else it
// would start a sender (a goroutine, a 1,024-message queue, a protected
// connection and a dial back) per peer, for two minutes each.
func TestAdversaryNACKSenders(t *testing.T) {
	ar := newArena(t, nil)
	ar.startTraffic()
	n := scale(40, 200)
	peers, err := adversary.DirectUnknown(context.Background(), ar.a.addrInfo(), n, "nobody-home")
	closeAll := func() {
		for _, p := range peers {
			_ = p.Close()
		}
		peers = nil // closed hosts are garbage once nothing refers to them
	}
	defer closeAll()
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if k := validations(ar.a, "direct", "ignore", "recipient_unknown"); k < n {
			return fmt.Errorf("a answered %d of %d direct messages for nobody", k, n)
		}
		return nil
	})
	ar.a.direct.sendersMu.Lock()
	senders := len(ar.a.direct.senders)
	ar.a.direct.sendersMu.Unlock()
	protected := 0
	for _, p := range peers {
		if ar.a.host.ConnManager().IsProtected(p.ID(), directProtectTag) {
			protected++
		}
	}
	if senders > 1 || protected > 0 {
		t.Fatalf("a runs %d direct senders (want at most 1, to b) and protects %d of the %d throwaway peers", senders, protected, n)
	}
	during := ar.mark()
	closeAll()
	ar.stopTraffic()
	ar.checkHonest("NACK senders")
	ar.settle(40, 16<<20)
	ar.report("d NACK senders", ar.share(during), "- (no NACK to non-relays)")
}

// TestAdversarySubscriptions (attack e): a peer announces subscriptions to
// scale(100,000, 1,000,000) topics in RPCs of 20,000, then to more, one
// per RPC. The subscription filter keeps our two topics only and drops
// an RPC with more than 64 subscriptions whole: the relay tracks none of
// them.
func TestAdversarySubscriptions(t *testing.T) {
	ar := newArena(t, nil)
	evil := ar.evil(ar.a)
	ar.startTraffic()
	ctx := context.Background()
	_, last, err := adversary.SubscribeMany(ctx, evil, ar.a.ID(), scale(100_000, 1_000_000), 20_000)
	if err != nil {
		t.Fatal(err)
	}
	_, last1, err := adversary.SubscribeMany(ctx, evil, ar.a.ID(), scale(5_000, 50_000), 1)
	if err != nil {
		t.Fatal(err)
	}
	// RPCs are handled in order: once a lists evil on the broadcast
	// topic, it has handled the junk.
	bt, _ := ar.a.Topics()
	if err := evil.Subscribe(ctx, ar.a.ID(), []string{bt}, 1); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if !slices.Contains(ar.a.gossip.ps.ListPeers(bt), evil.ID()) {
			return fmt.Errorf("a has not handled the subscriptions yet")
		}
		return nil
	})
	for _, topic := range []string{last, last1} {
		if slices.Contains(ar.a.gossip.ps.ListPeers(topic), evil.ID()) {
			t.Fatalf("a tracks evil's subscription to %s", topic)
		}
	}
	during := ar.mark()
	_ = evil.Close()
	ar.stopTraffic()
	ar.checkHonest("subscriptions")
	ar.settle(40, 16<<20)
	ar.report("e subscriptions", ar.share(during), "- (filtered)")
}

// TestAdversaryPresenceAddrs (attack f): a relay of the attacker announces
// a node at loopback, link-local, private and cloud-metadata addresses,
// so that relays routing a direct message to it dial those. Without
// Presence.AllowPrivateAddrs they are dropped from presence: never
// stored, never dialled.
func TestAdversaryPresenceAddrs(t *testing.T) {
	ar := newArena(t, func(c *Config) { c.Presence.AllowPrivateAddrs = false })
	// A service on loopback that must never see a connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialled atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			_ = c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	bad := []string{
		fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), fmt.Sprintf("/dns4/localhost/tcp/%d", port),
		"/ip4/169.254.169.254/tcp/80", "/ip4/10.1.2.3/tcp/4001", "/ip4/192.168.1.1/tcp/4001",
		"/ip6/::1/tcp/6379", "/ip6/fe80::1/tcp/6379", "/ip4/0.0.0.0/tcp/6379",
	}
	keys, err := adversary.NewKeys(1)
	if err != nil {
		t.Fatal(err)
	}
	evil := ar.evil(ar.a)
	ar.startTraffic()
	if err := adversary.AnnounceAddrs(context.Background(), evil, ar.a.ID(), "gsio", keys[0], bad, []string{"mallory"}); err != nil {
		t.Fatal(err)
	}
	waitRemote(t, ar.a, "mallory", true, 5*time.Second)
	if !ar.a.Direct(envelope(t, "EntryRequest", "m-1", "alice", "mallory", `{}`)) {
		t.Fatal("a has no relay for mallory")
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		for _, u := range ar.a.rec.undeliverables() {
			if u.recipient == "mallory" {
				return nil
			}
		}
		return fmt.Errorf("the direct message to mallory not reported undeliverable yet")
	})
	if k := dialled.Load(); k > 0 {
		t.Fatalf("a dialled the loopback service %d times", k)
	}
	if as := ar.a.host.Peerstore().Addrs(keys[0].ID); len(as) > 0 {
		t.Fatalf("a keeps addresses %v for the attacker's relay", as)
	}
	during := ar.mark()
	_ = evil.Close()
	ar.stopTraffic()
	ar.checkHonest("presence addrs")
	ar.settle(40, 16<<20)
	ar.report("f private addrs", ar.share(during), "- (dropped from presence)")
}

// TestAdversaryConfigMismatch (k): relays that disagree on
// --max-message-size are honest. A message over our limit from a relay in
// good standing is ignored, not rejected: its sender keeps its score and
// everything else it sends is delivered.
func TestAdversaryConfigMismatch(t *testing.T) {
	ar := newArenaEach(t, nil, func(c *Config) { c.MaxMessageSize += 32 << 10 })
	ar.startTraffic()
	big := DefaultConfig().MaxMessageSize + 16<<10
	payload := `{"pad":"` + strings.Repeat("x", big) + `"}`
	const large = 4
	for i := range large {
		if err := ar.b.Broadcast(envelope(t, "EntryAnnounce", fmt.Sprint("big-", i), "bob", "", payload)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if k := validations(ar.a, "broadcast", "ignore", "too_large") + validations(ar.a, "broadcast", "reject", "too_large"); k < large {
			return fmt.Errorf("a has seen %d of b's %d large broadcasts", k, large)
		}
		return nil
	})
	// Scores are sampled every 100 ms: b's stays at zero or more.
	testutil.Stays(t, 500*time.Millisecond, func() error {
		if s := ar.a.gossip.peerScores()[ar.b.ID()]; s < 0 {
			return fmt.Errorf("a scores b %.1f after its large broadcasts", s)
		}
		return nil
	})
	during := ar.mark()
	ar.stopTraffic()
	ar.checkHonest("config mismatch")
	ar.settle(40, 16<<20)
	ar.report("k config mismatch", ar.share(during), "- (ignored: b keeps its score)")
}

// TestGossipSignRequiresPrivate (g): unsigned gossip is refused on an
// open federation, with an error naming the flags; a swarm key or an
// allow-list makes it possible.
func TestGossipSignRequiresPrivate(t *testing.T) {
	cfg := testConfig(t)
	cfg.Gossip.Sign = false
	if n, err := New(context.Background(), cfg); err == nil {
		_ = n.Close()
		t.Fatal("New accepted --gossip-sign=false on an open federation")
	} else if !strings.Contains(err.Error(), "--gossip-sign") || !strings.Contains(err.Error(), "--swarm-key") || !strings.Contains(err.Error(), "--allow-peer") {
		t.Fatalf("error %q does not name --gossip-sign, --swarm-key and --allow-peer", err)
	}
	other := newNode(t, "other", nil)
	for name, mod := range map[string]func(*Config){
		"swarm key":  func(c *Config) { c.Private.SwarmKey = swarmKeyFile(t) },
		"allow-list": func(c *Config) { c.Private.AllowPeers = []string{other.ID().String()} },
	} {
		c := testConfig(t)
		c.Gossip.Sign = false
		mod(&c)
		n, err := New(context.Background(), c, WithLogger(testutil.Logger()))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_ = n.Close()
	}
}

// TestConnLimits (k): the resource manager takes at least half again the
// connection manager's high water mark of inbound connections, so that
// the connection manager trims before new connections are refused.
func TestConnLimits(t *testing.T) {
	for _, high := range []int{DefaultConfig().Host.ConnHigh, 2000} {
		l := connLimits(HostConfig{ConnLow: high / 2, ConnHigh: high}).ToPartialLimitConfig()
		if int(l.System.ConnsInbound) < high+high/2 || int(l.System.Conns) < 2*high {
			t.Errorf("high water %d: system conns %d, inbound %d", high, l.System.Conns, l.System.ConnsInbound)
		}
	}
}

// colocated connects k adversary peers listening on listen (their
// connections come from its IP) to n, each scored by n's pubsub.
func colocated(t *testing.T, n *tnode, k int, listen string) []*adversary.Peer {
	t.Helper()
	var ps []*adversary.Peer
	for range k {
		p, err := adversary.New(adversary.Config{Listen: []string{listen}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		if err := p.Connect(context.Background(), n.addrInfo()); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitGossip(context.Background(), n.ID()); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// TestIPColocation (k, P6): six peers from one address score below zero
// at a relay (and so leave its meshes), an honest relay from another
// address does not. Run in a network namespace (10.77.0.x): on loopback
// P6 does not apply (TestIPColocationLoopback).
func TestIPColocation(t *testing.T) {
	if !inNetns(t) {
		return
	}
	at := func(ip string) func(*Config) {
		return func(c *Config) { c.Host.ListenAddrs = []string{"/ip4/" + ip + "/tcp/0"} }
	}
	r, h := newNode(t, "r", at("10.77.0.1")), newNode(t, "h", at("10.77.0.3"))
	connectFull(t, r, h)
	evil := colocated(t, r, 6, "/ip4/10.77.0.2/tcp/0")
	want := float64(ipColocationWeight * (6 - ipColocationThreshold) * (6 - ipColocationThreshold))
	testutil.CheckFor(t, 5*time.Second, func() error {
		scores := r.gossip.peerScores()
		for _, p := range evil {
			if s, ok := scores[p.ID()]; !ok || s > want {
				return fmt.Errorf("peer from 10.77.0.2 scored %.1f (sampled %v), want at most %.0f", s, ok, want)
			}
		}
		if s := scores[h.ID()]; s < 0 {
			return fmt.Errorf("honest relay from 10.77.0.3 scored %.1f", s)
		}
		return nil
	})
	t.Logf("six peers from one address score %.0f each at the relay; the honest relay %.1f", want, r.gossip.peerScores()[h.ID()])
}

// TestIPColocationLoopback: relays on one host (loopback) are exempt
// from P6, as from the resource manager's per-IP limit.
func TestIPColocationLoopback(t *testing.T) {
	r := newNode(t, "r", nil)
	evil := colocated(t, r, 6, "/ip4/127.0.0.1/tcp/0")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if _, ok := r.gossip.peerScores()[evil[5].ID()]; !ok {
			return fmt.Errorf("not sampled yet")
		}
		return nil
	})
	testutil.Stays(t, 300*time.Millisecond, func() error {
		for _, p := range evil {
			if s := r.gossip.peerScores()[p.ID()]; s < 0 {
				return fmt.Errorf("peer on loopback scored %.1f", s)
			}
		}
		return nil
	})
}
