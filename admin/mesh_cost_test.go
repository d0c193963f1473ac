package admin_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/testnet"
)

// cpuTime is the process's user and system CPU time so far.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMeshViewerCost measures what /ui costs, two ways, against a
// federation of 5 relays with 4 nodes each, all in this process (so the
// inspection requests the sweeps send to the other relays are counted):
//
//   - per request: CPU time of 300 GETs of relay 0's /api/v1/mesh in a
//     row, each one a sweep (Inspect.CacheTTL 0), and of 300 served from
//     the cache; five viewers polling every 1.5 s (the page's period) make
//     3.3 requests a second, of which at most one sweeps (CacheTTL 1 s);
//   - on the clock: five viewers poll for 15 s as the page does; the CPU
//     time above an idle federation of the same length (noisy: the idle
//     federation itself is busy with its test-speed gossip heartbeats).
//
// It also reports the bytes each viewer fetches per second, and the size
// of the answer for a federation of 50 relays. Run it alone, without
// -race:
//
//	GSIO_MESH_COST=1 go test -run TestMeshViewerCost -v ./admin
func TestMeshViewerCost(t *testing.T) {
	if os.Getenv("GSIO_MESH_COST") == "" {
		t.Skip("a measurement: set GSIO_MESH_COST=1")
	}
	const relays, viewers, every, window = 5, 5, 1500 * time.Millisecond, 15 * time.Second
	perRequest := func(cache time.Duration) (d time.Duration) {
		t.Run(fmt.Sprintf("cache-%v", cache), func(t *testing.T) { // its federation stops after it
			h := costHarness(t, relays, cache)
			hc := browserLike()
			defer hc.CloseIdleConnections()
			const n = 300
			c0 := cpuTime(t)
			for range n {
				req, _ := http.NewRequest(http.MethodGet, h.Relays[0].AdminURL+"/api/v1/mesh", nil)
				req.Header.Set("Accept-Encoding", "gzip, deflate, br")
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			d = (cpuTime(t) - c0) / n
		})
		return d
	}
	sweep, cached := perRequest(0), perRequest(time.Hour)
	reqs := float64(viewers) / every.Seconds()
	model := time.Duration(float64(sweep) + (reqs-1)*float64(cached))
	t.Logf("one /api/v1/mesh request: %v when it sweeps the %d relays, %v from the cache", sweep.Round(time.Microsecond), relays, cached.Round(time.Microsecond))
	t.Logf("%d viewers every %v: %.1f requests/s, at most 1 sweep/s: %v CPU per second in all (%.2f%% of a core), %v per viewer per second",
		viewers, every, reqs, model.Round(time.Microsecond), 100*model.Seconds(), (model / viewers).Round(time.Microsecond))

	h := costHarness(t, relays, time.Second)
	base := h.Relays[0].AdminURL
	cl := client(t, h.Relays[0])
	time.Sleep(2 * time.Second) // settle
	c0 := cpuTime(t)
	time.Sleep(window)
	idle := cpuTime(t) - c0

	var wire, polls atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var wg sync.WaitGroup
	c1 := cpuTime(t)
	for v := range viewers {
		wg.Go(func() {
			hc := browserLike()
			get := func(path string) {
				req, _ := http.NewRequest(http.MethodGet, base+path, nil)
				req.Header.Set("Accept-Encoding", "gzip, deflate, br")
				resp, err := hc.Do(req)
				if err != nil {
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				wire.Add(n)
			}
			for _, p := range []string{"/ui/", "/ui/mesh.js", "/ui/mesh.css"} {
				get(p)
			}
			time.Sleep(time.Duration(v) * every / viewers) // viewers out of step
			for ctx.Err() == nil {
				get("/api/v1/mesh")
				polls.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(every):
				}
			}
			hc.CloseIdleConnections()
		})
	}
	wg.Wait()
	busy := cpuTime(t) - c1
	extra := busy - idle
	perViewer := time.Duration(float64(extra) / viewers / window.Seconds())
	m, raw, err := cl.Mesh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("on the clock, %d relays, %d viewers polling every %v for %v: %d polls; one /api/v1/mesh answer is %d bytes before gzip (%d relays, %d links)",
		relays, viewers, every, window, polls.Load(), len(raw), len(m.Relays), len(m.Links))
	t.Logf("CPU: idle federation %v, with viewers %v: +%v in all, %v per viewer per second (%.2f%% of a core); %.0f bytes per viewer per second",
		idle.Round(time.Millisecond), busy.Round(time.Millisecond), extra.Round(time.Millisecond), perViewer.Round(time.Microsecond),
		100*perViewer.Seconds(), float64(wire.Load())/viewers/window.Seconds())

	big := bigView(50, 10)
	b, _ := json.MarshalIndent(admin.MeshFromView(big), "", "  ")
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	zw.Write(b)
	zw.Close()
	t.Logf("a federation of 50 relays with 10 relay links each: an answer of %d bytes, %d gzipped: %.0f bytes per viewer per second",
		len(b), z.Len(), float64(z.Len())/every.Seconds())
}

// browserLike is an HTTP client that, like a browser, asks for gzip and
// lets us count the bytes on the wire (the body is not decompressed).
func browserLike() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}
}

// costHarness is a federation of n relays with 4 nodes each whose relay
// 0 keeps its federation view for cache.
func costHarness(t *testing.T, n int, cache time.Duration) *testnet.Harness {
	t.Helper()
	h := testnet.StartHarness(t, n, testnet.Full, testnet.WithAdmin(),
		testnet.WithNodeConfig(func(i int, c *node.Config) { c.Inspect.CacheTTL, c.Inspect.Rate, c.Inspect.Burst = cache, 1000, 1000 }))
	for i, r := range h.Relays {
		for k := range 4 {
			id := fmt.Sprintf("node-%d-%d", i, k)
			testnet.Dial(t, r.URL+"?node_id="+id, id)
		}
	}
	cl := client(t, h.Relays[0])
	testnet.Eventually(t, 15*time.Second, "every relay answering with its nodes", func() bool {
		m, _, err := cl.Mesh(context.Background())
		return err == nil && m.Totals.Reachable == n && m.Totals.Nodes == 4*n
	})
	return h
}

// bigView is a view of n relays, each connected to k others.
func bigView(n, k int) *node.MeshView {
	ids := make([]peer.ID, n)
	for i := range ids {
		priv, _, _ := crypto.GenerateEd25519Key(nil)
		ids[i], _ = peer.IDFromPrivateKey(priv)
	}
	now := time.Now()
	v := &node.MeshView{Self: ids[0], Network: "gsio", At: now}
	for i, id := range ids {
		lat := 12.5
		s := &node.Summary{PeerID: id.String(), Version: "v1.2.3", Network: "gsio", StartedMS: now.Add(-time.Hour).UnixMilli(), AtMS: now.UnixMilli(),
			LocalNodes: 100, Mesh: map[string][]string{}, Counters: &node.Counters{MessagesIn: 1e6, MessagesOut: 3e6, Errors: 12},
			Rates: &node.Rates{WindowMS: 5000, MessagesIn: 120.4, MessagesOut: 360.2, Errors: 0.2}}
		for j := 1; j <= k; j++ {
			p := ids[(i+j*(n/k))%n].String()
			s.Peers = append(s.Peers, node.SummaryPeer{ID: p, Direction: "outbound", LatencyMS: &lat, Relay: true})
			s.Mesh["gsio/gsio/broadcast/1"] = append(s.Mesh["gsio/gsio/broadcast/1"], p)
		}
		s.PeersTotal = len(s.Peers)
		v.Relays = append(v.Relays, node.RelayView{ID: id, Self: i == 0, State: node.RelayOK, InDirectory: i > 0, LastSeen: now,
			DirNodes: 100, RTT: time.Millisecond, AnsweredAt: now, Summary: s})
	}
	return v
}
