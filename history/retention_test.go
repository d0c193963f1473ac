package history

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

func TestRetentionByAge(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = time.Hour
	clock := newClock()
	s := openStore(t, cfg, WithClock(clock.Now))
	var ms []msg
	for i := range 300 {
		ms = append(ms, mkMsg(t0+int64(i)*333, "a", i)) // 100 s, several per second
	}
	appendAll(s, ms)
	flush(t, s)
	clock.Add(time.Hour + 50500*time.Millisecond)
	cutoff := t0 + 50500 // cuts the bucket of second 50 in two
	waitFor(t, "entries older than the retention dropped", func() bool { return s.Stats().OldestTS >= cutoff })
	var kept []msg
	for _, m := range ms {
		if m.ts >= cutoff {
			kept = append(kept, m)
		}
	}
	out, res := collect(t, s, t0, 0, 0, "")
	checkSame(t, out, want(kept))
	checkConsistent(t, s)
	if res.Complete || res.Oldest != kept[0].ts {
		t.Fatalf("Result %+v: a window older than the retention must be incomplete, oldest %d", res, kept[0].ts)
	}
	if _, res := collect(t, s, cutoff, 0, 0, ""); !res.Complete {
		t.Fatalf("the retained window is incomplete: %+v, gaps %v", res, s.Gaps())
	}
	// Late arrivals older than the horizon are not stored again.
	s.Append(t0+1, "late", "x", []byte("too old"))
	flush(t, s)
	if st := s.Stats(); st.Stale != 1 || st.Count != int64(len(kept)) {
		t.Fatalf("Stats %+v: want the late one stale, %d kept", st, len(kept))
	}
}

func TestRetentionByBytes(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBytes = 30_000
	s := openStore(t, cfg, WithClock(newClock().Now))
	pad := strings.Repeat("x", 250)
	var ms []msg
	for i := range 200 {
		m := mkMsg(t0+int64(i/2)*37, "a", i) // pairs share a ts
		m.frame += pad
		ms = append(ms, m)
	}
	appendAll(s, ms)
	flush(t, s)
	waitFor(t, "size under MaxBytes", func() bool { return s.Stats().Bytes <= cfg.MaxBytes })
	st := s.Stats()
	out, res := collect(t, s, t0, 0, 0, "")
	all := want(ms)
	// The newest are kept, whole ts groups are dropped, and not more than
	// needed: one more group would pass 98% of MaxBytes.
	checkSame(t, out, all[len(all)-len(out):])
	if len(out)%2 != 0 || len(out) < 60 || res.Complete {
		t.Fatalf("kept %d (Stats %+v, complete %v)", len(out), st, res.Complete)
	}
	if per := st.Bytes / st.Count; st.Bytes+2*per <= cfg.MaxBytes*98/100 {
		t.Fatalf("dropped more than needed: %d bytes left of %d", st.Bytes, cfg.MaxBytes)
	}
	checkConsistent(t, s)
	if _, res := collect(t, s, st.OldestTS, 0, 0, ""); !res.Complete {
		t.Fatalf("the retained window is incomplete: %+v", res)
	}
}

func TestQueueOverflowDropsAndRecordsGap(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueLen = 4
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	s := openStore(t, cfg, WithClock(newClock().Now), withBeforeCommit(func() {
		select {
		case held <- struct{}{}:
		default:
		}
		<-hold
	}))
	s.Append(t0, "a", "first", []byte("1"))
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never committed")
	}
	// The writer is stuck on the disk: Append must still return at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			s.Append(t0+100+int64(i), "a", fmt.Sprint(i), []byte("x"))
		}
	}()
	waitFor(t, "100 Appends return while the writer is held", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	st := s.Stats()
	if st.Dropped < 96 {
		t.Fatalf("Dropped %d, want at least 96 with a queue of 4", st.Dropped)
	}
	if _, res := collect(t, s, t0+150, t0+160, 0, ""); res.Complete {
		t.Fatalf("window of dropped broadcasts is complete; gaps %v", s.Gaps())
	}
	close(hold)
	flush(t, s)
	if st := s.Stats(); st.Count+st.Dropped != 101 {
		t.Fatalf("Stats %+v: stored + dropped != 101", st)
	}
}

func TestQueueByteBound(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueMaxBytes = 4 << 10
	hold := make(chan struct{})
	s := openStore(t, cfg, withBeforeCommit(func() { <-hold }))
	big := make([]byte, 1<<10)
	for i := range 10 {
		s.Append(t0+int64(i), "a", fmt.Sprint(i), big)
	}
	if st := s.Stats(); st.Dropped < 6 {
		t.Fatalf("Dropped %d: 10 KiB queued under a 4 KiB bound", st.Dropped)
	}
	close(hold)
}

// writeFailer fails every write once switched on: a dying disk.
func writeFailer() *errorfs.Toggle {
	return &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	})}
}

func TestDiskFailureDropsNotCrashes(t *testing.T) {
	toggle := writeFailer()
	cfg := testConfig(t)
	s, err := Open(cfg, WithLogger(testLogger()), WithClock(newClock().Now), withFS(errorfs.Wrap(vfs.Default, toggle)))
	if err != nil {
		t.Fatal(err)
	}
	appendAll(s, []msg{mkMsg(t0, "a", 1)})
	flush(t, s)
	toggle.On()
	appendAll(s, []msg{mkMsg(t0+10, "a", 2), mkMsg(t0+11, "a", 3)})
	if err := s.Flush(t.Context()); !errors.Is(err, ErrFailed) {
		t.Fatalf("Flush on a failing disk: %v, want ErrFailed", err)
	}
	appendAll(s, []msg{mkMsg(t0+20, "a", 4)}) // still does not block
	st := s.Stats()
	if !st.Failed || st.Dropped < 2 {
		t.Fatalf("Stats %+v: want failed, 2+ dropped", st)
	}
	if _, res := collect(t, s, t0, 0, 0, ""); res.Complete {
		t.Fatal("complete although writes failed")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Logf("Close after disk failure: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Close hangs after a disk failure")
	}
}

func TestLowDiskDrops(t *testing.T) {
	cfg := testConfig(t)
	cfg.MinFreeDisk = 1 << 62 // more than any disk has free
	s := openStore(t, cfg, WithClock(newClock().Now))
	appendAll(s, []msg{mkMsg(t0+5, "a", 1)})
	flush(t, s)
	if st := s.Stats(); !st.LowDisk || st.Dropped != 1 || st.Count != 0 {
		t.Fatalf("Stats %+v: want low disk, 1 dropped, none stored", st)
	}
	if _, res := collect(t, s, t0, 0, 0, ""); res.Complete {
		t.Fatal("complete although a broadcast was dropped")
	}
}

// TestFailingDiskAfterLowDisk: with the writer paused for a low disk, the
// janitor's unsynced heartbeat and gap writes go on; when the disk then
// fails, the engine panics with the error it remembered at the next
// write. The store turns to failed mode (drops counted, gaps kept in
// memory) instead of taking the relay down. (Found by review: the panic
// was re-raised and the process died.)
func TestFailingDiskAfterLowDisk(t *testing.T) {
	toggle := writeFailer()
	cfg := testConfig(t)
	cfg.MinFreeDisk = 1 << 61 // low at once
	s, err := Open(cfg, WithLogger(testLogger()), WithClock(newClock().Now), withFS(errorfs.Wrap(vfs.Default, toggle)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	toggle.On()
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; !s.Stats().Failed; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("not in failed mode after %d rounds; stats %+v", round, s.Stats())
		}
		for i := range 50 {
			s.Append(t0+int64(round*1000+i*3), "a", fmt.Sprint(round, "-", i), []byte("x"))
		}
		_ = s.Flush(t.Context())
	}
	if st := s.Stats(); st.Dropped == 0 || st.Gaps == 0 {
		t.Fatalf("stats %+v: drops and gaps expected", st)
	}
}
