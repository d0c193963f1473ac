package adversary_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/testnet"
	"github.com/gsio-net/gsio-relay/testnet/adversary"
)

// End-to-end attacks: relays of the in-process harness (node, router,
// WebSocket server) and real WebSocket clients. The node-level suite is
// node/adversary_test.go.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

func long() bool { return os.Getenv("GSIO_ADVERSARY_LONG") != "" }

// reader is a WebSocket client that reads as fast as it can and counts
// what it gets, by sender prefix; it never queues.
type reader struct {
	conn *websocket.Conn
	done chan struct{}
	wmu  sync.Mutex

	mu     sync.Mutex
	counts map[string]int // by sender prefix (the part before the first '-')
	ids    map[string]int // honest message ids seen
	err    error          // how the connection ended
}

func dialReader(t *testing.T, url string) *reader {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{conn: conn, done: make(chan struct{}), counts: map[string]int{}, ids: map[string]int{}}
	go func() {
		defer close(r.done)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
			env, err := message.Parse(data)
			if err != nil {
				continue
			}
			prefix, _, _ := strings.Cut(env.Sender, "-")
			r.mu.Lock()
			r.counts[prefix]++
			if prefix == "honest" {
				r.ids[env.ID]++
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = conn.Close()
		<-r.done
	})
	return r
}

// send writes one GSIO message from node id sender.
func (r *reader) send(t *testing.T, typ, id, sender, recipient string) {
	t.Helper()
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if err := r.conn.WriteMessage(websocket.TextMessage, message.Build(typ, id, sender, recipient, []byte(`{"honest":true}`))); err != nil {
		t.Errorf("%s: write: %v", sender, err)
	}
}

func (r *reader) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[prefix]
}

func (r *reader) closed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// settle waits until the process's goroutines are back to the probe's
// baseline (plus slack) once the attacker is gone, then stops the probe.
func settle(t *testing.T, p *adversary.Probe, slack int) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if g := adversary.Take(true).Goroutines; g > p.Before.Goroutines+slack {
			return fmt.Errorf("%d goroutines, baseline %d (+%d allowed)", g, p.Before.Goroutines, slack)
		}
		return nil
	})
	p.Stop()
}

// evilAt starts a hostile peer connected to relay r, closed at the end.
func evilAt(t *testing.T, r *testnet.Relay) *adversary.Peer {
	t.Helper()
	p, err := adversary.New(adversary.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ai := peer.AddrInfo{ID: r.Node.ID(), Addrs: r.Node.AnnouncedAddrs()}
	if err := p.Connect(context.Background(), ai); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitGossip(context.Background(), r.Node.ID()); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFloodReachesClients (attack c, end to end): one plain GossipSub peer
// writes 100 batches of 1,024 broadcasts to relay 0 as fast as the
// connection takes them (about 0.6 s). Before the per-origin rate, relay
// 1 delivered all 102,400 to its clients and a client reading as fast as
// it could was closed 1008 (slow consumer), losing the honest broadcasts
// behind them. With the defaults (10,000/s, burst 20,000) it stays
// connected and gets every honest broadcast.
func TestFloodReachesClients(t *testing.T) {
	h := testnet.StartHarness(t, 2, testnet.Full)
	probe := adversary.StartProbe(20 * time.Millisecond)
	defer probe.Stop()
	rd := dialReader(t, h.Relays[1].URL+"?node_id=reader-1")
	// The sender reads (and drops) as fast as it can too: it gets the
	// flood on relay 0.
	sender := dialReader(t, h.Relays[0].URL+"?node_id=honest-0")
	h.WaitNodes(10*time.Second, "honest-0", "reader-1")
	evil := evilAt(t, h.Relays[0])

	batches := 100
	if long() {
		batches = 400
	}
	stop := make(chan struct{})
	sent := make(chan int)
	go func() { // honest broadcasts every 20 ms, during and after the flood
		n := 0
		defer func() { sent <- n }()
		for {
			sender.send(t, "EntryAnnounce", fmt.Sprint("h-", n), "honest-0", "")
			n++
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	flooded, err := adversary.Flood(context.Background(), evil, h.Relays[0].Node.ID(), "gsio", batches, 1024)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d broadcasts written in %v", flooded, time.Since(start).Round(time.Millisecond))
	// Until the relays are done with the flood.
	last, since := -1, time.Now()
	testutil.CheckFor(t, 30*time.Second, func() error {
		if k := rd.count("flood"); k != last {
			last, since = k, time.Now()
		}
		if time.Since(since) < time.Second {
			return errors.New("flood still arriving")
		}
		return nil
	})
	close(stop)
	n := <-sent
	testutil.CheckFor(t, 10*time.Second, func() error {
		if err := rd.closed(); err != nil {
			return nil // reported below
		}
		if k := rd.count("honest"); k < n {
			return fmt.Errorf("reader got %d of %d honest broadcasts", k, n)
		}
		return nil
	})
	for _, c := range []*reader{rd, sender} {
		if err := c.closed(); err != nil {
			t.Fatalf("a reading client was disconnected (%v) after %d flood messages", err, c.count("flood"))
		}
	}
	if k := rd.count("honest"); k != n {
		t.Fatalf("reader got %d honest broadcasts, want %d", k, n)
	}
	t.Logf("reader got %d of %d flood messages and all %d honest broadcasts", rd.count("flood"), flooded, n)
	_ = evil.Close()
	settle(t, probe, 40)
	line := adversary.Line("c flood (WebSocket)", fmt.Sprintf("%d/%d", n, n), "- (ignored beyond the rate)", probe)
	t.Log(line)
	if err := adversary.Report(line); err != nil {
		t.Error(err)
	}
}

// TestNodeListBounded (h): relays of the attacker announce node ids of
// 256 bytes until the federation's node list is several MiB; a client's
// NodeListRequest is answered in pages within the router's bound (1 MiB)
// and the client stays connected.
func TestNodeListBounded(t *testing.T) {
	h := testnet.StartHarness(t, 1, testnet.Full)
	probe := adversary.StartProbe(20 * time.Millisecond)
	defer probe.Stop()
	evil := evilAt(t, h.Relays[0])
	keys, err := adversary.NewKeys(2)
	if err != nil {
		t.Fatal(err)
	}
	if long() {
		keys, _ = adversary.NewKeys(6) // 15 MiB of ids
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, err := adversary.FillPresence(ctx, evil, h.Relays[0].Node.ID(), "gsio", keys, 10000, 256, "big", 8*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := len(keys) * 10000
	testutil.CheckFor(t, 20*time.Second, func() error {
		if k := len(h.Relays[0].Node.RemoteNodes()); k < want {
			return fmt.Errorf("relay holds %d of the %d announced ids", k, want)
		}
		return nil
	})
	c := testnet.Dial(t, h.Relays[0].URL+"?node_id=asker", "asker")
	c.Send("NodeListRequest", "l-1", "", "")
	total, pages := 0, 0
	for total < 1<<20-64<<10 {
		m := c.Expect("NodeListResponse")
		total += len(m.Raw)
		pages++
		if len(m.Raw) > 80<<10 {
			t.Fatalf("a page of %d bytes", len(m.Raw))
		}
	}
	testutil.Stays(t, 300*time.Millisecond, func() error {
		if c.Pending() > 0 {
			m := c.Next()
			if m.Type == "NodeListResponse" {
				total += len(m.Raw)
				pages++
			}
		}
		if total > 1<<20+64<<10 {
			return fmt.Errorf("%d bytes of NodeListResponse, over the 1 MiB bound", total)
		}
		return nil
	})
	c.Send("Ping", "p-1", "asker", "")
	if m := c.Expect("Ping"); m.ID != "p-1" {
		t.Fatalf("after the node list: %s", m.Raw)
	}
	t.Logf("node list of %d ids (%d MiB) answered in %d pages, %d KiB", want, want*258>>20, pages, total>>10)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = evil.Close()
	settle(t, probe, 40)
	line := adversary.Line("h node list", "-", "- (bounded answer)", probe)
	t.Log(line)
	if err := adversary.Report(line); err != nil {
		t.Error(err)
	}
}
