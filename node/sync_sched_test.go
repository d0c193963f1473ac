package node

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/syncproto"
)

// gappedStore is a history whose gaps the test sets and ClearGaps cuts.
type gappedStore struct {
	HistoryStore
	gaps []history.Gap
}

func (s *gappedStore) Gaps() []history.Gap { return s.gaps }
func (s *gappedStore) Horizon() int64      { return 0 }
func (s *gappedStore) ClearGaps(from, to int64) {
	var out []history.Gap
	for _, g := range s.gaps {
		if g.To <= from || g.From >= to {
			out = append(out, g)
			continue
		}
		if g.From < from {
			out = append(out, history.Gap{From: g.From, To: from})
		}
		if g.To > to {
			out = append(out, history.Gap{From: to, To: g.To})
		}
	}
	s.gaps = out
}

type closedStream struct{ network.Stream }

func (closedStream) Close() error { return nil }

// TestSyncFollowUps: a reconciled session that leaves a gap the peer
// shares, inside the window, does not make the same peer be asked again
// every settle + 1 s (it waits for another peer); sessions that keep
// ending unreconciled are repeated after settle + 1 s three times, then
// at a doubling delay, at most one an interval. (Found by review: both repeated every 6 s for ever.)
func TestSyncFollowUps(t *testing.T) {
	now := time.Now()
	down := history.Gap{From: now.Add(-2 * time.Hour).UnixMilli(), To: now.Add(-time.Hour).UnixMilli()}
	st := &gappedStore{gaps: []history.Gap{down}}
	y := &syncer{store: st, scfg: defaultSyncConfig(), kick: make(chan struct{}, 1),
		pending: map[peer.ID]pendingSync{}, unreconciled: map[peer.ID]int{}}
	y.m = newMetrics()
	y.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	p := peer.ID("peer-b")
	w := y.window(now)
	y.finish(p, "initiator", syncproto.Result{Window: w, PeerGaps: []history.Gap{down}, Reconciled: true}, nil, closedStream{})
	if len(st.gaps) != 1 {
		t.Fatalf("gaps %v: the shared gap was cleared", st.gaps)
	}
	if _, ok := y.pending[p]; ok {
		t.Fatal("a shared gap inside the window rescheduled the same peer")
	}
	// A gap past the window's end (down until a moment ago) is asked for
	// once it has settled.
	st.gaps = []history.Gap{{From: w.To - 1000, To: now.UnixMilli()}}
	y.finish(p, "initiator", syncproto.Result{Window: w, Reconciled: true}, nil, closedStream{})
	if _, ok := y.pending[p]; !ok {
		t.Fatal("a gap past the window's end was not followed up")
	}
	delete(y.pending, p)
	var delays []time.Duration
	for range 8 {
		y.finish(p, "initiator", syncproto.Result{Window: w}, nil, closedStream{})
		ps, ok := y.pending[p]
		if !ok {
			t.Fatal("an unreconciled session was not repeated")
		}
		delays = append(delays, time.Until(ps.notBefore).Round(time.Second))
		delete(y.pending, p)
	}
	first := y.scfg.Settle + time.Second
	if delays[0] != first || delays[2] != first || delays[3] != 2*first || delays[4] != 4*first || delays[7] != y.scfg.Interval {
		t.Fatalf("delays %v: want %v three times, then doubling, at most %v", delays, first, y.scfg.Interval)
	}
	// A reconciled session starts the count again.
	y.finish(p, "initiator", syncproto.Result{Window: w, Reconciled: true}, nil, closedStream{})
	y.finish(p, "initiator", syncproto.Result{Window: w}, nil, closedStream{})
	if d := time.Until(y.pending[p].notBefore).Round(time.Second); d != first {
		t.Fatalf("after a reconciled session: delay %v, want %v", d, first)
	}
}
