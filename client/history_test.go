package client

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/testnet"
)

func TestHistory(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil, relay.WithHistory(testnet.OpenHistory(t)))
	c := dial(t, testConfig("node-a", r.URL))
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-a", "node-b")
	start := time.Now() // after the store began: the answer can be complete
	var want []string
	for i := range 3 {
		id := fmt.Sprint("h", i)
		p.Send(TypeEntryAnnounce, id, "", fmt.Sprintf(`{"i":%d}`, i))
		want = append(want, id)
	}
	if _, err := c.Broadcast(ctx(t), TypeEntryAnnounce, nil); err != nil {
		t.Fatal(err) // the client's own broadcast is not in its history
	}
	for _, id := range want {
		if m := expect(t, c, TypeEntryAnnounce, id); m.TS == 0 {
			t.Fatalf("live broadcast without ts: %s", m.Raw)
		}
	}
	res, err := c.History(ctx(t), start, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range res.Messages {
		got = append(got, m.ID)
	}
	slices.Sort(got) // within one millisecond the order is by message key
	if !slices.Equal(got, want) || res.Count != 3 || !res.Complete {
		t.Fatalf("History: %v count %d complete %v, want %v", got, res.Count, res.Complete, want)
	}
	// limit cuts the answer (between two milliseconds: a millisecond is
	// answered whole), NextSince continues it: each message once.
	res, err = c.History(ctx(t), start, time.Time{}, 2)
	if err != nil || len(res.Messages) == 0 {
		t.Fatalf("History limit 2: %+v %v", res, err)
	}
	got = got[:0]
	for _, m := range res.Messages {
		got = append(got, m.ID)
	}
	if len(got) < 3 {
		if res.Complete || res.NextSince.IsZero() {
			t.Fatalf("History limit 2 cut without NextSince: %v count %d complete %v next %v", got, res.Count, res.Complete, res.NextSince)
		}
		more, err := c.History(ctx(t), res.NextSince, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range more.Messages {
			got = append(got, m.ID)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("History in two answers: %v, want each of %v once", got, want)
	}
	none(t, c)
}

func TestResumeAfterSlowReaderLosesNothing(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil, relay.WithHistory(testnet.OpenHistory(t)))
	cfg := testConfig("node-a", r.URL)
	cfg.Buffer = 4
	cfg.Resume = true
	c := dial(t, cfg)
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-a", "node-b")
	var want []string
	for i := range 20 {
		id := fmt.Sprint("m", i)
		p.Send(TypeEntryAnnounce, id, "", "")
		want = append(want, id)
	}
	testutil.Eventually(t, wait, func() bool { return c.Stats().SlowReaderDrops >= 1 }, "a slow-reader drop")
	// Reading everything: the reconnection replays what was missed, and
	// what was delivered before is dropped as a duplicate.
	var got []string
	for range want {
		got = append(got, expect(t, c, TypeEntryAnnounce, "").ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want each of %v once", got, want)
	}
	p.Send(TypeEntryAnnounce, "last", "", "")
	expect(t, c, TypeEntryAnnounce, "last")
	none(t, c)
}

// TestResumeLongerThanOneAnswer: a since_ms replay of more broadcasts than
// one relay answer holds (10,000) is cut; the client fetches the rest with
// History calls and delivers every broadcast once.
func TestResumeLongerThanOneAnswer(t *testing.T) {
	store := testnet.OpenHistory(t)
	r := testnet.StartStandalone(t, func(c *relay.Config) { c.RateLimit, c.RateBurst = 1e6, 1e6 }, nil, relay.WithHistory(store))
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-b")
	start := time.Now()
	const n = 12_500 // over MaxHistoryLimit
	for i := range n {
		p.Send(TypeEntryAnnounce, fmt.Sprint("m", i), "", "")
	}
	testutil.Eventually(t, wait, func() bool { return store.Stats().Count >= n }, "every broadcast stored")
	cfg := testConfig("node-a", r.URL)
	cfg.Resume, cfg.Since, cfg.Buffer = true, start, 1024
	c := dial(t, cfg)
	seen := map[string]bool{}
	for len(seen) < n {
		var m Message
		select {
		case m = <-c.Messages():
		case <-time.After(wait):
			t.Fatalf("%d of %d arrived; gap at %d, stats %+v", len(seen), n, c.gapFrom.Load(), c.Stats())
		}
		if m.Type != TypeEntryAnnounce || seen[m.ID] {
			t.Fatalf("after %d: got %s %q (type or a repeat)", len(seen), m.Type, m.ID)
		}
		seen[m.ID] = true
	}
	p.Send(TypeEntryAnnounce, "live", "", "")
	expect(t, c, TypeEntryAnnounce, "live")
	none(t, c)
	if g := c.gapFrom.Load(); g != 0 {
		t.Fatalf("gap still open at %d after everything arrived", g)
	}
}
