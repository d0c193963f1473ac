//go:build testnet

package docker

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/testnet"
)

// clientsOnEveryRelay connects one test client to each relay, bound at
// connect, and waits until each reaches each other one by a direct message
// (so every relay knows every node).
func clientsOnEveryRelay(t *testing.T, test string) []*testnet.Client {
	t.Helper()
	var cs []*testnet.Client
	for i, r := range st.Relays {
		id := nodeID(test, i+1)
		cs = append(cs, testnet.Dial(t, r.WS+"?node_id="+id, id))
	}
	for _, from := range cs {
		for _, to := range cs {
			if from != to {
				testnet.Reach(t, from, to)
			}
		}
	}
	drained(t, cs...)
	return cs
}

// drained fails unless no client holds an unread message.
func drained(t *testing.T, cs ...*testnet.Client) {
	t.Helper()
	for _, c := range cs {
		if n := c.Pending(); n > 0 {
			t.Fatalf("%s has %d unexpected messages, first: %s", c.NodeID, n, c.Next().Raw)
		}
	}
}

// quiet waits d and then fails unless no client received anything more.
func quiet(t *testing.T, d time.Duration, cs ...*testnet.Client) {
	t.Helper()
	time.Sleep(d)
	drained(t, cs...)
}

// TestBroadcastAndDirectAcrossRelays: clients on every relay; a broadcast
// from each reaches every other client exactly once and never its sender;
// a direct message crosses relays to its recipient only; the node list of
// each relay holds every client.
func TestBroadcastAndDirectAcrossRelays(t *testing.T) {
	waitWhole(t, time.Minute)
	start := time.Now()
	cs := clientsOnEveryRelay(t, "bd")
	figure(t, "%d clients on %d relays reach each other directly after %v", len(cs), len(st.Relays), time.Since(start).Round(time.Millisecond))

	const perClient = 5
	for i, c := range cs {
		for k := range perClient {
			c.Send("EntryAnnounce", fmt.Sprintf("bd-%d-%d", i, k), "", fmt.Sprintf(`{"entry":"e%d-%d","n":[1,2.50,"x"]}`, i, k))
		}
	}
	for to, c := range cs {
		var got, want []string
		for from := range cs {
			for k := range perClient {
				if from != to {
					want = append(want, fmt.Sprintf("bd-%d-%d", from, k))
				}
			}
		}
		for range want {
			m := c.Expect("EntryAnnounce")
			if m.Sender == c.NodeID {
				t.Fatalf("%s got its own broadcast %s", c.NodeID, m.ID)
			}
			var from, k int
			if _, err := fmt.Sscanf(m.ID, "bd-%d-%d", &from, &k); err != nil {
				t.Fatalf("%s: unexpected message %s", c.NodeID, m.Raw)
			}
			if p := fmt.Sprintf(`{"entry":"e%d-%d","n":[1,2.50,"x"]}`, from, k); string(m.Payload) != p {
				t.Fatalf("%s: payload %s, want %s byte for byte", c.NodeID, m.Payload, p)
			}
			got = append(got, m.ID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%s (relay%d) got %v, want %v", c.NodeID, to+1, got, want)
		}
	}
	quiet(t, 2*time.Second, cs...) // no late duplicate

	// Direct: from the first relay's client to the last one's, and back;
	// nobody else sees them.
	first, last := cs[0], cs[len(cs)-1]
	first.Send("EntryRequest", "bd-d1", last.NodeID, `{"want":"e1-0"}`)
	if m := last.Expect("EntryRequest"); m.ID != "bd-d1" || m.Sender != first.NodeID || string(m.Payload) != `{"want":"e1-0"}` {
		t.Fatalf("direct: got %s", m.Raw)
	}
	last.Send("EntryResponse", "bd-d2", first.NodeID, `{"entry":"e1-0"}`)
	if m := first.Expect("EntryResponse"); m.ID != "bd-d2" || m.Sender != last.NodeID {
		t.Fatalf("direct reply: got %s", m.Raw)
	}
	first.Send("EntryRequest", "bd-d3", nodeID("nobody", 0), "")
	if p := first.ExpectError("recipient_unknown"); p.Ref != "bd-d3" {
		t.Fatalf("recipient_unknown refers to %q", p.Ref)
	}
	quiet(t, time.Second, cs...)

	// Every relay lists every client.
	for _, c := range cs {
		c.Send("NodeListRequest", "bd-list-"+c.NodeID, "", "")
		var nodes []string
		for {
			m := c.Next()
			if m.Type == "NodeListResponse" {
				nodes = nodeListPayload(t, m)
				break
			}
			if m.Type != "NodeListRequest" {
				t.Fatalf("%s: unexpected %s", c.NodeID, m.Raw)
			}
		}
		for _, o := range cs {
			if !slices.Contains(nodes, o.NodeID) {
				t.Fatalf("%s's relay lists %v, without %s", c.NodeID, nodes, o.NodeID)
			}
		}
	}
}
