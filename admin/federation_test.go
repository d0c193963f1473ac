package admin_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/testnet"
)

// fastScores samples GossipSub scores every 100 ms.
func fastScores() testnet.HarnessOption {
	return testnet.WithNodeConfig(func(_ int, c *node.Config) { c.Gossip.ScoreInspectInterval = 100 * time.Millisecond })
}

func client(t *testing.T, r *testnet.Relay) *admin.Client {
	t.Helper()
	cl, err := admin.NewClient(r.AdminURL, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestThreeRelays: relay 0 lists relays 1 and 2 as peers in the mesh of
// both topics, with latency and score; a node on relay 2 is listed with
// relay 2 as its relay; topics and info agree.
func TestThreeRelays(t *testing.T) {
	h := testnet.StartHarness(t, 3, testnet.Full, testnet.WithAdmin(), fastScores())
	r0, r1, r2 := h.Relays[0], h.Relays[1], h.Relays[2]
	a := testnet.Dial(t, r0.URL+"?node_id=node-a", "node-a")
	c := testnet.Dial(t, r2.URL+"?node_id=node-c", "node-c")
	testnet.Reach(t, a, c)
	cl := client(t, r0)
	ctx := context.Background()
	bt, pt := r0.Node.Topics()
	others := []string{r1.Node.ID().String(), r2.Node.ID().String()}
	slices.Sort(others)

	var peers admin.Peers
	testnet.Eventually(t, 15*time.Second, "relay 0 to list relays 1 and 2 with latency and score", func() bool {
		var err error
		if peers, _, err = cl.Peers(ctx); err != nil {
			t.Fatal(err)
		}
		if len(peers.Peers) != 2 {
			return false
		}
		for _, p := range peers.Peers {
			if p.LatencyMS == nil || p.Score == nil || p.Agent == "" || len(p.Mesh) != 2 {
				return false
			}
		}
		return true
	})
	for i, p := range peers.Peers {
		if p.ID != others[i] {
			t.Errorf("peer %d is %s, want %s", i, p.ID, others[i])
		}
		if !p.GsioRelay || p.Limited || p.Agent != "gsio-relay" || *p.LatencyMS <= 0 {
			t.Errorf("peer %s: relay %v limited %v agent %q latency %v", p.ID, p.GsioRelay, p.Limited, p.Agent, *p.LatencyMS)
		}
		if !slices.Equal(p.Mesh, []string{bt, pt}) || !slices.Equal(p.Subscribed, []string{bt, pt}) {
			t.Errorf("peer %s: mesh %v subscribed %v, want both topics", p.ID, p.Mesh, p.Subscribed)
		}
		if !slices.Contains(p.Protocols, node.DirectProtocol) {
			t.Errorf("peer %s: protocols %v lack %s", p.ID, p.Protocols, node.DirectProtocol)
		}
		if len(p.Addrs) == 0 || !strings.HasPrefix(p.Addrs[0], "/ip4/127.0.0.1/tcp/") || len(p.Connections) != len(p.Addrs) {
			t.Errorf("peer %s: addrs %v connections %+v", p.ID, p.Addrs, p.Connections)
		}
		if (p.Direction != "inbound" && p.Direction != "outbound") || p.ConnectedAt.IsZero() || p.AgeSeconds < 0 {
			t.Errorf("peer %s: direction %q connected at %v age %v", p.ID, p.Direction, p.ConnectedAt, p.AgeSeconds)
		}
	}
	// Relay 0 bootstraps to nobody; relay 2 to relays 0 and 1.
	if peers.Peers[0].Bootstrap || peers.Peers[1].Bootstrap {
		t.Errorf("relay 0 has no bootstrap peers, got %+v", peers.Peers)
	}

	nodes, _, err := cl.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []admin.FederationNode{
		{ID: "node-a", Local: true, Relays: []string{r0.Node.ID().String()}},
		{ID: "node-c", Local: false, Relays: []string{r2.Node.ID().String()}},
	}
	if fmt.Sprint(nodes.Federation) != fmt.Sprint(want) || nodes.Relay != r0.Node.ID().String() {
		t.Errorf("federation nodes %+v (relay %s), want %+v", nodes.Federation, nodes.Relay, want)
	}
	if len(nodes.Local) != 1 || nodes.Local[0].ID != "node-a" || nodes.Local[0].MessagesIn == 0 {
		t.Errorf("local nodes %+v, want node-a with its Reach messages counted", nodes.Local)
	}

	topics, _, err := cl.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(topics.Topics) != 2 || topics.Topics[0].Topic != bt || topics.Topics[1].Topic != pt {
		t.Fatalf("topics %+v, want %s and %s", topics, bt, pt)
	}
	for _, tp := range topics.Topics {
		if !slices.Equal(tp.Mesh, others) || !slices.Equal(tp.Subscribed, others) {
			t.Errorf("topic %s: mesh %v subscribed %v, want %v", tp.Topic, tp.Mesh, tp.Subscribed, others)
		}
	}

	info, _, err := cl.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := admin.Counts{Peers: 2, Relays: 2, Connections: 1, LocalNodes: 1, FederationNodes: 2}
	if info.PeerID != r0.Node.ID().String() || info.Network != "gsio" || info.Standalone || !info.Ready ||
		info.Counts != wantCounts || info.WebSocket != r0.WS.Addr().String() || len(info.ListenAddrs) == 0 || len(info.AnnouncedAddrs) == 0 {
		t.Errorf("info %+v, want counts %+v", info, wantCounts)
	}

	res, raw, err := cl.Reservations(ctx)
	if err != nil || len(res.Reservations) != 0 || !strings.Contains(string(raw), `"reservations": []`) {
		t.Errorf("reservations %s, %v: want an empty list", raw, err)
	}
}

// TestReadyNeedsAFederationPeer: a relay with bootstrap peers is ready
// only while one federation peer is connected.
func TestReadyNeedsAFederationPeer(t *testing.T) {
	h := testnet.StartHarness(t, 2, testnet.Line, testnet.WithAdmin())
	leaf := client(t, h.Relays[1])
	ctx := context.Background()
	if err := leaf.Ready(ctx); err != nil {
		t.Fatalf("relay 1 connected to its bootstrap peer: %v", err)
	}
	h.Relays[0].Stop(t)
	testnet.Eventually(t, testnet.Wait, "relay 1 not ready", func() bool { return leaf.Ready(ctx) != nil })
	err := leaf.Ready(ctx)
	if nr, ok := err.(*admin.NotReadyError); !ok || nr.Reason != "no federation peer connected (1 bootstrap peer configured)" {
		t.Fatalf("Ready: %v, want NotReadyError for the missing bootstrap peer", err)
	}
	info, _, _ := leaf.Info(ctx)
	if info.Ready || info.NotReady == "" {
		t.Errorf("info ready=%v not_ready=%q", info.Ready, info.NotReady)
	}
}

// scrape reads /metrics into "name{labels}" -> value, labels sorted as
// Prometheus writes them.
func scrape(t *testing.T, r *testnet.Relay) map[string]float64 {
	t.Helper()
	resp, err := http.Get(r.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// key builds a series name: key("m", "type", "X", "route", "local").
func key(name string, labels ...string) string {
	var kv []string
	for i := 0; i+1 < len(labels); i += 2 {
		kv = append(kv, labels[i]+`="`+labels[i+1]+`"`)
	}
	sort.Strings(kv)
	if len(kv) == 0 {
		return name
	}
	return name + "{" + strings.Join(kv, ",") + "}"
}

// TestMetricsCountMessages: N broadcasts move the message counters of
// both relays by exactly N, and go-libp2p's metrics are on the registry.
func TestMetricsCountMessages(t *testing.T) {
	const n = 25
	h := testnet.StartHarness(t, 2, testnet.Full, testnet.WithAdmin())
	r0, r1 := h.Relays[0], h.Relays[1]
	defer http.DefaultClient.CloseIdleConnections()
	a := testnet.Dial(t, r0.URL+"?node_id=node-a", "node-a")
	b := testnet.Dial(t, r0.URL+"?node_id=node-b", "node-b")
	c := testnet.Dial(t, r1.URL+"?node_id=node-c", "node-c")
	testnet.Reach(t, a, c)
	testnet.Reach(t, c, a)

	in := func(route string) string {
		return key("gsio_relay_messages_in_total", "type", "EntryAnnounce", "route", route)
	}
	out := func(route string) string {
		return key("gsio_relay_messages_out_total", "type", "EntryAnnounce", "route", route)
	}
	type series struct {
		r   *testnet.Relay
		key string
	}
	watch := []series{
		{r0, in("local")}, {r0, out("local")}, {r0, out("gossip")},
		{r1, in("gossip")}, {r1, out("local")},
	}
	before := make([]float64, len(watch))
	for i, s := range watch {
		m := scrape(t, s.r)
		v, ok := m[s.key]
		if !ok {
			t.Fatalf("relay %d: no series %s", s.r.Index, s.key)
		}
		before[i] = v
	}
	delivBefore := scrape(t, r1)[key("gsio_ws_delivery_seconds_count")]
	for i := range n {
		a.Send("EntryAnnounce", fmt.Sprint("e", i), "", `{"n":1}`)
	}
	for range n {
		b.Expect("EntryAnnounce")
		c.Expect("EntryAnnounce")
	}
	// The counters move right after the frames are queued: poll, and
	// name the counters that are off when giving up.
	deadline := time.Now().Add(testnet.Wait)
	for {
		var off []string
		for i, s := range watch {
			if got := scrape(t, s.r)[s.key] - before[i]; got != n {
				off = append(off, fmt.Sprintf("relay %d %s grew by %v", s.r.Index, s.key, got))
			}
		}
		if len(off) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, want every counter to grow by %d:\n%s", testnet.Wait, n, strings.Join(off, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}

	m0, m1 := scrape(t, r0), scrape(t, r1)
	if m0[key("gsio_relay_bytes_in_total", "route", "local")] <= 0 || m1[key("gsio_relay_bytes_in_total", "route", "gossip")] <= 0 {
		t.Errorf("byte counters did not move")
	}
	// The delivery histogram is observed once per write, and a write
	// carries every frame queued at the time: between 1 and n writes.
	if d := m1[key("gsio_ws_delivery_seconds_count")] - delivBefore; d < 1 || d > n || m0[key("gsio_ws_accepted_total")] != 2 {
		t.Errorf("ws delivery count %v (want 1..%d), accepted %v (want 2)", d, n, m0[key("gsio_ws_accepted_total")])
	}
	if m0[key("gsio_node_directory_nodes")] != 1 || m0[key("gsio_relay_local_nodes")] != 2 {
		t.Errorf("relay 0: directory_nodes %v (want 1: node-c), local_nodes %v (want 2)",
			m0[key("gsio_node_directory_nodes")], m0[key("gsio_relay_local_nodes")])
	}
	// go-libp2p's own metrics share the registry: resource manager,
	// swarm, identify.
	for _, prefix := range []string{"libp2p_rcmgr_", "libp2p_swarm_", "libp2p_identify_"} {
		found := false
		for k := range m0 {
			if strings.HasPrefix(k, prefix) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no %s* metrics on relay 0", prefix)
		}
	}
	if _, ok := m0[key("libp2p_rcmgr_connections", "dir", "inbound", "scope", "system")]; !ok {
		t.Errorf("libp2p_rcmgr_connections missing")
	}

	// Per-node counters: node-b received the n broadcasts and sent nothing.
	cl := client(t, r0)
	testnet.Eventually(t, testnet.Wait, fmt.Sprintf("node-b with %d messages out", n), func() bool {
		nodes, _, err := cl.Nodes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range nodes.Local {
			if l.ID == "node-b" {
				return l.MessagesOut == n && l.MessagesIn == 0
			}
		}
		return false
	})
}
