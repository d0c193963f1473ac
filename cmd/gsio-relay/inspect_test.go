package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/testnet"
)

// federated are the flags of a federated relay process on loopback.
func federated(t *testing.T, extra ...string) []string {
	return append([]string{"run", "--data-dir", t.TempDir(), "--ws-listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--allow-private-addrs"}, extra...)
}

// inspect runs an inspection command against p and fails on a non-zero
// exit.
func inspect(t *testing.T, p *proc, args ...string) string {
	t.Helper()
	out, stderr, code := runCLI(t, nil, append(args, "--admin", p.Admin)...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	return out
}

// inspectJSON runs an inspection command with --json and decodes it.
func inspectJSON(t *testing.T, p *proc, v any, args ...string) {
	t.Helper()
	out := inspect(t, p, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%v --json: %v\n%s", args, err, out)
	}
}

// bootAddr is how another relay bootstraps to p: its announced address
// with /p2p/<peer id>, read from `info --json`.
func bootAddr(t *testing.T, p *proc) string {
	t.Helper()
	var info admin.Info
	inspectJSON(t, p, &info, "info")
	if len(info.AnnouncedAddrs) == 0 || info.PeerID == "" {
		t.Fatalf("info without peer id or address: %+v", info)
	}
	return info.AnnouncedAddrs[0] + "/p2p/" + info.PeerID
}

// fits fails unless every line of out is at most 80 columns.
func fits(t *testing.T, what, out string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("%s: line of %d columns:\n%s\nin:\n%s", what, n, l, out)
		}
	}
}

// tableRows returns the rows of the first table in out (after its header
// line that starts with first) split into cells on runs of 2+ spaces.
func tableRows(out, first string) [][]string {
	var rows [][]string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, first+" "):
			in = true
		case in && strings.TrimSpace(l) == "":
			return rows
		case in:
			var cells []string
			for _, c := range strings.Split(l, "  ") {
				if c = strings.TrimSpace(c); c != "" {
					cells = append(cells, c)
				}
			}
			rows = append(rows, cells)
		}
	}
	return rows
}

// TestInspectThreeRelays is what a new user does: three relays, a node on
// the first and one on the third, then peers, nodes, topics and info, as
// tables and as JSON.
func TestInspectThreeRelays(t *testing.T) {
	p1 := start(t, nil, federated(t)...)
	b1 := bootAddr(t, p1)
	p2 := start(t, nil, federated(t, "--bootstrap", b1)...)
	b2 := bootAddr(t, p2)
	p3 := start(t, nil, federated(t, "--bootstrap", b1, "--bootstrap", b2)...)
	id2, id3 := peerID(t, p2), peerID(t, p3)

	a := testnet.Dial(t, "ws://"+p1.WS+"/ws?node_id=node-a", "node-a")
	c := testnet.Dial(t, "ws://"+p3.WS+"/ws?node_id=node-c", "node-c")
	testnet.Reach(t, a, c)

	// peers on relay 1: relays 2 and 3, each in the mesh of both topics.
	var peers admin.Peers
	testnet.Eventually(t, 30*time.Second, "relay 1 to list relays 2 and 3 in both meshes", func() bool {
		inspectJSON(t, p1, &peers, "peers")
		if len(peers.Peers) != 2 {
			return false
		}
		for _, p := range peers.Peers {
			if len(p.Mesh) != 2 || !p.GsioRelay || p.LatencyMS == nil {
				return false
			}
		}
		return true
	})
	ids := []string{peers.Peers[0].ID, peers.Peers[1].ID}
	if want := []string{id2, id3}; !slices.Equal(ids, sorted(want)) {
		t.Fatalf("relay 1 peers %v, want %v", ids, sorted(want))
	}
	table := inspect(t, p1, "peers")
	fits(t, "peers", table)
	rows := tableRows(table, "PEER")
	if len(rows) != len(peers.Peers) {
		t.Fatalf("peers table has %d rows, JSON %d peers:\n%s", len(rows), len(peers.Peers), table)
	}
	for i, p := range peers.Peers {
		// PEER RELAY AGE RTT SCORE MESH ADDRESS; age, RTT and score move
		// between the two calls.
		r := rows[i]
		if len(r) != 7 || r[0] != shortID(p.ID, false) || r[1] != "yes" || r[5] != "bcast,pres" || r[6] != compactAddr(p.Addrs[0]) {
			t.Errorf("peers row %q does not match %+v", r, p)
		}
	}
	wide := inspect(t, p1, "peers", "--wide")
	for _, p := range peers.Peers {
		if !strings.Contains(wide, p.ID) || !strings.Contains(wide, "gsio/gsio/broadcast/1,gsio/gsio/presence/1") {
			t.Errorf("peers --wide lacks %s or the full topic names:\n%s", p.ID, wide)
		}
	}

	// nodes on relay 1: node-c held by relay 3.
	var nodes admin.Nodes
	inspectJSON(t, p1, &nodes, "nodes")
	want := []admin.FederationNode{
		{ID: "node-a", Local: true, Relays: []string{nodes.Relay}},
		{ID: "node-c", Relays: []string{id3}},
	}
	if fmt.Sprint(nodes.Federation) != fmt.Sprint(want) || len(nodes.Local) != 1 || nodes.Local[0].ID != "node-a" {
		t.Fatalf("relay 1 nodes %+v, want federation %+v and node-a local", nodes, want)
	}
	table = inspect(t, p1, "nodes")
	fits(t, "nodes", table)
	local := tableRows(table, "NODE")
	if len(local) != 1 || local[0][0] != "node-a" || local[0][5] != nodes.Local[0].Remote {
		t.Errorf("local nodes table %q, want node-a from %s:\n%s", local, nodes.Local[0].Remote, table)
	}
	fed := tableRows(table[strings.Index(table, "Federation nodes"):], "NODE")
	wantFed := [][]string{{"node-a", shortID(nodes.Relay, false) + " (this relay)"}, {"node-c", shortID(id3, false)}}
	if fmt.Sprint(fed) != fmt.Sprint(wantFed) {
		t.Errorf("federation table %q, want %q:\n%s", fed, wantFed, table)
	}
	table = inspect(t, p3, "nodes")
	if !strings.Contains(table, "node-c  "+shortID(id3, false)+" (this relay)") {
		t.Errorf("relay 3 does not list node-c as its own:\n%s", table)
	}

	// topics and info.
	var topics admin.Topics
	inspectJSON(t, p1, &topics, "topics")
	table = inspect(t, p1, "topics")
	fits(t, "topics", table)
	trows := tableRows(table, "TOPIC")
	if len(topics.Topics) != 2 || len(trows) != 2 {
		t.Fatalf("topics %+v, table:\n%s", topics, table)
	}
	for i, tp := range topics.Topics {
		if r := trows[i]; r[0] != tp.Topic || r[1] != fmt.Sprint(len(tp.Subscribed)) || r[2] != fmt.Sprint(len(tp.Mesh)) || len(tp.Mesh) != 2 {
			t.Errorf("topics row %q vs %+v", r, tp)
		}
	}
	var info admin.Info
	inspectJSON(t, p1, &info, "info")
	table = inspect(t, p1, "info")
	fits(t, "info", table)
	for _, s := range []string{info.PeerID, "Ready         yes", "Peers         2 (2 gsio relays)", "Federation    2 nodes", info.WebSocket} {
		if !strings.Contains(table, s) {
			t.Errorf("info lacks %q:\n%s", s, table)
		}
	}
	if info.Counts.Peers != 2 || info.Counts.LocalNodes != 1 || info.Counts.FederationNodes != 2 || !info.Ready {
		t.Errorf("info counts %+v ready %v", info.Counts, info.Ready)
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// peerID is p's peer ID from `info --json`.
func peerID(t *testing.T, p *proc) string {
	t.Helper()
	var info admin.Info
	inspectJSON(t, p, &info, "info")
	return info.PeerID
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// oneLine fails unless s is exactly one line containing want, without a
// stack trace or a raw decode error.
func oneLine(t *testing.T, what, s, want string) {
	t.Helper()
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") || !strings.Contains(s, want) ||
		strings.Contains(s, "goroutine ") || strings.Contains(s, "panic") || strings.Contains(s, "invalid character") {
		t.Errorf("%s: stderr %q, want one line with %q", what, s, want)
	}
}

func TestHealthExitCodes(t *testing.T) {
	// Ready: a standalone relay.
	p := start(t, nil, standalone...)
	out, stderr, code := runCLI(t, nil, "health", "--admin", p.Admin)
	if code != 0 || out != "" {
		t.Errorf("health of a ready relay: exit %d, stdout %q", code, out)
	}
	oneLine(t, "ready", stderr, "ready")
	// The address from the environment, as in a relay's container.
	if _, stderr, code := runCLI(t, []string{"GSIO_RELAY_ADMIN_LISTEN=" + p.Admin}, "health"); code != 0 {
		t.Errorf("health with GSIO_RELAY_ADMIN_LISTEN: exit %d, %s", code, stderr)
	}

	// Not ready: a bootstrap peer that is not there.
	idOut, _, _ := runCLI(t, nil, "id", "--data-dir", filepath.Join(t.TempDir(), "ghost"))
	ghost := "/ip4/127.0.0.1/tcp/1/p2p/" + strings.TrimSpace(idOut)
	q := start(t, nil, federated(t, "--bootstrap", ghost)...)
	_, stderr, code = runCLI(t, nil, "health", "--admin", "http://"+q.Admin)
	if code != 1 {
		t.Errorf("health with no federation peer: exit %d, want 1 (%s)", code, stderr)
	}
	oneLine(t, "not ready", stderr, "not ready: no federation peer connected (1 bootstrap peer configured)")

	// Unreachable.
	_, stderr, code = runCLI(t, nil, "health", "--admin", closedPort(t))
	if code != 2 {
		t.Errorf("health of nothing: exit %d, want 2 (%s)", code, stderr)
	}
	oneLine(t, "unreachable", stderr, "unreachable")
	// Something that is not an admin API (the relay's WebSocket port).
	_, stderr, code = runCLI(t, nil, "health", "--admin", p.WS)
	if code != 2 {
		t.Errorf("health of a WebSocket port: exit %d, want 2 (%s)", code, stderr)
	}
	oneLine(t, "websocket port", stderr, "HTTP 404")
}

func TestAdminBeyondLoopbackNeedsToken(t *testing.T) {
	beyond := []string{"run", "--standalone", "--ws-listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"}
	_, stderr, code := runCLI(t, nil, beyond...)
	if code == 0 {
		t.Fatal("relay started with a non-loopback admin address and no token")
	}
	oneLine(t, "no token", stderr, "--admin-token")

	p := start(t, []string{"GSIO_RELAY_ADMIN_TOKEN=s3cret"}, beyond...)
	base := admin.URLFromListen(p.Admin)
	defer http.DefaultClient.CloseIdleConnections()
	for path, want := range map[string]int{"/api/v1/info": 401, "/api/v1/peers": 401, "/metrics": 401, "/healthz": 200, "/readyz": 200} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without token: %d, want %d", path, resp.StatusCode, want)
		}
	}
	_, stderr, code = runCLI(t, nil, "info", "--admin", base)
	if code == 0 {
		t.Error("info without the token succeeded")
	}
	oneLine(t, "info without token", stderr, "unauthorized")
	if _, stderr, code := runCLI(t, []string{"GSIO_RELAY_ADMIN_TOKEN=s3cret"}, "info", "--admin", base); code != 0 {
		t.Errorf("info with the token: exit %d: %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, nil, "health", "--admin", base); code != 0 {
		t.Errorf("health needs no token: exit %d: %s", code, stderr)
	}
}

func TestInspectErrorsAreOneLine(t *testing.T) {
	p := start(t, nil, standalone...)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"peers", "--admin", closedPort(t)}, "unreachable"},
		{[]string{"nodes", "--admin", p.WS}, "--admin-listen"},
		{[]string{"info", "--admin", "http://[::1"}, "want http://HOST:PORT"},
		{[]string{"topics", "--admin", p.Admin, "extra"}, "takes no arguments"},
	}
	for _, tc := range cases {
		out, stderr, code := runCLI(t, nil, tc.args...)
		if code == 0 || out != "" {
			t.Errorf("%v: exit %d, stdout %q", tc.args, code, out)
		}
		oneLine(t, fmt.Sprint(tc.args), stderr, tc.want)
	}
	// A standalone relay still answers every command.
	for _, cmd := range []string{"info", "peers", "nodes", "topics"} {
		fits(t, cmd, inspect(t, p, cmd))
	}
}

// TestTablesFit80Columns feeds the table writers realistic worst cases.
func TestTablesFit80Columns(t *testing.T) {
	id := func(s string) string { return "12D3KooW" + strings.Repeat(s, 44) }
	ms, score := 0.312, -12.5
	long := 1234.5
	now := time.Now()
	peers := admin.Peers{Peers: []admin.Peer{
		{ID: id("A"), Addrs: []string{"/ip4/203.0.113.10/tcp/4001"}, AgeSeconds: 86399, LatencyMS: &ms, Score: &score,
			GsioRelay: true, Mesh: []string{"gsio/gsio/broadcast/1", "gsio/gsio/presence/1"}},
		{ID: id("B"), Addrs: []string{"/ip4/198.51.100.7/udp/4001/quic-v1"}, AgeSeconds: 59, LatencyMS: &long},
	}}
	nodes := admin.Nodes{Relay: id("A"),
		Local: []admin.LocalNode{{ID: "3f9c1a52-7d4e-4b8e-9a61-0c2d5e8f7b13", Remote: "198.51.100.200:54321", AgeSeconds: 4000,
			MessagesIn: 1234567, MessagesOut: 7654321, QueueFrames: 4096, ConnectedAt: now}},
		Federation: []admin.FederationNode{
			{ID: "3f9c1a52-7d4e-4b8e-9a61-0c2d5e8f7b13", Local: true, Relays: []string{id("A")}},
			{ID: "node-c", Relays: []string{id("B"), id("C")}},
		}}
	topics := admin.Topics{Topics: []admin.Topic{{Topic: "gsio/gsio/broadcast/1",
		Subscribed: []string{id("B"), id("C"), id("D"), id("E")}, Mesh: []string{id("B"), id("C"), id("D"), id("E")}}}}
	var b strings.Builder
	for name, f := range map[string]func() error{
		"peers":  func() error { return writePeers(&b, peers, false) },
		"nodes":  func() error { return writeNodes(&b, nodes, false) },
		"topics": func() error { return writeTopics(&b, topics, false) },
	} {
		b.Reset()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		fits(t, name, b.String())
	}
	for _, tc := range []struct {
		got, want string
	}{
		{shortID(id("A"), false), "12D3…AAAAAA"},
		{shortID(id("A"), true), id("A")},
		{fmtAge(59.9), "59s"}, {fmtAge(133), "2m13s"}, {fmtAge(3*3600 + 125), "3h02m"}, {fmtAge(5*86400 + 4*3600), "5d04h"},
		{compactAddr("/ip4/198.51.100.7/udp/4001/quic-v1"), "198.51.100.7:4001/quic"},
		{compactAddr("/ip6/2001:db8::1/tcp/4001/ws"), "[2001:db8::1]:4001/ws"},
		{compactAddr("/ip4/1.2.3.4/tcp/4001/p2p/" + id("R") + "/p2p-circuit"), "1.2.3.4:4001/circuit"},
		{compactAddr("/unix/tmp/x.sock"), "/unix/tmp/x.sock"},
		{fmtRTT(nil), "-"}, {fmtRTT(&ms), "312µs"}, {fmtRTT(&long), "1.2s"},
		{cutRunes("3f9c1a52-7d4e-4b8e-9a61-0c2d5e8f7b13", 24, false), "3f9c1a52-7d4e-4b8e-9a61…"},
		{idList([]string{id("B"), id("C"), id("D"), id("E")}, 3, false), "12D3…BBBBBB 12D3…CCCCCC 12D3…DDDDDD +1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
