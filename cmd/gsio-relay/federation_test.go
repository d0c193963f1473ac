package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/testnet"
)

var p2pAddr = regexp.MustCompile(`/ip4/127\.0\.0\.1/tcp/\d+/p2p/\w+`)

// startFederated runs a relay process on loopback with a data dir and
// bootstrap addresses, and returns it with its libp2p address.
func startFederated(t *testing.T, dataDir string, boot ...string) (*proc, string) {
	t.Helper()
	args := []string{"run", "--ws-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--allow-private-addrs", "--data-dir", dataDir, "--network", "proc-test"}
	for _, b := range boot {
		args = append(args, "--bootstrap", b)
	}
	p := start(t, nil, args...)
	addr := p2pAddr.FindString(p.stderr.String())
	if addr == "" || p.PeerID == "" {
		t.Fatalf("no libp2p address or peer id in the log:\n%s", p.stderr)
	}
	return p, addr
}

// nodeList asks relay's client c for the federation's node list; "" when
// the relay refuses (NodeListRequest is answered at most 5 times a
// second, and the caller polls faster).
func nodeList(t *testing.T, c *testnet.Client, ref string) string {
	t.Helper()
	c.Send("NodeListRequest", ref, "", "")
	for {
		m := c.Next()
		switch m.Type {
		case "NodeListResponse":
			return string(m.Payload)
		case "RelayError": // rate_limited: answered at most 5 times a second
			return ""
		}
	}
}

// TestProcessesFederateSurviveKillAndRestart runs three gsio-relay
// processes: the third is killed (no goodbye), its node expires at the
// others, and restarted with the same data dir it has the same peer ID and
// its new node is reachable.
func TestProcessesFederateSurviveKillAndRestart(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	out, _, code := runCLI(t, nil, "id", "--data-dir", dirs[2])
	wantID := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(wantID, "12D3KooW") {
		t.Fatalf("id: exit %d, %q", code, out)
	}

	p0, a0 := startFederated(t, dirs[0])
	p1, _ := startFederated(t, dirs[1], a0)
	p2, _ := startFederated(t, dirs[2], a0)
	if p2.PeerID != wantID {
		t.Fatalf("relay peer id %s, `gsio-relay id` said %s", p2.PeerID, wantID)
	}
	url := func(p *proc, id string) string { return "ws://" + p.WS + "/ws?node_id=" + id }
	c0 := testnet.Dial(t, url(p0, "node-0"), "node-0")
	c1 := testnet.Dial(t, url(p1, "node-1"), "node-1")
	c2 := testnet.Dial(t, url(p2, "node-2"), "node-2")
	testnet.Reach(t, c1, c2) // relay 1 -> relay 2 through presence and direct streams
	testnet.Reach(t, c2, c0)

	c0.Send("EntryAnnounce", "b1", "", `{"x":1}`)
	for _, c := range []*testnet.Client{c1, c2} {
		if m := c.Expect("EntryAnnounce"); m.ID != "b1" {
			t.Fatalf("%s got %s", c.NodeID, m.Raw)
		}
	}

	if err := p2.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	want := `{"nodes":["node-0","node-1"]}`
	for i := 0; ; i++ {
		if got := nodeList(t, c0, fmt.Sprint("l", i)); got == want {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("node-2 still listed 30 s after its relay was killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("killed relay's node gone after %v", time.Since(killed).Round(100*time.Millisecond))
	p2b, _ := startFederated(t, dirs[2], a0)
	if p2b.PeerID != wantID {
		t.Fatalf("restarted relay has peer id %s, want %s", p2b.PeerID, wantID)
	}
	c2b := testnet.Dial(t, url(p2b, "node-2b"), "node-2b")
	restarted := time.Now()
	c1b := testnet.Dial(t, url(p1, "node-1b"), "node-1b") // a client with an empty queue
	testnet.Reach(t, c1b, c2b)
	t.Logf("node on the restarted relay reachable after %v", time.Since(restarted).Round(100*time.Millisecond))
	c2b.Send("EntryAnnounce", "b2", "", "")
	got := []string{}
	for _, c := range []*testnet.Client{c0, c1b} {
		for {
			m := c.Next()
			if m.Type == "EntryAnnounce" {
				got = append(got, m.ID)
				break
			}
		}
	}
	if !slices.Equal(got, []string{"b2", "b2"}) {
		t.Fatalf("broadcast from the restarted relay: %v", got)
	}
}
