package node

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func testDir(t *testing.T, mod func(*Config)) *directory {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	return newDirectory(cfg.Presence, newMetrics())
}

func randPeer(t *testing.T) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return id
}

func pm(typ string, epoch int64, seq uint64, nodes ...string) *presenceMessage {
	return &presenceMessage{Type: typ, Epoch: epoch, Seq: seq, IntervalMS: 2000, Nodes: nodes}
}

func sorted(s []string) []string { slices.Sort(s); return s }

func TestDirectoryOrdering(t *testing.T) {
	d := testDir(t, nil)
	r := randPeer(t)
	now := time.Now()
	d.apply(r, pm(presenceSnapshot, 10, 1, "a", "b"), nil, false, now)
	d.apply(r, pm(presenceJoin, 10, 3, "c"), nil, false, now) // overtook seq 2: waits for it
	d.apply(r, pm(presenceLeave, 10, 2, "a"), nil, false, now)
	if got := sorted(d.remoteNodes()); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after the overtaken leave: %v", got)
	}
	d.apply(r, pm(presenceJoin, 10, 2, "a"), nil, false, now) // stale: seq 2 <= 3
	if got := sorted(d.remoteNodes()); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after a stale join: %v", got)
	}
	d.apply(r, pm(presenceSnapshot, 10, 4, "b", "c"), nil, false, now) // authoritative
	if got := sorted(d.remoteNodes()); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after snapshot: %v", got)
	}
	d.apply(r, pm(presenceSnapshot, 9, 100, "old"), nil, false, now) // older epoch
	if hasNode(d, "old") {
		t.Fatal("older epoch applied")
	}
	d.apply(r, pm(presenceJoin, 11, 1, "new"), nil, false, now) // restart: old nodes gone
	if got := sorted(d.remoteNodes()); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("after restart: %v", got)
	}
	// "b" left r (restart) recently: r may still speak for it within the
	// grace (SpeakForWait), not after.
	v := d.speaks(r, "b", now.Add(time.Second))
	if !v.held || !v.originKnown {
		t.Fatalf("speaks(b) = %+v", v)
	}
	if v := d.speaks(r, "b", now.Add(time.Minute)); v.held {
		t.Fatalf("speaks(b) after the grace = %+v", v)
	}
}

func hasNode(d *directory, id string) bool { return slices.Contains(d.remoteNodes(), id) }

func TestDirectoryParts(t *testing.T) {
	d := testDir(t, nil)
	r := randPeer(t)
	now := time.Now()
	d.apply(r, pm(presenceSnapshot, 1, 1, "x"), nil, false, now)
	p0 := pm(presenceSnapshot, 1, 2, "a", "b")
	p0.Part, p0.Parts = 0, 2
	p1 := pm(presenceSnapshot, 1, 2, "c")
	p1.Part, p1.Parts = 1, 2
	d.apply(r, p1, nil, false, now)
	if got := d.remoteNodes(); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("half a snapshot applied: %v", got)
	}
	d.apply(r, p1, nil, false, now) // duplicate part
	d.apply(r, p0, nil, false, now)
	if got := sorted(d.remoteNodes()); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("assembled: %v", got)
	}
}

func TestDirectoryMultiHomedAndExpiry(t *testing.T) {
	d := testDir(t, nil)
	r1, r2 := randPeer(t), randPeer(t)
	now := time.Now()
	d.apply(r1, pm(presenceSnapshot, 1, 1, "m", "only1"), nil, false, now)
	d.apply(r2, pm(presenceSnapshot, 1, 1, "m"), nil, false, now.Add(4*time.Second))
	if got := sorted(d.remoteNodes()); !slices.Equal(got, []string{"m", "only1"}) {
		t.Fatalf("nodes: %v", got)
	}
	if h := d.holdersOf("m"); len(h) != 2 {
		t.Fatalf("holders of m: %v", h)
	}
	// 3 missed 2 s snapshots: r1 expires at +6 s, r2 (seen at +4 s) not.
	if gone := d.expire(now.Add(5900 * time.Millisecond)); len(gone) != 0 {
		t.Fatalf("expired early: %v", gone)
	}
	if gone := d.expire(now.Add(6100 * time.Millisecond)); len(gone) != 1 || gone[0] != r1 {
		t.Fatalf("expired %v, want r1", gone)
	}
	if got := d.remoteNodes(); !slices.Equal(got, []string{"m"}) {
		t.Fatalf("after expiry: %v", got)
	}
	if d.expiryFor(60_000) != 3*maxPresenceInterval || d.expiryFor(1) != 3*minPresenceInterval {
		t.Fatal("announced interval not clamped")
	}
}

func TestDirectoryBounds(t *testing.T) {
	d := testDir(t, func(c *Config) {
		c.Presence.MaxRelays = 2
		c.Presence.MaxNodesPerRelay = 3
		c.Presence.MaxDirectoryEntries = 4
	})
	r1, r2, r3 := randPeer(t), randPeer(t), randPeer(t)
	now := time.Now()
	d.apply(r1, pm(presenceJoin, 1, 1, "a", "b", "c", "d", "e"), nil, false, now)
	if n := len(d.remoteNodes()); n != 3 {
		t.Fatalf("per-relay bound: %d nodes", n)
	}
	d.apply(r2, pm(presenceJoin, 1, 1, "f", "g"), nil, false, now)
	if n := len(d.remoteNodes()); n != 4 {
		t.Fatalf("total bound: %d nodes", n)
	}
	d.apply(r3, pm(presenceJoin, 1, 1, "h"), nil, false, now)
	if hasNode(d, "h") || len(d.snapshot()) != 2 {
		t.Fatal("relay bound not enforced")
	}
}

func TestParsePresence(t *testing.T) {
	maxSize := DefaultConfig().MaxMessageSize
	many := `"n"` + strings.Repeat(`,"n"`, maxPresenceNodes)
	relay := randPeer(t).String()
	ok := `{"type":"snapshot","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":2000,"addrs":["/ip4/1.2.3.4/tcp/4001"],"nodes":["a"]}`
	if _, _, _, reason := parsePresence([]byte(ok), maxSize); reason != "" {
		t.Fatalf("valid message refused: %s", reason)
	}
	for name, tc := range map[string]struct{ data, reason string }{
		"garbage":    {`nope`, "invalid_json"},
		"type":       {`{"type":"hello","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":1,"nodes":[]}`, "bad_type"},
		"relay":      {`{"type":"join","relay":"bob","epoch":1,"seq":1,"interval_ms":1,"nodes":[]}`, "bad_relay"},
		"seq":        {`{"type":"join","relay":"` + relay + `","epoch":1,"seq":0,"interval_ms":1,"nodes":[]}`, "bad_sequence"},
		"epoch":      {`{"type":"join","relay":"` + relay + `","seq":1,"interval_ms":1,"nodes":[]}`, "bad_sequence"},
		"too many":   {`{"type":"join","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":1,"nodes":[` + many + `]}`, "too_many_nodes"},
		"empty node": {`{"type":"join","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":1,"nodes":[""]}`, "bad_node_id"},
		"long node":  {`{"type":"join","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":1,"nodes":["` + strings.Repeat("x", 257) + `"]}`, "bad_node_id"},
		"addr":       {`{"type":"join","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":1,"addrs":["1.2.3.4:5"],"nodes":[]}`, "bad_addr"},
		"parts":      {`{"type":"join","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":1,"parts":2,"nodes":[]}`, "bad_parts"},
		"part":       {`{"type":"snapshot","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":1,"part":2,"parts":2,"nodes":[]}`, "bad_parts"},
		"ws_url":     {`{"type":"snapshot","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":1,"ws_url":"http://x/ws","nodes":[]}`, "bad_ws_url"},
		"long ws":    {`{"type":"snapshot","relay":"` + relay + `","epoch":1,"seq":1,"interval_ms":1,"ws_url":"wss://` + strings.Repeat("x", 600) + `","nodes":[]}`, "bad_ws_url"},
	} {
		if _, _, _, reason := parsePresence([]byte(tc.data), maxSize); reason != tc.reason {
			t.Errorf("%s: reason %q, want %q", name, reason, tc.reason)
		}
	}
}

// TestDirectoryWSURLs: a snapshot's ws_url is kept per relay, replaced by
// the next snapshot and forgotten when the relay restarts.
func TestDirectoryWSURLs(t *testing.T) {
	d := testDir(t, nil)
	a, b := randPeer(t), randPeer(t)
	now := time.Now()
	snap := func(epoch int64, seq uint64, u string) *presenceMessage {
		m := pm(presenceSnapshot, epoch, seq)
		m.WSURL = u
		return m
	}
	d.apply(a, snap(1, 1, "wss://a.example/ws"), nil, false, now)
	d.apply(b, snap(1, 1, ""), nil, false, now)
	if got := d.wsURLs(); !slices.Equal(got, []string{"wss://a.example/ws"}) {
		t.Fatalf("urls %v", got)
	}
	d.apply(b, snap(1, 2, "ws://b.example:8787/ws"), nil, false, now)
	d.apply(a, pm(presenceJoin, 2, 1, "n"), nil, false, now) // a restarted without a URL so far
	if got := d.wsURLs(); !slices.Equal(got, []string{"ws://b.example:8787/ws"}) {
		t.Fatalf("urls after a's restart %v", got)
	}
}

func TestChunkNodes(t *testing.T) {
	const maxSize = 16 << 10
	var ids []string
	for i := range 2000 {
		ids = append(ids, strings.Repeat("n", 40)+string(rune('a'+i%26))+strings.Repeat("z", i%7))
	}
	chunks := chunkNodes(ids, maxSize)
	if len(chunks) < 2 {
		t.Fatalf("%d chunks", len(chunks))
	}
	total := 0
	for _, c := range chunks {
		total += len(c)
		p := presenceMessage{Type: presenceSnapshot, Relay: randPeer(t).String(), Epoch: 1, Seq: 1, IntervalMS: 1, Nodes: c}
		if b := mustJSON(t, p); len(b) > maxSize {
			t.Fatalf("chunk of %d bytes over %d", len(b), maxSize)
		}
	}
	if total != len(ids) {
		t.Fatalf("chunks hold %d of %d ids", total, len(ids))
	}
}

// TestDirectoryFairShare (docs/PROTOCOL.md 5.3): a relay in good standing
// takes the place, or the entries, of relays that are not; those share
// what is left max-min fairly; a relay whose claims a bound cut is marked
// over, and speak-for ignores rather than rejects for it.
func TestDirectoryFairShare(t *testing.T) {
	d := testDir(t, func(c *Config) {
		c.Presence.MaxRelays = 3
		c.Presence.MaxNodesPerRelay = 10
		c.Presence.MaxDirectoryEntries = 10
	})
	now := time.Now()
	ids := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, prefix+string(rune('a'+i)))
		}
		return out
	}
	sizes := func() map[peer.ID]int {
		out := map[peer.ID]int{}
		for r, ns := range d.snapshot() {
			out[r] = len(ns)
		}
		return out
	}
	x, y, g, z := randPeer(t), randPeer(t), randPeer(t), randPeer(t)
	d.apply(x, pm(presenceSnapshot, 1, 1, ids("x", 10)...), nil, false, now)
	// y, not in good standing either, gets a fair share of x's entries.
	d.apply(y, pm(presenceSnapshot, 1, 1, ids("y", 10)...), nil, false, now)
	if s := sizes(); s[x] != 5 || s[y] != 5 {
		t.Fatalf("max-min share: %v, want 5 and 5", s)
	}
	if v := d.speaks(y, "nope", now); !v.originOver || v.held {
		t.Fatalf("y, whose claims were cut: %+v, want over", v)
	}
	// g, in good standing, takes entries from the largest of the others.
	d.apply(g, pm(presenceJoin, 1, 1, "g1", "g2", "g3", "g4"), nil, true, now)
	if s := sizes(); s[g] != 4 || s[x]+s[y] != 6 || s[x] < 2 || s[y] < 2 {
		t.Fatalf("good standing: %v, want g 4 and the rest 6", s)
	}
	if v := d.speaks(g, "g4", now); !v.held || v.originOver {
		t.Fatalf("g's claim: %+v", v)
	}
	// The relay slots are full: z, not in good standing, is refused and
	// remembered as such; in good standing it replaces the largest of
	// the others.
	d.apply(z, pm(presenceJoin, 1, 1, "z1"), nil, false, now)
	if _, ok := sizes()[z]; ok {
		t.Fatal("z took a relay slot without good standing")
	}
	if v := d.speaks(z, "z1", now); !v.originOver {
		t.Fatalf("refused z: %+v, want over", v)
	}
	d.apply(z, pm(presenceJoin, 1, 2, "z1"), nil, true, now)
	s := sizes()
	if s[z] != 1 || s[g] != 4 || len(s) != 3 {
		t.Fatalf("z in good standing: %v, want z 1, g 4 and one of x and y", s)
	}
	// A snapshot that fits whole makes a relay complete again.
	for r := range s {
		if r != z && r != g {
			d.apply(r, pm(presenceSnapshot, 1, 5, "only"), nil, false, now)
			if v := d.speaks(r, "other", now); v.originOver {
				t.Fatalf("a relay whose snapshot fits: %+v, want complete", v)
			}
		}
	}
}
