package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/client"
	"github.com/gsio-net/gsio-relay/testnet"
)

// freePort returns a loopback host:port that was free a moment ago (a
// relay's --public-ws-url must name its port before it starts).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPublic runs a federated relay process (history on) whose
// --public-ws-url is its WebSocket listener.
func startPublic(t *testing.T, boot ...string) (*proc, string, string) {
	t.Helper()
	ws := freePort(t)
	url := "ws://" + ws + "/ws"
	args := []string{"run", "--ws-listen", ws, "--public-ws-url", url, "--admin-listen", "127.0.0.1:0",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--allow-private-addrs", "--data-dir", t.TempDir(),
		"--network", "drain-test", "--max-conns-per-ip", "1000", "--log-level", "warn"}
	for _, b := range boot {
		args = append(args, "--bootstrap", b)
	}
	p := start(t, nil, append(args, "--log-level", "info")...)
	addr := p2pAddr.FindString(p.stderr.String())
	if addr == "" {
		t.Fatalf("no libp2p address in the log:\n%s", p.stderr)
	}
	return p, addr, url
}

// drainNode is one of the nodes of the drained relay, with what it got.
type drainNode struct {
	c   *client.Client
	mu  sync.Mutex
	got map[string]int // broadcast message_id -> times delivered
}

func (n *drainNode) read() {
	for m := range n.c.Messages() {
		if m.Type != "EntryAnnounce" {
			continue
		}
		n.mu.Lock()
		n.got[m.ID]++
		n.mu.Unlock()
	}
}

func (n *drainNode) missing(sent []string) (missing, dups int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range sent {
		switch k := n.got[id]; {
		case k == 0:
			missing++
		case k > 1:
			dups += k - 1
		}
	}
	return missing, dups
}

// TestDrainMovesNodesWithoutLoss is the drain of SPEC section 9 on three
// relay processes with history: 100 nodes (package client, resume on,
// knowing only relay A) sit on relay A while nodes on B and C broadcast;
// `gsio-relay drain` on A moves all 100 to B and C, each node gets every
// broadcast exactly once, and A exits 0. It prints the time to move the
// 100 nodes (from the drain command to the last node bound elsewhere).
func TestDrainMovesNodesWithoutLoss(t *testing.T) {
	const nodes = 100
	pa, boot, urlA := startPublic(t)
	pb, _, urlB := startPublic(t, boot)
	pc, _, urlC := startPublic(t, boot)

	// A learns B's and C's URLs from their presence snapshots.
	cl, err := admin.NewClient(pa.Admin, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 30*time.Second, "relay A to know B's and C's public URLs", func() bool {
		st, err := cl.DrainState(context.Background())
		return err == nil && slices.Equal(st.Relays, sorted([]string{urlB, urlC}))
	})

	ns := make([]*drainNode, nodes)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the clients' Close (cleanups run last first)
	for i := range ns {
		cfg := client.DefaultConfig()
		cfg.URLs = []string{urlA} // the others only from RelayDraining
		cfg.NodeID = fmt.Sprintf("drain-node-%03d", i)
		cfg.Resume = true
		cfg.ResumeMargin = 3 * time.Second // one machine: no clock skew to cover
		cfg.BackoffMin, cfg.BackoffMax = 50*time.Millisecond, time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := client.Dial(ctx, cfg)
		cancel()
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		ns[i] = &drainNode{c: c, got: map[string]int{}}
		wg.Go(ns[i].read)
	}
	t.Logf("%d nodes on relay A", nodes)

	// Broadcasters on B and C, 20 a second each, until stop.
	sb := testnet.Dial(t, "ws://"+pb.WS+"/ws?node_id=sender-b", "sender-b")
	sc := testnet.Dial(t, "ws://"+pc.WS+"/ws?node_id=sender-c", "sender-c")
	testnet.Reach(t, sb, sc)
	var (
		sentMu sync.Mutex
		sent   []string
	)
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for _, s := range []*testnet.Client{sb, sc} {
		senders.Go(func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				id := fmt.Sprintf("%s-%d", s.NodeID, i)
				s.Send("EntryAnnounce", id, "", `{"n":1}`)
				sentMu.Lock()
				sent = append(sent, id)
				sentMu.Unlock()
			}
		})
	}
	time.Sleep(time.Second) // broadcasts flow before the drain

	began := time.Now()
	type result struct {
		out, errOut string
		code        int
	}
	drained := make(chan result, 1)
	go func() {
		o, e, code := runCLI(t, nil, "drain", "--admin", pa.Admin, "--deadline", "60s")
		drained <- result{o, e, code}
	}()
	testnet.Eventually(t, 60*time.Second, "all 100 nodes on relays B and C", func() bool {
		for _, n := range ns {
			if u := n.c.URL(); u != urlB && u != urlC {
				return false
			}
		}
		return true
	})
	moved := time.Since(began)
	onB := 0
	for _, n := range ns {
		if n.c.URL() == urlB {
			onB++
		}
	}
	select {
	case err := <-pa.done:
		pa.done <- err
		if err != nil {
			t.Fatalf("drained relay exited with %v\n%s", err, pa.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("drained relay still running 30 s after its nodes left\n%s", pa.stderr)
	}
	exited := time.Since(began)
	r := <-drained
	if r.code != 0 || !strings.Contains(r.out, "draining") {
		t.Fatalf("drain: exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.errOut)
	}

	time.Sleep(time.Second) // broadcasts flow after the move too
	close(stop)
	senders.Wait()
	sentMu.Lock()
	all := slices.Clone(sent)
	sentMu.Unlock()
	var lost, dups int
	testnet.Eventually(t, 30*time.Second, "every node to have every broadcast", func() bool {
		lost, dups = 0, 0
		for _, n := range ns {
			m, d := n.missing(all)
			lost += m
			dups += d
		}
		return lost == 0
	})
	if dups != 0 {
		t.Fatalf("%d duplicate deliveries reached the application", dups)
	}
	var dropped int64
	for _, n := range ns {
		dropped += n.c.Stats().Duplicates
	}
	b, _ := json.Marshal(map[string]any{"nodes": nodes, "moved_ms": moved.Milliseconds(), "exited_ms": exited.Milliseconds(),
		"on_b": onB, "on_c": nodes - onB, "broadcasts": len(all), "lost": lost, "client_dropped_dups": dropped})
	t.Logf("drain: %s", b)
	t.Logf("drain command output:\n%s", r.out)
}
