package testnet

import (
	"fmt"
	"testing"
	"time"

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
