package syncproto

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/message"
)

// testStore is a history store in a temporary directory.
func testStore(t testing.TB) *history.Store {
	t.Helper()
	cfg := history.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "history")
	cfg.FlushInterval = time.Millisecond
	cfg.MinFreeDisk = 0
	cfg.QueueLen = 1 << 20
	cfg.QueueMaxBytes = 1 << 30
	s, err := history.Open(cfg, history.WithLogger(testutil.Logger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// frameAt builds the stored frame of broadcast (sender, id) at ts.
func frameAt(ts int64, sender, id string, payload string) []byte {
	env, err := message.Parse(message.Build("EntryAnnounce", id, sender, "", []byte(payload)))
	if err != nil {
		panic(err)
	}
	env.SetTS(ts)
	return env.Raw
}

func add(s *history.Store, ts int64, sender, id string) {
	s.Append(ts, sender, id, frameAt(ts, sender, id, `{"n":1}`))
}

func flush(t testing.TB, stores ...*history.Store) {
	t.Helper()
	for _, s := range stores {
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// acceptInto is the Accept of a test side: the frame must parse, be the
// entry asked for (or lie in the window), and is appended to s.
func acceptInto(s *history.Store) func([]byte, *history.Entry, Window) error {
	return func(frame []byte, want *history.Entry, w Window) error {
		env, err := message.Parse(frame)
		if err != nil || env.ID == "" || env.TS <= 0 {
			return &Refusal{Reason: "invalid", Hostile: true}
		}
		key := history.MsgKey(env.Sender, env.ID)
		if want != nil && (want.TS != env.TS || want.Key != key) {
			return &Refusal{Reason: "not_asked", Hostile: true}
		}
		if env.TS < w.From || env.TS >= w.To {
			return &Refusal{Reason: "outside", Hostile: true}
		}
		s.Append(env.TS, env.Sender, env.ID, frame)
		return nil
	}
}

func side(s *history.Store, l Limits) Side {
	return Side{
		Store: s, Limits: l, Horizon: s.Horizon(), Until: 1 << 50, Gaps: s.Gaps(),
		Accept: acceptInto(s),
		Settle: func() error { return s.Flush(context.Background()) },
	}
}

// reconcile runs a session between a (initiator) and b over a pipe.
func reconcile(t testing.TB, a, b Side, w Window) (ra, rb Result, ea, eb error) {
	t.Helper()
	ca, cb := net.Pipe()
	deadline := time.Now().Add(time.Minute)
	_ = ca.SetDeadline(deadline)
	_ = cb.SetDeadline(deadline)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rb, eb = Respond(cb, b)
		_ = cb.Close()
	}()
	ra, ea = Initiate(ca, a, w)
	_ = ca.Close()
	<-done
	return ra, rb, ea, eb
}

func fingerprint(t testing.TB, s *history.Store, w Window) (int, [16]byte) {
	t.Helper()
	n, fp, err := s.Fingerprint(w.From, w.To)
	if err != nil {
		t.Fatal(err)
	}
	return n, fp
}

func TestReconcile(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	w := Window{From: base - 1000, To: base + 3_600_000}
	cases := []struct {
		name             string
		common, aOnly    int
		bOnly            int
		wantRoundsAtMost int
	}{
		{"equal", 2000, 0, 0, 1},
		{"both empty", 0, 0, 0, 1},
		{"a has more", 2000, 10, 0, 40},
		{"b has more", 2000, 0, 10, 40},
		{"both have more", 2000, 37, 41, 60},
		{"b empty", 0, 300, 0, 60},
		{"a empty", 0, 0, 300, 60},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sa, sb := testStore(t), testStore(t)
			n := 0
			next := func() (int64, string) {
				n++
				return base + int64(n)*1700, fmt.Sprint("m", n)
			}
			for range tc.common {
				ts, id := next()
				add(sa, ts, "node-x", id)
				add(sb, ts, "node-x", id)
			}
			for range tc.aOnly {
				ts, id := next()
				add(sa, ts, "node-a", id)
			}
			for range tc.bOnly {
				ts, id := next()
				add(sb, ts, "node-b", id)
			}
			flush(t, sa, sb)
			l := DefaultLimits()
			ra, rb, ea, eb := reconcile(t, side(sa, l), side(sb, l), w)
			if ea != nil || eb != nil {
				t.Fatalf("initiator: %v; responder: %v", ea, eb)
			}
			if !ra.Reconciled || !rb.Reconciled {
				t.Fatalf("not reconciled: %+v / %+v", ra, rb)
			}
			if ra.Received != tc.bOnly || ra.Sent != tc.aOnly || rb.Received != tc.aOnly {
				t.Fatalf("initiator took %d gave %d, responder took %d; want %d, %d, %d", ra.Received, ra.Sent, rb.Received, tc.bOnly, tc.aOnly, tc.aOnly)
			}
			if ra.Rounds > tc.wantRoundsAtMost {
				t.Fatalf("%d rounds, want at most %d", ra.Rounds, tc.wantRoundsAtMost)
			}
			flush(t, sa, sb)
			na, fa := fingerprint(t, sa, w)
			nb, fb := fingerprint(t, sb, w)
			if na != nb || fa != fb || na != tc.common+tc.aOnly+tc.bOnly {
				t.Fatalf("after: %d vs %d entries", na, nb)
			}
			t.Logf("rounds %d, ranges %d, bytes %d sent %d received", ra.Rounds, ra.Ranges, ra.BytesSent, ra.BytesRecv)
		})
	}
}

// TestReconcileDense: more than LeafKeys in one millisecond, and more
// than DenseKeys held by the initiator in a range the responder lists.
func TestReconcileDense(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	w := Window{From: base, To: base + 60_000}
	sa, sb := testStore(t), testStore(t)
	for i := range 300 {
		add(sa, base+5, "node-a", fmt.Sprint("d", i)) // one ms, only at a
	}
	for i := range 200 {
		add(sa, base+10_000+int64(i), "node-a", fmt.Sprint("s", i))
	}
	flush(t, sa, sb)
	l := DefaultLimits()
	l.DenseKeys = 400
	l.LeafKeys = 8
	ra, rb, ea, eb := reconcile(t, side(sa, l), side(sb, l), w)
	if ea != nil || eb != nil || !ra.Reconciled || !rb.Reconciled || rb.Received != 500 {
		t.Fatalf("%v / %v; %+v / %+v", ea, eb, ra, rb)
	}
}

// TestReconcileBounds: a session that outgrows a bound ends with it, on
// both sides, and stores nothing wrong.
func TestReconcileBounds(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMilli()
	w := Window{From: base, To: base + 600_000}
	sa, sb := testStore(t), testStore(t)
	for i := range 3000 {
		add(sa, base+int64(i)*100, "node-a", fmt.Sprint("m", i))
	}
	flush(t, sa, sb)
	l := DefaultLimits()
	l.MaxRounds = 2
	_, rb, ea, eb := reconcile(t, side(sa, l), side(sb, l), w)
	var e *Error
	if !errors.As(eb, &e) || e.Reason != ReasonRounds {
		t.Fatalf("responder: %v, want the rounds bound", eb)
	}
	if !errors.As(ea, &e) || e.Reason != ReasonRefused {
		t.Fatalf("initiator: %v, want the responder's refusal", ea)
	}
	if rb.Reconciled {
		t.Fatal("reconciled past a bound")
	}
}
