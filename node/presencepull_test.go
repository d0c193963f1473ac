package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// digestOf is the digest of a directory entry recomputed from its nodes.
func digestOf(nodes map[string]int64) setDigest {
	var d setDigest
	for id, ts := range nodes {
		d.toggle(id, ts)
	}
	return d
}

func hb(epoch int64, seq uint64, ids map[string]int64) *presenceMessage {
	d := digestOf(ids)
	return &presenceMessage{Type: presenceDigest, Epoch: epoch, Seq: seq, IntervalMS: 2000, Count: len(ids), Digest: d.String(), dig: d}
}

// TestDirectoryDigest: the directory keeps each relay's digest through
// joins, leaves, snapshots and proof updates; a heartbeat that matches
// advances the seq, one that does not asks for a pull; a pulled set
// replaces the set unless newer deltas were applied.
func TestDirectoryDigest(t *testing.T) {
	d := testDir(t, nil)
	r := randPeer(t)
	now := time.Now()
	check := func(step string) {
		t.Helper()
		d.mu.Lock()
		defer d.mu.Unlock()
		if e := d.relays[r]; e.dig != digestOf(e.nodes) {
			t.Fatalf("%s: digest %s, recomputed %s", step, e.dig, digestOf(e.nodes))
		}
	}
	// First contact by a heartbeat: a pull.
	if !d.apply(r, hb(10, 1, map[string]int64{"a": 0, "b": 0}), nil, false, now) {
		t.Fatal("first heartbeat of a non-empty set: no pull")
	}
	if need, seq, _ := d.needsPull(r); !need || seq != 1 {
		t.Fatalf("needsPull = %v, %d", need, seq)
	}
	d.apply(r, pm(presenceJoin, 10, 2, "a", "b"), nil, false, now)
	check("join")
	if need, _, _ := d.needsPull(r); need {
		t.Fatal("needsPull after newer deltas")
	}
	d.apply(r, &presenceMessage{Type: presenceJoin, Epoch: 10, Seq: 3, IntervalMS: 2000, Nodes: []string{"k"},
		Proofs: map[string]nodeauth.Proof{"k": {TS: 5}}}, nil, false, now)
	d.apply(r, &presenceMessage{Type: presenceJoin, Epoch: 10, Seq: 4, IntervalMS: 2000, Nodes: []string{"k"},
		Proofs: map[string]nodeauth.Proof{"k": {TS: 7}}}, nil, false, now) // re-bound: newer proof
	check("proof update")
	d.apply(r, pm(presenceLeave, 10, 5, "a"), nil, false, now)
	check("leave")
	if d.apply(r, hb(10, 6, map[string]int64{"b": 0, "k": 7}), nil, false, now) {
		t.Fatal("matching heartbeat asked for a pull")
	}
	if !d.apply(r, hb(10, 7, map[string]int64{"b": 0, "k": 7, "lost": 0}), nil, false, now) {
		t.Fatal("heartbeat after a lost join: no pull")
	}
	// A pull labelled older than the deltas applied is stale.
	if _, complete := d.applyPull(r, &pulled{epoch: 10, seq: 5, set: map[string]int64{}}, false, now); !complete || !hasNode(d, "b") {
		t.Fatal("stale pull applied")
	}
	full := map[string]int64{"b": 0, "k": 7, "lost": 0}
	had, complete := d.applyPull(r, &pulled{epoch: 10, seq: 7, set: full, digest: digestOf(full)}, false, now)
	if had || !complete || !hasNode(d, "lost") {
		t.Fatalf("pull: had %v complete %v lost %v", had, complete, hasNode(d, "lost"))
	}
	check("pull")
	d.apply(r, pm(presenceSnapshot, 10, 8, "x"), nil, false, now)
	check("snapshot")
	// A restart seen first in a pulled set.
	set := map[string]int64{"y": 0}
	d.applyPull(r, &pulled{epoch: 11, seq: 1, set: set, digest: digestOf(set)}, false, now)
	if got := sorted(d.remoteNodes()); !slices.Equal(got, []string{"y"}) {
		t.Fatalf("after a pull of a new epoch: %v", got)
	}
	check("restart")
}

// TestParsePullPage: the wire checks of one page.
func TestParsePullPage(t *testing.T) {
	relay := randPeer(t).String()
	var zero setDigest
	ok := fmt.Sprintf(`{"relay":"%s","epoch":1,"seq":2,"count":2,"digest":"%s","page":0,"pages":1,"nodes":["a","b"]}`, relay, zero)
	if _, _, _, reason := parsePullPage([]byte(ok)); reason != "" {
		t.Fatalf("valid page refused: %s", reason)
	}
	for name, tc := range map[string]struct{ data, reason string }{
		"json":     {`{`, "invalid_json"},
		"relay":    {strings.Replace(ok, relay, "nope", 1), "bad_relay"},
		"epoch":    {strings.Replace(ok, `"epoch":1`, `"epoch":0`, 1), "bad_sequence"},
		"digest":   {strings.Replace(ok, zero.String(), "AAAA", 1), "bad_digest"},
		"count":    {strings.Replace(ok, `"count":2`, `"count":-1`, 1), "bad_digest"},
		"pages":    {strings.Replace(ok, `"pages":1`, `"pages":257`, 1), "bad_parts"},
		"page":     {strings.Replace(ok, `"page":0`, `"page":1`, 1), "bad_parts"},
		"over":     {strings.Replace(ok, `"count":2`, `"count":1`, 1), "too_many_nodes"},
		"sorted":   {strings.Replace(ok, `["a","b"]`, `["b","a"]`, 1), "not_sorted"},
		"dup":      {strings.Replace(ok, `["a","b"]`, `["a","a"]`, 1), "not_sorted"},
		"empty id": {strings.Replace(ok, `["a","b"]`, `["","b"]`, 1), "bad_node_id"},
		"proofs":   {strings.Replace(ok, `"nodes"`, `"proofs":{"a":{},"b":{},"c":{}},"nodes"`, 1), "bad_proofs"},
		"big":      {ok + strings.Repeat(" ", maxPullPage), "too_large"},
	} {
		if _, _, _, reason := parsePullPage([]byte(tc.data)); reason != tc.reason {
			t.Errorf("%s: reason %q, want %q", name, reason, tc.reason)
		}
	}
}

// FuzzParsePullPage: no input panics, and an accepted page keeps the
// bounds the reader relies on.
func FuzzParsePullPage(f *testing.F) {
	var zero setDigest
	relay := "12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK"
	f.Add([]byte(fmt.Sprintf(`{"relay":"%s","epoch":1,"seq":2,"count":2,"digest":"%s","page":0,"pages":1,"nodes":["a","b"]}`, relay, zero)))
	f.Add([]byte(fmt.Sprintf(`{"relay":"%s","epoch":1,"seq":2,"count":9,"digest":"%s","page":3,"pages":4,"nodes":["k"],"proofs":{"k":{"relay":"x","nonce":"n","ts":1,"sig":"s"}}}`, relay, zero)))
	f.Add([]byte(`{"nodes":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pg, _, _, reason := parsePullPage(data)
		if reason != "" {
			return
		}
		if pg.Page < 0 || pg.Page >= pg.Pages || pg.Pages > maxPullPages || len(pg.Nodes) > pg.Count ||
			pg.Count > maxPullNodes || len(pg.Proofs) > len(pg.Nodes) || !slices.IsSorted(pg.Nodes) {
			t.Fatalf("accepted page out of bounds: %+v", pg)
		}
	})
}

// TestPresenceHeartbeatCost: a relay with 3,000 nodes puts no ids on the
// presence topic once they are announced: the heartbeats stay a few
// hundred bytes, and a relay that starts later learns the whole set by one
// pull, proofs verified.
func TestPresenceHeartbeatCost(t *testing.T) {
	a, b := newNode(t, "a", nil), newNode(t, "b", nil)
	connectFull(t, a, b)
	const n = 3000
	for i := range n {
		a.NodeJoined(fmt.Sprintf("node-%05d", i), nil)
	}
	kid, proof := proofFor(a, nodeKey(3), time.Now())
	a.NodeJoined(kid, proof)
	waitRemote(t, b, kid, true, 5*time.Second)
	waitRemote(t, b, fmt.Sprintf("node-%05d", n-1), true, 5*time.Second)

	// Steady state: 10 intervals (200 ms) of heartbeats.
	gossipBytes := func(x *tnode) float64 {
		return promtest.ToFloat64(x.presence.m.presenceBytes.WithLabelValues("gossip"))
	}
	before, start := gossipBytes(b), time.Now()
	testutil.Eventually(t, 10*time.Second, func() bool { return time.Since(start) >= 2*time.Second }, "")
	perInterval := (gossipBytes(b) - before) / (time.Since(start).Seconds() / 0.2)
	t.Logf("presence bytes at b per interval with %d nodes at a: %.0f", n+1, perInterval)
	if perInterval > 2000 {
		t.Fatalf("presence costs %.0f bytes per interval at %d nodes: ids are still broadcast", perInterval, n)
	}

	// A late relay: one pull.
	c := newNode(t, "c", nil)
	connect(t, c, b)
	waitRemote(t, c, fmt.Sprintf("node-%05d", n-1), true, 5*time.Second)
	waitRemote(t, c, kid, true, 5*time.Second)
	if len(c.presence.dir.holdersOf(kid)) != 1 {
		t.Fatal("key id without its holder at c")
	}
	// The pull is counted just after its set is applied.
	testutil.Eventually(t, 5*time.Second, func() bool {
		return promtest.ToFloat64(c.presence.m.presencePulls.WithLabelValues("ok")) >= 1
	}, "c counts a successful pull")
	if got := len(c.presence.dir.remoteNodes()); got != n+1 {
		t.Fatalf("c knows %d nodes, want %d", got, n+1)
	}
}

// evilPresence is a hostile relay: a bare host that publishes its own
// presence heartbeats and answers pulls with serve.
type evilPresence struct {
	*bareHost
	topic  *pubsub.Topic
	epoch  int64
	seq    atomic.Uint64
	served atomic.Int64
}

func newEvilPresence(t *testing.T, honest *tnode, serve func(w *bufio.Writer)) *evilPresence {
	_, pt := honest.Topics()
	e := &evilPresence{bareHost: newBareHost(t, pubsub.WithMessageIdFn(pubsubMsgID)), epoch: time.Now().UnixMilli()}
	e.SetStreamHandler(PresenceProtocol, func(s network.Stream) {
		e.served.Add(1)
		_, _, _ = readFrame(bufio.NewReader(s), maxPullRequest)
		w := bufio.NewWriter(s)
		serve(w)
		_ = w.Flush()
		_ = s.Close()
	})
	e.topic = e.join(t, pt)
	sub, _ := e.topic.Subscribe()
	t.Cleanup(sub.Cancel)
	e.connect(t, honest)
	testutil.CheckFor(t, 10*time.Second, func() error {
		if !slices.Contains(honest.MeshPeers(pt), e.ID()) {
			return fmt.Errorf("evil not yet in the presence mesh")
		}
		return nil
	})
	return e
}

// heartbeat publishes a heartbeat announcing count ids with digest d.
func (e *evilPresence) heartbeat(t *testing.T, count int, d setDigest) {
	msg, _ := json.Marshal(presenceMessage{Type: presenceDigest, Relay: e.ID().String(), Epoch: e.epoch, Seq: e.seq.Add(1),
		IntervalMS: 200, Count: count, Digest: d.String()})
	if err := e.topic.Publish(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func (e *evilPresence) page(w *bufio.Writer, pg pullPage) {
	pg.Relay, pg.Epoch = e.ID().String(), e.epoch
	if pg.Seq == 0 {
		pg.Seq = e.seq.Load()
	}
	b, _ := json.Marshal(pg)
	_, _ = w.Write(appendFrame(nil, framePullPage, b))
}

// TestPresencePullHostile: a hostile relay whose heartbeats never match
// (a new random digest every 20 ms, 10 times the honest rate) and whose
// answers are oversized, endless, lying or carry unproven key ids. The
// honest relay pulls it a bounded number of times (at most once an
// interval, backing off to 8 intervals), keeps none of what it lies
// about, and keeps serving and routing honest presence.
func TestPresencePullHostile(t *testing.T) {
	// A valid proof, but for another relay: unproven for evil.
	kid, pr := nodeauth.Challenge{Relay: randPeer(t).String(), Nonce: nodeauth.NewNonce()}.Answer(nodeKey(5), time.Now())
	proof := &pr
	answers := map[string]func(e *evilPresence, w *bufio.Writer){
		"oversized": func(e *evilPresence, w *bufio.Writer) {
			_, _ = w.Write(appendFrame(nil, framePullPage, bytes.Repeat([]byte(" "), maxPullPage+10)))
		},
		"endless": func(e *evilPresence, w *bufio.Writer) {
			for i := range 10000 { // pages beyond the 256 announced
				e.page(w, pullPage{Count: 1, Digest: setDigest{}.String(), Page: i % 256, Pages: 256})
			}
		},
		"lying": func(e *evilPresence, w *bufio.Writer) {
			// Ids that do not hash to the digest it states.
			e.page(w, pullPage{Count: 2, Digest: setDigest{}.String(), Pages: 1, Nodes: []string{"lie-1", "lie-2"}})
		},
		"count": func(e *evilPresence, w *bufio.Writer) {
			ids := map[string]int64{"short-1": 0}
			e.page(w, pullPage{Count: 5, Digest: digestOf(ids).String(), Pages: 1, Nodes: []string{"short-1"}})
		},
		"stale": func(e *evilPresence, w *bufio.Writer) {
			// A consistent set, from before the epoch its heartbeats state:
			// nothing learnt, and it must back off like a failure.
			ids := map[string]int64{"stale-1": 0}
			b, _ := json.Marshal(pullPage{Relay: e.ID().String(), Epoch: e.epoch - 1, Seq: 1, Count: 1,
				Digest: digestOf(ids).String(), Pages: 1, Nodes: []string{"stale-1"}})
			_, _ = w.Write(appendFrame(nil, framePullPage, b))
		},
		"unproven": func(e *evilPresence, w *bufio.Writer) {
			ids := map[string]int64{kid: proof.TS, "plain": 0}
			e.page(w, pullPage{Count: 2, Digest: digestOf(ids).String(), Pages: 1, Nodes: sorted([]string{kid, "plain"}),
				Proofs: map[string]nodeauth.Proof{kid: *proof}})
		},
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			a, b := newNode(t, "a", nil), newNode(t, "b", nil)
			connectFull(t, a, b)
			var e *evilPresence
			e = newEvilPresence(t, a, func(w *bufio.Writer) { answer(e, w) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				tk := time.NewTicker(20 * time.Millisecond)
				defer tk.Stop()
				for i := 0; i < 200; i++ { // bounded: 4 s
					var d setDigest
					_, _ = rand.Read(d[:])
					e.heartbeat(t, 3, d)
					select {
					case <-ctx.Done():
						return
					case <-tk.C:
					}
				}
			}()
			start := time.Now()
			testutil.CheckFor(t, 10*time.Second, func() error {
				if e.served.Load() == 0 {
					return fmt.Errorf("a has not pulled evil yet")
				}
				return nil
			})
			// Honest presence keeps working meanwhile.
			b.NodeJoined("honest-1", nil)
			waitRemote(t, a, "honest-1", true, 5*time.Second)
			<-done
			elapsed := time.Since(start)
			// Interval 200 ms: pulls at most at 0.2, 0.4, 0.8, 1.6 s gaps, then every 1.6 s.
			bound := int64(4 + elapsed/(1600*time.Millisecond))
			if got := e.served.Load(); got > bound {
				t.Fatalf("a pulled evil %d times in %v of 200 lying heartbeats, bound %d", got, elapsed, bound)
			}
			t.Logf("%s: %d pulls in %v of 200 mismatching heartbeats", name, e.served.Load(), elapsed.Round(time.Millisecond))
			for _, id := range []string{"lie-1", "lie-2", "short-1", "stale-1", kid} {
				if slices.Contains(a.presence.dir.holdersOf(id), e.ID()) {
					t.Fatalf("a holds evil's claim of %s", id)
				}
			}
			if name == "unproven" {
				testutil.CheckFor(t, 5*time.Second, func() error {
					if !slices.Contains(a.presence.dir.holdersOf("plain"), e.ID()) {
						return fmt.Errorf("the plain id of a valid set is not applied")
					}
					return nil
				})
			}
			// a still answers pulls and is reachable.
			testBroadcastOnce(t, b, a)
		})
	}
}

// TestPresencePullServeBounds: a peer pulling as fast as it can is
// answered pullServeBurst times, then at pullServeRate.
func TestPresencePullServeBounds(t *testing.T) {
	a := newNode(t, "a", nil)
	a.NodeJoined("n-1", nil)
	evil := newBareHost(t)
	evil.connect(t, a)
	okCount := 0
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := evil.NewStream(ctx, a.ID(), PresenceProtocol)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Write(appendFrame(nil, framePullRequest, []byte("{}")))
		_ = s.CloseWrite()
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		kind, body, err := readFrame(bufio.NewReader(s), maxPullPage)
		if err == nil && kind == framePullPage {
			if _, _, _, reason := parsePullPage(body); reason != "" {
				t.Fatalf("a's own page refused: %s", reason)
			}
			okCount++
		}
		_ = s.Reset()
	}
	if okCount < pullServeBurst || okCount > pullServeBurst+2 {
		t.Fatalf("%d of 20 immediate pulls answered, want about the burst %d", okCount, pullServeBurst)
	}
	if r := promtest.ToFloat64(a.presence.m.presenceServed.WithLabelValues("rate")); r < 20-float64(okCount) {
		t.Fatalf("refusals counted: %v", r)
	}
}

// TestDirectoryHeldDeltas: a delta that overtakes the one before it
// waits for it (pubsub's validation workers reorder one relay's
// messages), within bounds; a pull covers a gap that never fills.
func TestDirectoryHeldDeltas(t *testing.T) {
	d := testDir(t, nil)
	r := randPeer(t)
	now := time.Now()
	d.apply(r, pm(presenceJoin, 10, 1, "a", "b"), nil, false, now)
	d.apply(r, pm(presenceLeave, 10, 3, "a"), nil, false, now) // overtook seq 2
	if !hasNode(d, "a") {
		t.Fatal("a delta applied before the one it overtook")
	}
	d.apply(r, pm(presenceJoin, 10, 2, "a", "c"), nil, false, now)
	if got := sorted(d.remoteNodes()); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after the gap filled: %v, want [b c] (join 2 then leave 3)", got)
	}
	// A gap that never fills: the deltas after it wait for the pull.
	d.apply(r, pm(presenceJoin, 10, 5, "e"), nil, false, now) // 4 lost
	set := map[string]int64{"b": 0, "c": 0, "d": 0}
	d.applyPull(r, &pulled{epoch: 10, seq: 4, set: set, digest: digestOf(set)}, false, now)
	if got := sorted(d.remoteNodes()); !slices.Equal(got, []string{"b", "c", "d", "e"}) {
		t.Fatalf("after the pull: %v", got)
	}
	// Bounds: beyond maxHeldDeltas a delta applies at once, out of order.
	for i := range maxHeldDeltas + 1 {
		d.apply(r, pm(presenceJoin, 10, uint64(100+i), fmt.Sprintf("h-%d", i)), nil, false, now)
	}
	if !hasNode(d, fmt.Sprintf("h-%d", maxHeldDeltas)) || d.heldIDs > maxHeldDeltas {
		t.Fatalf("held deltas unbounded: %d ids held", d.heldIDs)
	}
	// Expiry forgets what is held.
	d.expire(now.Add(time.Minute))
	if d.heldIDs != 0 {
		t.Fatalf("%d held ids after expiry", d.heldIDs)
	}
}

// TestPresencePullForgedProofsBounded: an answer whose key ids all carry
// forged proofs, consistent otherwise (count, digest), costs a bounded
// number of signature checks: once 64 have failed, the remaining pages
// are left out unchecked.
func TestPresencePullForgedProofsBounded(t *testing.T) {
	a := newNode(t, "a", nil)
	evil := randPeer(t)
	const n = 5000
	ids := make([]string, 0, n)
	for i := range n {
		seed := make([]byte, ed25519.SeedSize)
		binary.BigEndian.PutUint32(seed, uint32(i))
		ids = append(ids, nodeauth.KeyID(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)))
	}
	slices.Sort(ids)
	forged := nodeauth.Proof{Relay: evil.String(), Nonce: nodeauth.NewNonce(), TS: time.Now().UnixMilli(),
		Sig: base64.RawURLEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))}
	proofs := map[string]nodeauth.Proof{}
	var dig setDigest
	for _, id := range ids {
		proofs[id] = forged
		dig.toggle(id, forged.TS)
	}
	var buf bytes.Buffer
	chunks := chunkNodes(ids, maxPullPage/2)
	largest := 0
	for i, c := range chunks {
		largest = max(largest, len(c))
		b, _ := json.Marshal(pullPage{Relay: evil.String(), Epoch: 1, Seq: 1, Count: n, Digest: dig.String(),
			Page: i, Pages: len(chunks), Nodes: c, Proofs: proofsOf(c, proofs)})
		buf.Write(appendFrame(nil, framePullPage, b))
	}
	if len(chunks) < 3 {
		t.Fatalf("%d pages: the test needs several", len(chunks))
	}
	before := promtest.ToFloat64(a.presence.m.unproven)
	res, err := a.presence.readPull(evil, bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	checked := int(promtest.ToFloat64(a.presence.m.unproven) - before)
	if len(res.set) != 0 || !res.cut {
		t.Fatalf("kept %d forged key ids (cut %v)", len(res.set), res.cut)
	}
	if bound := maxPullProofFailures + 2*largest; checked > bound {
		t.Fatalf("%d of %d forged proofs checked, bound %d", checked, n, bound)
	}
	t.Logf("%d ids in %d pages: %d proofs checked", n, len(chunks), checked)
}
