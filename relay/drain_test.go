package relay

import (
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
