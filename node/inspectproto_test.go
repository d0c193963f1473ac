package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gsio-net/gsio-relay/internal/testutil"
)

// newCountingNode is newNode with counters that grow by 10 messages in,
// 20 out and 1 error every time they are read.
func newCountingNode(t testing.TB, name string, mod func(*Config)) *tnode {
	t.Helper()
	cfg := testConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	var k atomic.Uint64
	count := func() Counters {
		n := k.Add(1)
		return Counters{MessagesIn: 10 * n, MessagesOut: 20 * n, Errors: n}
	}
	return startNode(t, name, cfg, WithCounters(count), WithVersion("v-"+name),
		WithHistoryState(func() any { return map[string]int{"held": 7} }))
}

// waitRelays waits until each node's directory lists every other one.
func waitRelays(t testing.TB, ns ...*tnode) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, func() error {
		for _, n := range ns {
			if k := len(n.RemoteRelays()); k != len(ns)-1 {
				return fmt.Errorf("%s: %d relays in its directory, want %d", n.name, k, len(ns)-1)
			}
		}
		return nil
	})
}

func relayView(t testing.TB, v *MeshView, id peer.ID) RelayView {
	t.Helper()
	for _, r := range v.Relays {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("relay %s not in the view", id)
	return RelayView{}
}

// TestInspectSweep: four relays in a line a-b-c-d; a sweeps the whole
// federation (dialling c and d by their presence addresses), with each
// one's nodes, peers, mesh links, counters, rates and history; then d
// stops and the view shows it unreachable, then gone.
func TestInspectSweep(t *testing.T) {
	a, b, c, d := newCountingNode(t, "a", nil), newCountingNode(t, "b", nil), newCountingNode(t, "c", nil), newCountingNode(t, "d", nil)
	connectLine(t, a, b, c, d)
	b.NodeJoined("bob-1", nil)
	b.NodeJoined("bob-2", nil)
	c.NodeJoined("carol", nil)
	waitRelays(t, a, b, c, d)
	waitRemote(t, a, "carol", true, 5*time.Second)
	time.Sleep(2 * inspectSampleTick) // two counter samples: rates

	ctx := context.Background()
	v, err := a.MeshView(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Self != a.ID() || len(v.Relays) != 4 || !v.Relays[0].Self || v.Relays[0].ID != a.ID() {
		t.Fatalf("view of %d relays, first %+v", len(v.Relays), v.Relays[0])
	}
	wantNodes := map[peer.ID]int{a.ID(): 0, b.ID(): 2, c.ID(): 1, d.ID(): 0}
	for _, n := range []*tnode{a, b, c, d} {
		r := relayView(t, v, n.ID())
		if r.State != RelayOK || r.Summary == nil {
			t.Fatalf("%s: state %s (%s)", n.name, r.State, r.Err)
		}
		s := r.Summary
		if s.PeerID != n.ID().String() || s.Version != "v-"+n.name || s.Network != "gsio" || s.LocalNodes != wantNodes[n.ID()] {
			t.Errorf("%s: summary %+v, want %d local nodes", n.name, s, wantNodes[n.ID()])
		}
		if s.Counters == nil || s.Counters.MessagesOut != 2*s.Counters.MessagesIn || s.Rates == nil || s.Rates.MessagesIn <= 0 {
			t.Errorf("%s: counters %+v rates %+v", n.name, s.Counters, s.Rates)
		}
		if string(s.History) != `{"held":7}` {
			t.Errorf("%s: history %s", n.name, s.History)
		}
		if !r.Self && (r.RTT <= 0 || !r.InDirectory || r.LastSeen.IsZero()) {
			t.Errorf("%s: rtt %v in directory %v last seen %v", n.name, r.RTT, r.InDirectory, r.LastSeen)
		}
	}
	// b's neighbours: a and c, relays, in both meshes.
	sb := relayView(t, v, b.ID()).Summary
	var ids []string
	for _, p := range sb.Peers {
		if p.Relay && (p.Direction == "inbound" || p.Direction == "outbound") {
			ids = append(ids, p.ID)
		}
	}
	want := []string{a.ID().String(), c.ID().String()}
	slices.Sort(want)
	slices.Sort(ids)
	if !slices.Equal(ids, want) || sb.PeersTotal != 2 {
		t.Errorf("b's relay peers %v (of %d), want %v", ids, sb.PeersTotal, want)
	}
	bt, pt := b.Topics()
	for _, topic := range []string{bt, pt} {
		m := slices.Clone(sb.Mesh[topic])
		slices.Sort(m)
		if !slices.Equal(m, want) {
			t.Errorf("b's mesh of %s: %v, want %v", topic, m, want)
		}
	}
	if v2, _ := a.MeshView(ctx); v2 != v {
		t.Error("a second view within CacheTTL is a new sweep")
	}

	// d stops: unreachable while a's directory still lists it, then gone.
	_ = d.Close()
	states := map[RelayState]bool{}
	testutil.CheckFor(t, 15*time.Second, func() error {
		v, err := a.MeshView(ctx)
		if err != nil {
			return err
		}
		r := relayView(t, v, d.ID())
		states[r.State] = true
		if r.State != RelayGone {
			return fmt.Errorf("d is %s (%s)", r.State, r.Err)
		}
		if r.Summary == nil || r.Summary.Version != "v-d" {
			return errors.New("d's last summary is lost")
		}
		return nil
	})
	if relayView(t, v, c.ID()).State != RelayOK {
		t.Error("c not ok")
	}
	t.Logf("states of d seen: %v", states)
}

// rawAsk sends one request from h to p and returns the decoded answer,
// or the error of a reset stream.
func rawAsk(h host.Host, p peer.ID, req string) (inspectResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var resp inspectResponse
	s, err := h.NewStream(ctx, p, InspectProtocol)
	if err != nil {
		return resp, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write([]byte(req)); err != nil {
		return resp, err
	}
	_ = s.CloseWrite()
	b, err := io.ReadAll(s)
	if err != nil {
		return resp, err
	}
	return resp, json.Unmarshal(b, &resp)
}

// TestInspectAccess: in an open federation a peer that is not a relay of
// the directory is refused; in a private one (allow-list with relay
// clients let in) an unlisted peer is refused while a listed relay gets
// its answer; a member's malformed request is refused too.
func TestInspectAccess(t *testing.T) {
	a, b := newNode(t, "a", nil), newNode(t, "b", nil)
	connectFull(t, a, b)
	waitRelays(t, a, b)
	if resp, err := rawAsk(b.Host(), a.ID(), `{"v":1}`); err != nil || resp.Summary == nil || resp.Summary.PeerID != a.ID().String() {
		t.Fatalf("b's request: %+v, %v", resp, err)
	}
	if resp, err := rawAsk(b.Host(), a.ID(), `not json`); err != nil || resp.Error != InspectBadRequest {
		t.Fatalf("b's malformed request: %+v, %v; want bad_request", resp, err)
	}

	// A plain libp2p host, connected but no relay of the directory.
	stranger := newClient(t)
	if err := stranger.Connect(context.Background(), a.addrInfo()); err != nil {
		t.Fatal(err)
	}
	if resp, err := rawAsk(stranger, a.ID(), `{"v":1}`); err != nil || resp.Error != InspectForbidden || resp.Summary != nil {
		t.Fatalf("stranger's request: %+v, %v; want forbidden", resp, err)
	}

	// A relay that does not answer (--inspect=false) is reported as such.
	quiet := newNode(t, "quiet", func(c *Config) { c.Inspect.Enable = false })
	connect(t, a, quiet)
	testutil.CheckFor(t, 5*time.Second, func() error {
		_, _, err := a.InspectPeer(context.Background(), quiet.ID())
		if refused := (*InspectRefusedError)(nil); !errors.As(err, &refused) || refused.Reason != InspectNotSupported {
			return fmt.Errorf("asking a relay with inspection off: %v, want %s", err, InspectNotSupported)
		}
		return nil
	})

	t.Run("allow-list", func(t *testing.T) {
		q := newNode(t, "q", nil)
		outsider := newNode(t, "outsider", nil)
		p := newNode(t, "p", func(c *Config) {
			c.Private.AllowPeers = []string{q.ID().String()}
			c.Private.AllowRelayClients = true // lets the outsider connect at all
		})
		connect(t, q, p)
		connect(t, outsider, p)
		if resp, err := rawAsk(outsider.Host(), p.ID(), `{"v":1}`); err != nil || resp.Error != InspectForbidden {
			t.Fatalf("outsider's request: %+v, %v; want forbidden", resp, err)
		}
		_, _, err := outsider.InspectPeer(context.Background(), p.ID())
		var refused *InspectRefusedError
		if !errors.As(err, &refused) || refused.Reason != InspectForbidden {
			t.Fatalf("outsider's InspectPeer: %v, want forbidden", err)
		}
		if s, _, err := q.InspectPeer(context.Background(), p.ID()); err != nil || s.PeerID != p.ID().String() {
			t.Fatalf("listed relay's request: %v", err)
		}
	})
}

// TestInspectFlood: a member floods a relay with requests, 16 at once:
// beyond its bucket they are refused (rate_limited) or reset (over
// MaxConcurrent); another member is answered meanwhile; the relay's
// goroutines come back down, and it still federates.
func TestInspectFlood(t *testing.T) {
	a, b, c := newNode(t, "a", nil), newNode(t, "b", nil), newNode(t, "c", nil)
	connectFull(t, a, b, c)
	waitRelays(t, a, b, c)
	before := runtime.NumGoroutine()

	const workers, each = 16, 25
	var ok, limited, reset atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for range each {
				resp, err := rawAsk(b.Host(), a.ID(), `{"v":1}`)
				switch {
				case err != nil:
					reset.Add(1)
				case resp.Error == InspectRateLimited && resp.RetryAfterMS > 0:
					limited.Add(1)
				case resp.Summary != nil:
					ok.Add(1)
				default:
					t.Errorf("unexpected answer %+v", resp)
				}
			}
		})
	}
	// c is answered during the flood (its own bucket; a reset is possible
	// while 8 of b's requests are being answered).
	testutil.CheckFor(t, 5*time.Second, func() error {
		_, _, err := c.InspectPeer(context.Background(), a.ID())
		return err
	})
	wg.Wait()
	took := time.Since(start)
	cfg := DefaultConfig().Inspect
	maxOK := int64(float64(cfg.Burst) + cfg.Rate*took.Seconds() + 1)
	t.Logf("%d requests in %v: %d answered, %d rate limited, %d reset", workers*each, took.Round(time.Millisecond), ok.Load(), limited.Load(), reset.Load())
	if ok.Load() < 1 || ok.Load() > maxOK || limited.Load() == 0 || ok.Load()+limited.Load()+reset.Load() != workers*each {
		t.Errorf("answered %d (at most %d), rate limited %d", ok.Load(), maxOK, limited.Load())
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before+10 {
			return fmt.Errorf("%d goroutines, %d before the flood", n, before)
		}
		return nil
	})
	a.NodeJoined("alice", nil)
	waitRemote(t, c, "alice", true, 5*time.Second)
	testutil.CheckFor(t, 5*time.Second, func() error { // a summary is reused for 250 ms
		s, _, err := c.InspectPeer(context.Background(), a.ID())
		if err == nil && s.LocalNodes != 1 {
			err = fmt.Errorf("a reports %d local nodes, want 1", s.LocalNodes)
		}
		return err
	})
	// b's bucket refills at Rate.
	testutil.CheckFor(t, 5*time.Second, func() error {
		_, _, err := b.InspectPeer(context.Background(), a.ID())
		return err
	})
}

// TestInspectLimits: the encoder halves the peers until an answer fits;
// sanitize drops what another relay must not make us show.
func TestInspectLimits(t *testing.T) {
	s := &inspectService{icfg: InspectConfig{MaxResponse: 16 << 10}}
	sum := &Summary{PeerID: "x", History: json.RawMessage(`{"big":true}`)}
	for range 400 {
		sum.Peers = append(sum.Peers, SummaryPeer{ID: "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf", Direction: "inbound"})
	}
	b, err := s.encodeResponse(inspectResponse{V: 1, Summary: sum})
	if err != nil || len(b) > 16<<10 {
		t.Fatalf("encoded %d bytes, %v", len(b), err)
	}
	if len(sum.Peers) != 400 || sum.History == nil {
		t.Fatal("encodeResponse changed the shared summary")
	}
	bad := &Summary{Version: string(make([]rune, 100)), Peers: []SummaryPeer{{ID: "<script>", Direction: "x"}, {ID: sum.Peers[0].ID, Direction: "sideways"}},
		Mesh: map[string][]string{"t": {"nope", sum.Peers[0].ID}}}
	sanitize(bad)
	if len([]rune(bad.Version)) != maxInspectString || len(bad.Peers) != 1 || bad.Peers[0].Direction != "unknown" || len(bad.Mesh["t"]) != 1 {
		t.Fatalf("sanitized %+v", bad)
	}
}

// TestInspectCloseResetsStreams: a requester that never finishes its
// request does not hold up Close.
func TestInspectCloseResetsStreams(t *testing.T) {
	a, b := newNode(t, "a", nil), newNode(t, "b", nil)
	connectFull(t, a, b)
	waitRelays(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var streams []network.Stream
	for range 3 {
		st, err := b.Host().NewStream(ctx, a.ID(), InspectProtocol)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = st.Write([]byte(`{"v":`)) // and never more
		streams = append(streams, st)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		a.insp.mu.Lock()
		defer a.insp.mu.Unlock()
		if k := len(a.insp.inbound); k != 3 {
			return fmt.Errorf("%d inbound streams, want 3", k)
		}
		return nil
	})
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with stalled inspection streams", d)
	}
	for _, st := range streams {
		_ = st.Reset()
	}
}
