package history

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// pages follows NextSince until the answer is whole, checking that each
// page respects limit.
func pages(t *testing.T, s *Store, since int64, limit int, skip string) (all []got, n int, last Result) {
	t.Helper()
	for n = 1; ; n++ {
		out, res := collect(t, s, since, 0, limit, skip)
		if len(out) > limit {
			t.Fatalf("page %d: %d broadcasts, limit %d", n, len(out), limit)
		}
		all = append(all, out...)
		if res.NextSince == 0 {
			return all, n, res
		}
		if res.Complete {
			t.Fatalf("page %d was cut but says complete", n)
		}
		if res.NextSince <= since {
			t.Fatalf("page %d: NextSince %d does not advance from %d", n, res.NextSince, since)
		}
		since = res.NextSince
	}
}

func TestLimitContinuesWithoutLossOrDuplicate(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	rng := rand.New(rand.NewPCG(3, 4))
	var ms []msg
	for ts := range int64(60) {
		for j := range 1 + rng.IntN(7) { // 1 to 7 broadcasts share each ts
			ms = append(ms, mkMsg(t0+ts, "a", int(ts)*10+j))
		}
	}
	appendAll(s, ms)
	flush(t, s)
	for _, limit := range []int{7, 10, 13, 1000} {
		all, n, last := pages(t, s, t0, limit, "")
		checkSame(t, all, want(ms))
		if !last.Complete {
			t.Fatalf("limit %d: the last page is not complete", limit)
		}
		if limit < len(ms) && n < 2 {
			t.Fatalf("limit %d: answered in one page", limit)
		}
	}
}

func TestMoreThanLimitAtOneTS(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	var ms []msg
	for i := range 15 {
		ms = append(ms, mkMsg(t0+1, "a", i))
	}
	ms = append(ms, mkMsg(t0+2, "a", 99))
	appendAll(s, ms)
	flush(t, s)
	out, res := collect(t, s, t0, 0, 10, "")
	// The first millisecond is answered whole, beyond the limit: asking
	// again from t0+2 loses nothing.
	checkSame(t, out, want(ms)[:15])
	if res.Complete || res.NextSince != t0+2 {
		t.Fatalf("Result %+v: want incomplete, NextSince %d", res, t0+2)
	}
}

func TestSkipSender(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	var ms, others []msg
	for i := range 40 {
		m := mkMsg(t0+int64(i/3), []string{"me", "you", "them"}[i%3], i)
		ms = append(ms, m)
		if m.sender != "me" {
			others = append(others, m)
		}
	}
	appendAll(s, ms)
	flush(t, s)
	out, res := collect(t, s, t0, 0, 0, "me")
	checkSame(t, out, want(others))
	if !res.Complete {
		t.Fatalf("Result %+v", res)
	}
	all, _, _ := pages(t, s, t0, 4, "me")
	checkSame(t, all, want(others))
}

func TestByteCapCutsBetweenTS(t *testing.T) {
	var ms []msg
	for i := range 30 {
		ms = append(ms, mkMsg(t0+int64(i/2), "a", i))
	}
	cfg := testConfig(t)
	cfg.RangeMaxBytes = int64(3 * len(ms[0].frame)) // room for one pair of a ts
	s := openStore(t, cfg, WithClock(newClock().Now))
	appendAll(s, ms)
	flush(t, s)
	out, res := collect(t, s, t0, 0, 0, "")
	if len(out) != 2 || res.NextSince != t0+1 || res.Complete {
		t.Fatalf("got %d, Result %+v: want one ts group, NextSince %d", len(out), res, t0+1)
	}
	all, _, _ := pages(t, s, t0, MaxLimit, "")
	checkSame(t, all, want(ms))
}

func TestRangeStopsOnCallbackError(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	appendAll(s, []msg{mkMsg(t0, "a", 1), mkMsg(t0+1, "a", 2)})
	flush(t, s)
	res, err := s.Range(t0, 0, 0, "", func(int64, string, []byte) error { return errStop })
	if !errors.Is(err, errStop) || res.Complete {
		t.Fatalf("Range with a failing fn: %+v, %v", res, err)
	}
}

func TestGapsMakeIncomplete(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	appendAll(s, []msg{mkMsg(t0+1, "a", 1), mkMsg(t0+50, "a", 2)})
	flush(t, s)
	s.MarkGap(t0+10, t0+20)
	for _, c := range []struct {
		since, until int64
		complete     bool
	}{
		{t0, 0, false}, {t0, t0 + 10, true}, {t0 + 19, t0 + 30, false}, {t0 + 20, 0, true}, {t0 + 5, t0 + 11, false},
	} {
		if _, res := collect(t, s, c.since, c.until, 0, ""); res.Complete != c.complete {
			t.Fatalf("[%d, %d) with gap [10, 20): complete %v, want %v", c.since-t0, c.until-t0, res.Complete, c.complete)
		}
	}
	s.ClearGaps(t0+10, t0+15)
	if _, res := collect(t, s, t0, t0+15, 0, ""); !res.Complete {
		t.Fatal("a repaired window is still incomplete")
	}
	if _, res := collect(t, s, t0, 0, 0, ""); res.Complete {
		t.Fatal("the unrepaired rest [15, 20) was forgotten")
	}
	if g := s.Gaps(); !slices.Contains(g, Gap{t0 + 15, t0 + 20}) {
		t.Fatalf("Gaps %v", g)
	}
}

func TestFingerprintKeysGet(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	rng := rand.New(rand.NewPCG(5, 6))
	var ms []msg
	for i := range 500 {
		ms = append(ms, mkMsg(t0+int64(rng.IntN(5000)), "a", i))
	}
	appendAll(s, ms)
	flush(t, s)
	for range 200 {
		from := t0 - 100 + int64(rng.IntN(5300))
		to := from + int64(rng.IntN(3000))
		n, fp := bruteFingerprint(t, s, from, to)
		gn, gfp, err := s.Fingerprint(from, to)
		if err != nil || gn != n || gfp != fp {
			t.Fatalf("Fingerprint(%d, %d) = %d %x %v; scan says %d %x", from-t0, to-t0, gn, gfp, err, n, fp)
		}
	}
	keys, err := s.Keys(t0, t0+5000, 10)
	if err != nil || len(keys) != 10 {
		t.Fatalf("Keys: %d, %v", len(keys), err)
	}
	for i, m := range sorted(ms)[:10] {
		if keys[i] != m.entry() {
			t.Fatalf("Keys[%d] = %v, want %v", i, keys[i], m.entry())
		}
		sender, frame, err := s.Get(m.ts, m.entry().Key)
		if err != nil || sender != m.sender || string(frame) != m.frame {
			t.Fatalf("Get %v: %q %q %v", m.entry(), sender, frame, err)
		}
	}
	if _, _, err := s.Get(t0, MsgKey("nobody", "x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing entry: %v", err)
	}
}

func TestGapSet(t *testing.T) {
	var g gapSet
	g = g.add(10, 20).add(30, 40).add(20, 25) // touches [10,20)
	if !slices.Equal(g, gapSet{{10, 25}, {30, 40}}) {
		t.Fatalf("add: %v", g)
	}
	g = g.add(5, 35)
	if !slices.Equal(g, gapSet{{5, 40}}) {
		t.Fatalf("add over both: %v", g)
	}
	g = g.clear(10, 20)
	if !slices.Equal(g, gapSet{{5, 10}, {20, 40}}) {
		t.Fatalf("clear: %v", g)
	}
	if !g.overlaps(9, 10) || g.overlaps(10, 20) || !g.overlaps(39, 100) || g.overlaps(40, 50) {
		t.Fatalf("overlaps wrong on %v", g)
	}
	if g = g.prune(25); !slices.Equal(g, gapSet{{25, 40}}) {
		t.Fatalf("prune: %v", g)
	}
	if g = g.add(7, 7); len(g) != 1 {
		t.Fatalf("empty gap added: %v", g)
	}
	var many gapSet
	for i := range int64(maxGaps + 10) {
		many = many.add(i*10, i*10+1)
	}
	if len(many) > maxGaps || len(many) < maxGaps/4 || many[0].From != 0 || many[len(many)-1].To != (maxGaps+9)*10+1 {
		t.Fatalf("cap: %d gaps from %v to %v", len(many), many[0], many[len(many)-1])
	}
}
