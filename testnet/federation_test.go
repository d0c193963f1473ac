package testnet

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-libp2p and quic-go start a few process-wide goroutines once.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// clients dials one client per relay, node-0 on relay 0 and so on, bound at
// connect, and waits until every relay lists all of them.
func clients(t testing.TB, h *Harness) []*Client {
	t.Helper()
	var cs []*Client
	var ids []string
	for i, r := range h.Relays {
		id := fmt.Sprint("node-", i)
		cs = append(cs, Dial(t, r.URL+"?node_id="+id, id))
		ids = append(ids, id)
	}
	h.WaitNodes(10*time.Second, ids...)
	return cs
}

// drained fails unless no client holds an unread message.
func drained(t *testing.T, cs ...*Client) {
	t.Helper()
	for _, c := range cs {
		if n := c.Pending(); n > 0 {
			t.Fatalf("%s has %d unexpected messages, first: %s", c.NodeID, n, c.Next().Raw)
		}
	}
}

func TestBroadcastAcrossRelaysExactlyOnce(t *testing.T) {
	for _, topo := range []struct {
		name string
		t    Topology
	}{{"full", Full}, {"line", Line}} {
		t.Run(topo.name, func(t *testing.T) {
			h := StartHarness(t, 3, topo.t)
			cs := clients(t, h)
			for from := range cs {
				for k := range 3 {
					cs[from].Send("EntryAnnounce", fmt.Sprintf("e%d-%d", from, k), "", fmt.Sprintf(`{"k":%d}`, k))
				}
			}
			// Every client gets each other client's three once, and none of
			// its own. (Gossip does not promise order across relays.)
			for to, c := range cs {
				var got, want []string
				for from := range cs {
					for k := range 3 {
						if from != to {
							want = append(want, fmt.Sprintf("e%d-%d", from, k))
						}
					}
				}
				for range want {
					m := c.Expect("EntryAnnounce")
					if m.Sender == c.NodeID {
						t.Fatalf("%s got its own broadcast %s", c.NodeID, m.ID)
					}
					got = append(got, m.ID)
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("%s (relay %d) got %v, want %v", c.NodeID, to, got, want)
				}
			}
			// A last round of broadcasts proves no late duplicate was queued
			// before it.
			cs[0].Send("EntryAnnounce", "last", "", "")
			for _, c := range cs[1:] {
				if m := c.Next(); m.ID != "last" {
					t.Fatalf("%s: got %s %s, want only the last broadcast", c.NodeID, m.Type, m.ID)
				}
			}
			drained(t, cs...)
		})
	}
}

func TestDirectAcrossLineNotFlooded(t *testing.T) {
	h := StartHarness(t, 3, Line)
	cs := clients(t, h)
	cs[0].Send("EntryRequest", "d1", "node-2", `{"want":"e1"}`)
	if m := cs[2].Expect("EntryRequest"); m.ID != "d1" || m.Sender != "node-0" {
		t.Fatalf("got %s", m.Raw)
	}
	cs[2].Send("EntryResponse", "d2", "node-0", `{"entry":"e1"}`)
	if m := cs[0].Expect("EntryResponse"); m.ID != "d2" {
		t.Fatalf("got %s", m.Raw)
	}
	// The relay in the middle's node saw neither: a broadcast sent after
	// both arrives first.
	cs[2].Send("EntryAnnounce", "after", "", "")
	if m := cs[1].Next(); m.ID != "after" {
		t.Fatalf("node-1 got %s %s, want only the later broadcast", m.Type, m.ID)
	}
	cs[0].Expect("EntryAnnounce")
	cs[0].Send("EntryRequest", "d3", "nobody", "")
	if p := cs[0].ExpectError("recipient_unknown"); p.Ref != "d3" {
		t.Fatalf("ref %q", p.Ref)
	}
}

func TestNodeListSpansFederation(t *testing.T) {
	h := StartHarness(t, 3, Star)
	cs := clients(t, h)
	cs[1].Send("NodeListRequest", "l1", "", "")
	m := cs[1].Expect("NodeListResponse")
	if string(m.Payload) != `{"nodes":["node-0","node-1","node-2"]}` {
		t.Fatalf("NodeListResponse payload %s", m.Payload)
	}
	for _, c := range []*Client{cs[0], cs[2]} {
		c.Expect("NodeListRequest")
	}
}

func TestStoppedRelayNodesExpireAndRestartRejoins(t *testing.T) {
	h := StartHarness(t, 3, Full)
	cs := clients(t, h)
	id := h.Relays[2].Node.ID()

	start := time.Now()
	h.Relays[2].Stop(t)
	h.WaitNodes(30*time.Second, "node-0", "node-1")
	t.Logf("nodes of a stopped relay gone everywhere after %v", time.Since(start).Round(time.Millisecond))

	h.Restart(2)
	if got := h.Relays[2].Node.ID(); got != id {
		t.Fatalf("peer id after restart %s, want %s", got, id)
	}
	h.WaitMesh()
	c := Dial(t, h.Relays[2].URL+"?node_id=node-new", "node-new")
	start = time.Now()
	h.WaitNodes(10*time.Second, "node-0", "node-1", "node-new")
	t.Logf("node on the restarted relay listed everywhere after %v", time.Since(start).Round(time.Millisecond))
	cs[0].Send("EntryRequest", "to-new", "node-new", "")
	if m := c.Expect("EntryRequest"); m.ID != "to-new" {
		t.Fatalf("got %s", m.Raw)
	}
	cs[1].Send("EntryAnnounce", "b-new", "", "")
	if m := c.Expect("EntryAnnounce"); m.ID != "b-new" {
		t.Fatalf("got %s", m.Raw)
	}
}

func TestMultiHomedNode(t *testing.T) {
	h := StartHarness(t, 3, Full)
	cs := clients(t, h)
	// node-m holds connections to relays 0 and 1.
	m0 := Dial(t, h.Relays[0].URL+"?node_id=node-m", "node-m")
	m1 := Dial(t, h.Relays[1].URL+"?node_id=node-m", "node-m")
	h.WaitNodes(10*time.Second, "node-0", "node-1", "node-2", "node-m")

	// It gets a broadcast on each connection, once on each.
	cs[2].Send("EntryAnnounce", "to-all", "", "")
	for _, c := range []*Client{m0, m1, cs[0], cs[1]} {
		if m := c.Expect("EntryAnnounce"); m.ID != "to-all" {
			t.Fatalf("got %s", m.Raw)
		}
	}
	// Its message sent to both relays reaches every other node once.
	m0.Send("EntryAnnounce", "twice", "", `{"copy":0}`)
	m1.Send("EntryAnnounce", "twice", "", `{"copy":1}`)
	cs[2].Send("EntryAnnounce", "barrier", "", "")
	for _, c := range []*Client{cs[0], cs[1]} {
		got := []string{c.Expect("EntryAnnounce").ID, c.Expect("EntryAnnounce").ID}
		slices.Sort(got)
		if !slices.Equal(got, []string{"barrier", "twice"}) {
			t.Fatalf("%s got %v, want twice and barrier once each", c.NodeID, got)
		}
	}
	// Relay 2 has no barrier ordering for node-2 (it sent it); a second
	// barrier from node-0 follows node-m's message on every path.
	cs[0].Send("EntryAnnounce", "barrier2", "", "")
	got := []string{cs[2].Expect("EntryAnnounce").ID, cs[2].Expect("EntryAnnounce").ID}
	slices.Sort(got)
	if !slices.Equal(got, []string{"barrier2", "twice"}) {
		t.Fatalf("node-2 got %v, want twice and barrier2 once each", got)
	}
	cs[1].Expect("EntryAnnounce") // barrier2
	for _, c := range []*Client{m0, m1} {
		got := []string{c.Expect("EntryAnnounce").ID, c.Expect("EntryAnnounce").ID}
		slices.Sort(got)
		if !slices.Equal(got, []string{"barrier", "barrier2"}) {
			t.Fatalf("node-m got %v, want barrier and barrier2 once each (not its own message)", got)
		}
	}
	// A direct message to node-m is delivered to one of its connections.
	cs[2].Send("EntryRequest", "to-m", "node-m", "")
	Eventually(t, Wait, "direct to node-m", func() bool { return m0.Pending()+m1.Pending() > 0 })
	cs[1].Send("NodeListRequest", "l", "", "")
	if m := cs[1].Expect("NodeListResponse"); string(m.Payload) != `{"nodes":["node-0","node-1","node-2","node-m"]}` {
		t.Fatalf("node list %s", m.Payload)
	}
}
