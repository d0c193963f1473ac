package client

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/testnet"
)

func TestFailoverFromDeadFirstURL(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	var st states
	c := dial(t, testConfig("node-a", deadURL(t), r.URL), WithStateHook(st.hook))
	if c.URL() != r.URL {
		t.Fatalf("connected to %q, want %s", c.URL(), r.URL)
	}
	if s := c.Stats(); s.Attempts != 2 || s.Connections != 1 {
		t.Fatalf("stats %+v", s)
	}
	if got := st.list(); len(got) != 2 || got[0].Connected || got[0].Err == nil || !got[1].Connected {
		t.Fatalf("states %+v", got)
	}
}

func TestDialGivesUpWithContext(t *testing.T) {
	cfg := testConfig("node-a", deadURL(t), deadURL(t))
	cfg.BackoffMin, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	c, cancel := contextWithTimeout(200 * time.Millisecond)
	defer cancel()
	cl, err := Dial(c, cfg)
	if cl != nil || err == nil || !errors.Is(err, c.Err()) {
		t.Fatalf("Dial: %v, %v", cl, err)
	}
}

func TestFailoverWhenRelayStopsMidSession(t *testing.T) {
	h := testnet.StartHarness(t, 2, testnet.Full)
	r0, r1 := h.Relays[0], h.Relays[1]
	c := dial(t, testConfig("node-a", r0.URL, r1.URL))
	p := peer(t, r1.URL, "node-b")
	h.WaitNodes(wait, "node-a", "node-b")

	// Across the federation first.
	p.Send(TypeEntryAnnounce, "before", "", "")
	expect(t, c, TypeEntryAnnounce, "before")

	r0.Stop(t)
	testutil.Eventually(t, wait, func() bool { return c.URL() == r1.URL }, "failover to relay 1")
	bound(t, r1.Router, "node-a")
	p.Send(TypeEntryAnnounce, "after", "", "")
	expect(t, c, TypeEntryAnnounce, "after")
	if _, err := c.SendTo(ctx(t), "node-b", TypeEntryRequest, nil); err != nil {
		t.Fatal(err)
	}
	p.Expect(TypeEntryRequest)
	none(t, c)
	if s := c.Stats(); s.Connections != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// inject hands the router a frame as if another relay sent it.
func inject(t *testing.T, r *relay.Router, frame []byte) {
	t.Helper()
	env, err := message.Parse(frame)
	if err != nil {
		t.Fatal(err)
	}
	r.Deliver(&env)
}

func TestDrainMovesToAnnouncedRelay(t *testing.T) {
	a := testnet.StartStandalone(t, nil, nil)
	b := testnet.StartStandalone(t, nil, nil)
	var st states
	c := dial(t, testConfig("node-a", a.URL), WithStateHook(st.hook))
	bound(t, a.Router, "node-a")
	inject(t, a.Router, message.Build(TypeRelayDraining, message.NewID(), RelayID, "node-a",
		[]byte(fmt.Sprintf(`{"urls":["ws://", %q]}`, b.URL))))
	testutil.Eventually(t, wait, func() bool { return c.URL() == b.URL }, "the client to move to relay b")
	p := peer(t, b.URL, "node-b")
	bound(t, b.Router, "node-a", "node-b")
	p.Send(TypeEntryRequest, "on-b", "node-a", "")
	expect(t, c, TypeEntryRequest, "on-b")
	if got := st.list(); len(got) < 3 || !errors.Is(got[1].Err, ErrDraining) {
		t.Fatalf("states %+v", got)
	}
}

func TestDuplicatesDropped(t *testing.T) {
	// The relay remembers only the last two messages: a repeat after three
	// others reaches the client, which drops it.
	r := testnet.StartStandalone(t, func(c *relay.Config) { c.DedupSize, c.DedupTTL = 2, time.Nanosecond }, nil)
	c := dial(t, testConfig("node-a", r.URL))
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-a", "node-b")
	for _, id := range []string{"m1", "m2", "m3", "m1", "m4"} {
		p.Send(TypeEntryAnnounce, id, "", "")
	}
	for _, id := range []string{"m1", "m2", "m3", "m4"} {
		expect(t, c, TypeEntryAnnounce, id)
	}
	none(t, c)
	if s := c.Stats(); s.Duplicates != 1 || s.Delivered != 4 {
		t.Fatalf("stats %+v", s)
	}
	// Another sender's message with the same id is another message.
	q := peer(t, r.URL, "node-c")
	bound(t, r.Router, "node-c")
	q.Send(TypeEntryAnnounce, "m1", "", "")
	if m := expect(t, c, TypeEntryAnnounce, "m1"); m.Sender != "node-c" {
		t.Fatalf("got %s", m.Raw)
	}
}

func TestSlowReaderDropsAndReconnects(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	cfg := testConfig("node-a", r.URL)
	cfg.Buffer = 4
	var st states
	c := dial(t, cfg, WithStateHook(st.hook))
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-a", "node-b")
	for i := range 20 {
		p.Send(TypeEntryAnnounce, fmt.Sprint("m", i), "", "")
	}
	// The buffer fills, the client drops its connection and waits.
	testutil.Eventually(t, wait, func() bool { return c.Stats().SlowReaderDrops == 1 && c.URL() == "" },
		"a slow-reader drop")
	testutil.Stays(t, 100*time.Millisecond, func() error {
		if n := len(c.Messages()); n != cfg.Buffer || c.URL() != "" {
			return fmt.Errorf("%d buffered, connected to %q, while the reader is behind", n, c.URL())
		}
		return nil
	})
	// A reader that also sends is not left waiting for a reconnection
	// that waits for it.
	if _, err := c.Broadcast(ctx(t), TypeEntryAnnounce, nil); !errors.Is(err, ErrSlowReader) {
		t.Fatalf("Broadcast while paused: %v", err)
	}
	// The first messages are there in order; once half the buffer is
	// read, the client reconnects to the same relay.
	for i := range 3 {
		expect(t, c, TypeEntryAnnounce, fmt.Sprint("m", i))
	}
	testutil.Eventually(t, wait, func() bool { return c.URL() == r.URL }, "reconnection")
	bound(t, r.Router, "node-a")
	p.Send(TypeEntryAnnounce, "after", "", "")
	expect(t, c, TypeEntryAnnounce, "m3")
	for {
		// Without history the messages sent while away are lost; those
		// read before the drop may still be on their way.
		if m := next(t, c); m.ID == "after" {
			break
		}
	}
	if s := c.Stats(); s.Connections != 2 || s.Attempts != 2 {
		t.Fatalf("stats %+v", s)
	}
	if got := st.list(); len(got) != 3 || !errors.Is(got[1].Err, ErrSlowReader) {
		t.Fatalf("states %+v", got)
	}
}
