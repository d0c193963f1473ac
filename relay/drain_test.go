package relay

import (
	"strings"
	"testing"
	"time"
)

// TestRouterDrain: Drain tells every bound node where to go, keeps routing
// for them, and refuses new connections and binds with 1013.
func TestRouterDrain(t *testing.T) {
	r := newRouter(t, nil, nil)
	a, b := open(t, r, "node_id=a"), open(t, r, "node_id=b")
	unbound := open(t, r, "")
	deadline := time.UnixMilli(1764633600000)
	told, first := r.Drain([]string{"wss://b.example/ws", `ws://c"q/ws`}, deadline)
	if told != 2 || !first || !r.Draining() {
		t.Fatalf("told %d first %v draining %v", told, first, r.Draining())
	}
	for _, c := range []*memConn{a, b} {
		m := c.expectOne(t, TypeRelayDraining)
		want := `{"urls":["wss://b.example/ws","ws://c\"q/ws"],"deadline_ms":1764633600000}`
		if m.Sender != "relay" || m.ID == "" || string(m.Payload) != want {
			t.Fatalf("RelayDraining %+v, payload want %s", m, want)
		}
	}
	if _, again := r.Drain(nil, deadline); again {
		t.Fatal("a second Drain did something")
	}
	a.send("EntryAnnounce", "e1", "a", "", `{}`) // still routed while draining
	b.expectOne(t, "EntryAnnounce")
	if c := open(t, r, "node_id=c"); c.closeCode() != CloseTryAgain {
		t.Fatalf("new connection closed %d, want %d", c.closeCode(), CloseTryAgain)
	}
	unbound.send("EntryAnnounce", "u1", "u", "", `{}`)
	if unbound.closeCode() != CloseTryAgain {
		t.Fatalf("bind while draining closed %d, want %d", unbound.closeCode(), CloseTryAgain)
	}
	a.expectNone(t)
	b.expectNone(t)
	if n := r.LocalCount(); n != 2 {
		t.Fatalf("LocalCount %d", n)
	}
}

// TestRouterSetLimits: a new broadcast limit applies to the next message,
// a new rate to the next connection; an invalid set changes nothing.
func TestRouterSetLimits(t *testing.T) {
	r := newRouter(t, nil, nil)
	a, b := open(t, r, "node_id=a"), open(t, r, "node_id=b")
	big := `{"x":"` + strings.Repeat("y", 2000) + `"}`
	a.send("EntryAnnounce", "e1", "a", "", big)
	b.expectOne(t, "EntryAnnounce")
	lim := r.Limits()
	lim.MaxBroadcastSize, lim.RateLimit, lim.RateBurst = 1024, 1, 1
	if err := r.SetLimits(lim); err != nil {
		t.Fatal(err)
	}
	a.send("EntryAnnounce", "e2", "a", "", big)
	if m := a.expectOne(t, "RelayError"); !strings.Contains(string(m.Payload), "too_large") {
		t.Fatalf("got %s", m.Payload)
	}
	c := open(t, r, "node_id=c")
	c.send("EntryAnnounce", "c1", "c", "", `{}`)
	c.send("EntryAnnounce", "c2", "c", "", `{}`) // over the new rate of 1/s, burst 1
	if m := c.expectOne(t, "RelayError"); !strings.Contains(string(m.Payload), "rate_limited") {
		t.Fatalf("got %s", m.Payload)
	}
	bad := lim
	bad.MaxBroadcastSize = r.cfg.MaxDirectSize + 1
	if err := r.SetLimits(bad); err == nil || !strings.Contains(err.Error(), "needs a restart") {
		t.Fatalf("a broadcast limit above the start's: %v", err)
	}
	if r.Limits() != lim {
		t.Fatalf("a refused set changed the limits: %+v", r.Limits())
	}
}
