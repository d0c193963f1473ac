package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gsio-net/gsio-relay/internal/testutil"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	goleak.VerifyTestMain(m)
}

// t0 is the fake clock's start: every test store is created at t0, so
// [0, t0) is a gap in all of them.
const t0 = int64(1_700_000_000_000)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.UnixMilli(t0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "history")
	cfg.FlushInterval = time.Millisecond
	cfg.JanitorInterval = 10 * time.Millisecond
	cfg.MinFreeDisk = 0
	return cfg
}

func openStore(t testing.TB, cfg Config, opts ...Option) *Store {
	t.Helper()
	s, err := Open(cfg, append([]Option{WithLogger(testutil.Logger())}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func flush(t testing.TB, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// msg is a broadcast as the tests append and expect it.
type msg struct {
	ts     int64
	sender string
	id     string
	frame  string
}

func (m msg) entry() Entry { return Entry{TS: m.ts, Key: MsgKey(m.sender, m.id)} }

func mkMsg(ts int64, sender string, i int) msg {
	id := fmt.Sprintf("m%d", i)
	return msg{ts, sender, id, fmt.Sprintf(`{"message_type":"Broadcast","sender_id":%q,"message_id":%q,"payload":%d}`, sender, id, i)}
}

func appendAll(s *Store, ms []msg) {
	for _, m := range ms {
		s.Append(m.ts, m.sender, m.id, []byte(m.frame))
	}
}

// sorted returns ms in the store's order: ts, then message key.
func sorted(ms []msg) []msg {
	out := slices.Clone(ms)
	slices.SortFunc(out, func(a, b msg) int {
		if a.ts != b.ts {
			return int(a.ts - b.ts)
		}
		ka, kb := a.entry().Key, b.entry().Key
		return slices.Compare(ka[:], kb[:])
	})
	return out
}

type got struct {
	ts     int64
	sender string
	frame  string
}

func collect(t testing.TB, s *Store, since, until int64, limit int, skip string) ([]got, Result) {
	t.Helper()
	var out []got
	res, err := s.Range(since, until, limit, skip, func(ts int64, sender string, frame []byte) error {
		out = append(out, got{ts, sender, string(frame)})
		return nil
	})
	if err != nil {
		t.Fatalf("Range(%d, %d, %d): %v", since, until, limit, err)
	}
	if res.Count != len(out) {
		t.Fatalf("Result.Count %d, fn called %d times", res.Count, len(out))
	}
	return out, res
}

func want(ms []msg) []got {
	var out []got
	for _, m := range sorted(ms) {
		out = append(out, got{m.ts, m.sender, m.frame})
	}
	return out
}

func checkSame(t testing.TB, got, want []got) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d broadcasts, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("broadcast %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// bruteFingerprint XORs the keys Keys lists: the slow, obvious answer.
func bruteFingerprint(t testing.TB, s *Store, from, to int64) (int, [16]byte) {
	t.Helper()
	es, err := s.Keys(from, to, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var fp [16]byte
	for _, e := range es {
		xorInto(&fp, e.Key)
	}
	return len(es), fp
}

// checkConsistent compares the store's running totals and bucket sums
// with a full scan.
func checkConsistent(t testing.TB, s *Store) {
	t.Helper()
	st := s.Stats()
	n, fp := bruteFingerprint(t, s, 0, 1<<62)
	c, bfp, err := s.Fingerprint(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if int64(n) != st.Count || c != n || bfp != fp {
		t.Fatalf("inconsistent: Stats.Count %d, scan %d, buckets %d (fp equal %v)", st.Count, n, c, bfp == fp)
	}
	size, err := sumData(s.db, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if size.bytes != st.Bytes {
		t.Fatalf("Stats.Bytes %d, scan %d", st.Bytes, size.bytes)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, cond, "%s", what)
}

var errStop = errors.New("stop")

func testLogger() *slog.Logger { return testutil.Logger() }
