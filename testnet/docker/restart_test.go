//go:build testnet

package docker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/testnet"
)

// TestRestart restarts the first relay with docker restart: its clients
// are closed with 1001 (SIGTERM reaches the relay, PID 1 of a scratch
// image), it comes back with the same peer ID (the identity is in its
// volume), the other relays take it back, and its clients, connected
// again, are reachable from every relay and reach every relay.
func TestRestart(t *testing.T) {
	if len(st.Relays) < 2 {
		t.Skip("a restart test needs two relays")
	}
	waitWhole(t, time.Minute)
	r := st.Relays[0]
	cs := clientsOnEveryRelay(t, "rs")
	before, _, err := adminClient(t, r).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if before.PeerID != r.PeerID {
		t.Fatalf("%s runs as %s, but its volume holds %s", r.Name, before.PeerID, r.PeerID)
	}

	start := time.Now()
	docker(t, "restart", "--time", "10", r.Container)
	restarted := time.Since(start)
	cs[0].ExpectClose(websocket.CloseGoingAway)
	healthy(t, r, time.Minute)
	healthyAfter := time.Since(start)

	after, _, err := adminClient(t, r).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.PeerID != before.PeerID || !after.StartedAt.After(before.StartedAt) {
		t.Fatalf("after the restart %s is %s started at %v; before it was %s started at %v",
			r.Name, after.PeerID, after.StartedAt, before.PeerID, before.StartedAt)
	}

	// Its client connects again, with the same node id, and is reachable
	// from every other relay's client, and reaches them.
	c := dialRetry(t, r.WS, cs[0].NodeID, 30*time.Second)
	for _, o := range cs[1:] {
		testnet.Reach(t, o, c)
		testnet.Reach(t, c, o)
	}
	reachable := time.Since(start)
	c.Send("EntryAnnounce", "rs-after", "", `{"after":"restart"}`)
	for _, o := range cs[1:] {
		if m := o.Expect("EntryAnnounce"); m.ID != "rs-after" || m.Sender != c.NodeID {
			t.Fatalf("%s: got %s", o.NodeID, m.Raw)
		}
	}
	cs[1].Send("EntryAnnounce", "rs-to-restarted", "", "")
	if m := c.Expect("EntryAnnounce"); m.ID != "rs-to-restarted" {
		t.Fatalf("%s: got %s", c.NodeID, m.Raw)
	}
	for _, o := range cs[2:] {
		o.Expect("EntryAnnounce")
	}
	quiet(t, time.Second, append([]*testnet.Client{c}, cs[1:]...)...)

	// Every other relay has it as a peer under the same ID again.
	for _, o := range st.Relays[1:] {
		testnet.Eventually(t, 10*time.Second, o.Name+" to list "+r.Name+" as a relay peer", func() bool {
			peers, _, err := adminClient(t, o).Peers(context.Background())
			if err != nil {
				return false
			}
			return slices.ContainsFunc(peers.Peers, func(p admin.Peer) bool { return p.ID == r.PeerID && p.GsioRelay })
		})
	}
	figure(t, "restart: docker restart of %s took %.1fs; healthy %.1fs and its client reachable from every relay %.1fs after the restart began; same peer ID %s",
		r.Name, restarted.Seconds(), healthyAfter.Seconds(), reachable.Seconds(), short(r.PeerID))
}

func short(id string) string {
	if len(id) > 12 {
		return fmt.Sprintf("%s…%s", id[:6], id[len(id)-6:])
	}
	return id
}
