package testnet

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gsio-net/gsio-relay/relay"
)

// TestMailboxAcrossRelays: direct messages for a node that left are kept
// (no error) by the sender's relay and delivered in order when the node
// binds again on another relay; a node never seen gets recipient_unknown;
// a full mailbox gets mailbox_full.
func TestMailboxAcrossRelays(t *testing.T) {
	// 16 MiB under -race, and presence plus a mailbox poll, on a loaded
	// 2-core machine: a longer wait than the package's default.
	defer func(w time.Duration) { Wait = w }(Wait)
	Wait = 45 * time.Second
	h := StartHarness(t, 2, Full, WithRelayConfig(func(_ int, c *relay.Config) { c.MailboxMax = 5 }))
	s := Dial(t, h.Relays[0].URL+"?node_id=sender", "sender")
	r := Dial(t, h.Relays[1].URL+"?node_id=rcpt", "rcpt")
	h.WaitNodes(10*time.Second, "sender", "rcpt")
	Reach(t, s, r) // relay 0 has seen rcpt connected (a direct message reached it)
	r.Close()
	h.WaitNodes(10*time.Second, "sender")
	for i := range 5 {
		s.Send("EntryResponse", fmt.Sprint("k", i), "rcpt", fmt.Sprintf(`{"i":%d}`, i))
	}
	s.Send("EntryResponse", "k-full", "rcpt", `{}`)
	if e := s.ExpectError("mailbox_full"); e.Ref != "k-full" {
		t.Fatalf("mailbox_full for %q", e.Ref)
	}
	s.Send("EntryResponse", "never", "nobody-ever", `{}`)
	if e := s.ExpectError("recipient_unknown"); e.Ref != "never" {
		t.Fatalf("recipient_unknown for %q", e.Ref)
	}
	// rcpt binds again, on the other relay: it gets k0..k4 in order.
	r2 := Dial(t, h.Relays[1].URL+"?node_id=rcpt", "rcpt")
	for i := range 5 {
		if m := r2.Expect("EntryResponse"); m.ID != fmt.Sprint("k", i) || m.Sender != "sender" {
			t.Fatalf("got %s, want k%d", m.ID, i)
		}
	}
	if s.Pending() != 0 {
		t.Fatalf("the sender got %d messages (errors) for kept messages", s.Pending())
	}
}

// TestMailboxOnTheKeepingRelay: kept on a standalone relay and delivered
// at the node's next bind there.
func TestMailboxOnTheKeepingRelay(t *testing.T) {
	r := StartStandalone(t, nil, nil)
	s := Dial(t, r.URL+"?node_id=sender", "sender")
	rc := Dial(t, r.URL+"?node_id=rcpt", "rcpt")
	Reach(t, s, rc)
	rc.Close()
	Eventually(t, Wait, "rcpt gone", func() bool { return len(r.Router.LocalNodes()) == 1 })
	s.Send("EntryResponse", "local-1", "rcpt", `{}`)
	s.Send("EntryResponse", "local-2", "rcpt", `{}`)
	rc2 := Dial(t, r.URL+"?node_id=rcpt", "rcpt")
	for _, id := range []string{"local-1", "local-2"} {
		if m := rc2.Expect("EntryResponse"); m.ID != id {
			t.Fatalf("got %s at bind, want %s", m.ID, id)
		}
	}
	if s.Pending() != 0 {
		t.Fatalf("the sender got %d messages (errors) for kept messages", s.Pending())
	}
}

// TestMailboxWhenTheHolderIsUnreachable: a direct message routed to the
// relay that holds its recipient, but that the sender's relay can no
// longer reach (a partition, before the directory has expired it), fails
// on the mesh; the sender's relay keeps it in the recipient's mailbox
// instead of answering recipient_unknown, and delivers it when the
// recipient binds on a relay it reaches.
func TestMailboxWhenTheHolderIsUnreachable(t *testing.T) {
	defer func(w time.Duration) { Wait = w }(Wait)
	Wait = 30 * time.Second
	h := StartHarness(t, 3, Full, WithAdmin())
	s := Dial(t, h.Relays[0].URL+"?node_id=sender", "sender")
	r := Dial(t, h.Relays[1].URL+"?node_id=rcpt", "rcpt")
	h.WaitNodes(10*time.Second, "sender", "rcpt")
	Reach(t, s, r)
	failed := func() float64 { return counterSum(t, h.Relays[0].Registry, "direct_failed_total") }
	before := failed()
	h.Partition([]int{0, 2}, []int{1})
	// Relay 0 still lists rcpt at relay 1 (presence expires it later).
	if !slices.Contains(h.Nodes(0), "rcpt") {
		t.Fatal("relay 0 forgot rcpt at the partition already: the case this test is for is not reached")
	}
	s.Send("EntryResponse", "cut-1", "rcpt", `{"i":1}`)
	Eventually(t, Wait, "the direct message fails on the mesh", func() bool { return failed() > before })
	r.Close()
	r2 := Dial(t, h.Relays[2].URL+"?node_id=rcpt", "rcpt")
	if m := r2.Expect("EntryResponse"); m.ID != "cut-1" || m.Sender != "sender" {
		t.Fatalf("got %s from %s, want cut-1 from sender", m.ID, m.Sender)
	}
	if s.Pending() != 0 {
		t.Fatalf("the sender got %d messages (an error) for a kept message", s.Pending())
	}
}

// counterSum sums every series of the counter family name in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, suffix string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if strings.HasSuffix(mf.GetName(), suffix) {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
