package relay

import (
	"context"
	"testing"
)

// TestDedupHash: the dedup set's key tells apart pairs whose strings
// concatenate the same, and is the same for the same pair.
func TestDedupHash(t *testing.T) {
	r := newRouter(t, nil, nil)
	if r.hash("ab", "c") == r.hash("a", "bc") || r.hash("", "abc") == r.hash("abc", "") {
		t.Fatal("two pairs with the same concatenation share a key")
	}
	if r.hash("node", "m1") != r.hash("node", "m1") {
		t.Fatal("one pair, two keys")
	}
	if h := r.hash("node", "m1"); h[0] == h[1] {
		t.Fatal("the two halves of a key are one hash")
	}
	a, b := open(t, r, "node_id=a"), open(t, r, "node_id=b")
	a.send("EntryAnnounce", "bc", "a", "", `1`)
	b.expectOne(t, "EntryAnnounce")
	a.send("EntryAnnounce", "bc", "a", "", `1`) // a duplicate
	b.expectNone(t)
}

func BenchmarkDedupHash(b *testing.B) {
	r, err := New(DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())
	for b.Loop() {
		r.hash("3f1c9a0e2b7d4c58", "ledger-sync-000123456")
	}
}
