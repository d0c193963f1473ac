package history

import (
	"errors"
	"fmt"
	"maps"
	"testing"
)

func typed(ts int64, typ string, i int) msg {
	id := fmt.Sprintf("m%d", i)
	return msg{ts, "node-a", id, fmt.Sprintf(`{"message_type":%q,"sender_id":"node-a","message_id":%q,"payload":{}}`, typ, id)}
}

func TestSummary(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	ms := []msg{
		typed(t0+100, "EntryAnnounce", 1), typed(t0+1500, "EntryAnnounce", 2), typed(t0+1500, "NodeAnnounce", 3),
		typed(t0+2200, "EntryAnnounce", 4), typed(t0+3999, "NodeListRequest", 5),
		{t0 + 4000, "node-b", "m6", "not a GSIO message"},
	}
	appendAll(s, ms)
	flush(t, s)
	st := s.Stats()

	all, err := s.Summary(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if all.Count != 6 || all.Bytes != st.Bytes || all.Scanned != 6 || all.Partial || all.ScannedFrom != t0+100 {
		t.Fatalf("whole store: %+v (Stats %+v)", all, st)
	}
	if want := map[string]int64{"EntryAnnounce": 3, "NodeAnnounce": 1, "NodeListRequest": 1}; !maps.Equal(all.Types, want) || all.OtherTypes != 1 {
		t.Fatalf("types %v other %d, want %v other 1", all.Types, all.OtherTypes, want)
	}
	// The store was created at t0: before it, a gap.
	if all.Complete || len(all.Gaps) != 1 || all.Gaps[0] != (Gap{0, t0}) {
		t.Fatalf("from 0: complete %v, gaps %v; want incomplete, [0, t0)", all.Complete, all.Gaps)
	}

	// From the middle of a second: the partial second is scanned, the
	// rest summed by bucket; both must agree with the entries.
	mid, err := s.Summary(t0+1500, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !mid.Complete || len(mid.Gaps) != 0 || mid.Count != 5 || mid.Scanned != 5 || mid.Types["EntryAnnounce"] != 2 {
		t.Fatalf("from t0+1500: %+v", mid)
	}
	var size int64
	for _, m := range ms[1:] {
		size += int64(dataKeyLen + len(appendValue(nil, m.sender, []byte(m.frame))))
	}
	if mid.Bytes != size {
		t.Fatalf("from t0+1500: bytes %d, want %d", mid.Bytes, size)
	}

	// A bounded scan counts the newest first and says so.
	cut, err := s.Summary(0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if cut.Count != 6 || cut.Scanned != 2 || !cut.Partial || cut.ScannedFrom != t0+3999 ||
		cut.OtherTypes != 1 || cut.Types["NodeListRequest"] != 1 || len(cut.Types) != 1 {
		t.Fatalf("maxScan 2: %+v", cut)
	}
	if none, _ := s.Summary(t0+5000, 10); none.Count != 0 || none.Scanned != 0 || none.Partial || !none.Complete {
		t.Fatalf("empty window: %+v", none)
	}

	// A dropped broadcast is a gap in the windows that meet it.
	s.MarkGap(t0+2000, t0+2001)
	if g, _ := s.Summary(t0+1500, 0); g.Complete || len(g.Gaps) != 1 || g.Scanned != 0 || !g.Partial {
		t.Fatalf("after MarkGap, maxScan 0: %+v", g)
	}
	if g, _ := s.Summary(t0+2001, 10); !g.Complete {
		t.Fatalf("a window after the gap: %+v", g)
	}

	s.Close()
	if _, err := s.Summary(0, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("Summary of a closed store: %v", err)
	}
}

func TestSummaryBoundsTypes(t *testing.T) {
	s := openStore(t, testConfig(t), WithClock(newClock().Now))
	var ms []msg
	for i := range summaryMaxTypes + 10 {
		ms = append(ms, typed(t0+int64(i), fmt.Sprint("Type", i), i))
	}
	appendAll(s, ms)
	flush(t, s)
	sum, err := s.Summary(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Types) != summaryMaxTypes || sum.OtherTypes != 10 || sum.Scanned != int64(len(ms)) {
		t.Fatalf("%d types named, %d other, %d scanned", len(sum.Types), sum.OtherTypes, sum.Scanned)
	}
}
