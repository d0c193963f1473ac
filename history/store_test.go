package history

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMsgKey(t *testing.T) {
	sum := sha256.Sum256([]byte("node-a\x00msg-1"))
	if k := MsgKey("node-a", "msg-1"); !bytes.Equal(k[:], sum[:16]) {
		t.Fatalf("MsgKey = %x, want %x", k, sum[:16])
	}
	if MsgKey("a", "bc") == MsgKey("ab", "c") {
		t.Fatal("the separator does not separate sender from id")
	}
}

func TestValueRoundTrip(t *testing.T) {
	for _, c := range []struct{ sender, frame string }{{"", ""}, {"n", `{"x":1}`}, {string(make([]byte, maxSenderLen)), "f"}} {
		s, f, err := decodeValue(appendValue(nil, c.sender, []byte(c.frame)))
		if err != nil || string(s) != c.sender || string(f) != c.frame {
			t.Fatalf("round trip of %q/%q: %q/%q, %v", c.sender, c.frame, s, f, err)
		}
	}
	for _, bad := range [][]byte{nil, {0x80}, {5, 'a'}, appendValue(nil, string(make([]byte, maxSenderLen+1)), nil)} {
		if _, _, err := decodeValue(bad); err == nil {
			t.Fatalf("decodeValue(%x) accepted", bad)
		}
	}
}

func FuzzDecodeValue(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendValue(nil, "node-1", []byte(`{"message_type":"Broadcast"}`)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, v []byte) {
		sender, frame, err := decodeValue(v)
		if err != nil {
			return
		}
		if len(sender) > maxSenderLen {
			t.Fatalf("sender of %d bytes accepted", len(sender))
		}
		again := appendValue(nil, string(sender), frame)
		if s2, f2, err := decodeValue(again); err != nil || !bytes.Equal(s2, sender) || !bytes.Equal(f2, frame) {
			t.Fatalf("re-encoding %x does not round-trip", v)
		}
	})
}

func TestAppendRangeOrder(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	rng := rand.New(rand.NewPCG(1, 2))
	var ms []msg
	for i := range 300 {
		ms = append(ms, mkMsg(t0+int64(rng.IntN(40)), []string{"a", "b", "c"}[i%3], i))
	}
	appendAll(s, ms)
	flush(t, s)
	out, res := collect(t, s, t0, 0, 0, "")
	checkSame(t, out, want(ms))
	if !res.Complete || res.NextSince != 0 || res.Oldest != sorted(ms)[0].ts {
		t.Fatalf("Result %+v: want complete, not cut, oldest %d", res, sorted(ms)[0].ts)
	}
	// A window: since inclusive, until exclusive.
	var inWin []msg
	for _, m := range ms {
		if m.ts >= t0+10 && m.ts < t0+20 {
			inWin = append(inWin, m)
		}
	}
	out, _ = collect(t, s, t0+10, t0+20, 0, "")
	checkSame(t, out, want(inWin))
	// Before the store was created it cannot be complete.
	if _, res := collect(t, s, t0-1, 0, 0, ""); res.Complete {
		t.Fatal("a window reaching back before the store was created is complete")
	}
	checkConsistent(t, s)
}

func TestDuplicatesAreIdempotent(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	m := mkMsg(t0+5, "a", 1)
	appendAll(s, []msg{m, m}) // same batch
	flush(t, s)
	n1, fp1, _ := s.Fingerprint(t0, t0+10)
	other := m
	other.frame = "a forged copy"
	appendAll(s, []msg{m, other}) // later batch
	flush(t, s)
	n2, fp2, _ := s.Fingerprint(t0, t0+10)
	out, _ := collect(t, s, t0, 0, 0, "")
	checkSame(t, out, want([]msg{m}))
	if st := s.Stats(); st.Count != 1 || st.Writes != 1 || st.Duplicates != 3 {
		t.Fatalf("Stats %+v: want 1 stored, 1 write, 3 duplicates", st)
	}
	if n1 != 1 || n2 != 1 || fp1 != fp2 || fp1 != m.entry().Key {
		t.Fatalf("fingerprint moved: %d %x, %d %x", n1, fp1, n2, fp2)
	}
}

func TestReopenKeepsData(t *testing.T) {
	cfg := testConfig(t)
	clock := newClock()
	s := openStore(t, cfg, WithClock(clock.Now))
	var ms []msg
	for i := range 50 {
		ms = append(ms, mkMsg(t0+int64(i), "a", i))
	}
	appendAll(s, ms)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Minute)
	s = openStore(t, cfg, WithClock(clock.Now))
	out, res := collect(t, s, t0, 0, 0, "")
	checkSame(t, out, want(ms))
	checkConsistent(t, s)
	if st := s.Stats(); st.OldestTS != t0 || st.NewestTS != t0+49 {
		t.Fatalf("Stats %+v", st)
	}
	// The minute it was closed is a gap, widened back by GapMargin.
	down := Gap{t0 - cfg.GapMargin.Milliseconds(), t0 + time.Minute.Milliseconds()}
	var found bool
	for _, g := range s.Gaps() {
		found = found || (g.From <= down.From && g.To >= down.To)
	}
	if !found || res.Complete {
		t.Fatalf("gaps %v do not cover the downtime %v (complete %v)", s.Gaps(), down, res.Complete)
	}
}

func TestCloseIdempotent(t *testing.T) {
	s := openStore(t, testConfig(t))
	s.Append(t0, "a", "1", []byte("x"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s.Append(t0+1, "a", "2", []byte("y")) // neither blocks nor panics
	if _, err := s.Range(0, 0, 0, "", func(int64, string, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Range after Close: %v", err)
	}
	if err := s.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if _, _, err := s.Get(t0, MsgKey("a", "1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestCloseFlushesQueue(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour // only Close commits
	s := openStore(t, cfg, WithClock(newClock().Now))
	var ms []msg
	for i := range 20 {
		ms = append(ms, mkMsg(t0+int64(i), "a", i))
	}
	appendAll(s, ms)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg, WithClock(newClock().Now))
	out, _ := collect(t, s, t0, 0, 0, "")
	checkSame(t, out, want(ms))
}

func TestCorruptStore(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	appendAll(s, []msg{mkMsg(t0, "a", 1)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	manifests, _ := filepath.Glob(filepath.Join(cfg.Dir, "MANIFEST-*"))
	if len(manifests) == 0 {
		t.Fatal("no MANIFEST to corrupt")
	}
	for _, m := range manifests {
		if err := os.WriteFile(m, bytes.Repeat([]byte{0xa5}, 512), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(cfg, WithLogger(testLogger()))
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Dir != cfg.Dir {
		t.Fatalf("Open of a corrupt store: %v, want *CorruptError for %s", err, cfg.Dir)
	}
	aside, err := MoveAside(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(aside, filepath.Base(manifests[0]))); err != nil {
		t.Fatalf("moved store not at %s: %v", aside, err)
	}
	s = openStore(t, cfg)
	if st := s.Stats(); st.Count != 0 {
		t.Fatalf("fresh store holds %d", st.Count)
	}
	if again, err := MoveAside(cfg.Dir + "-missing"); err == nil {
		t.Fatalf("MoveAside of nothing gave %s", again)
	}
}

func TestCorruptFormatMarker(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	if err := s.db.Set(metaFormat, []byte{99}, nil); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	var ce *CorruptError
	if _, err := Open(cfg, WithLogger(testLogger())); !errors.As(err, &ce) {
		t.Fatalf("unknown format: %v, want *CorruptError", err)
	}
}

func TestLockedStoreIsNotCorrupt(t *testing.T) {
	cfg := testConfig(t)
	openStore(t, cfg)
	_, err := Open(cfg, WithLogger(testLogger()))
	var ce *CorruptError
	if err == nil || errors.As(err, &ce) {
		t.Fatalf("second Open of a store in use: %v, want a plain error", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := Open(DefaultConfig()); err == nil {
		t.Fatal("Open without Dir succeeded")
	}
	cfg := testConfig(t)
	cfg.QueueLen = 0
	if _, err := Open(cfg); err == nil {
		t.Fatal("Open with QueueLen 0 succeeded")
	}
}
