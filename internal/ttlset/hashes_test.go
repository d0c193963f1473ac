package ttlset

import (
	"testing"
	"time"
)

func TestHashesAddHasRemove(t *testing.T) {
	s := NewHashes(16, time.Minute, nil)
	a, b := Hash{1, 2}, Hash{3, 4}
	if !s.Add(a) || s.Add(a) {
		t.Fatal("Add: first not new, or second new")
	}
	if !s.Has(a) || s.Has(b) {
		t.Fatal("Has wrong")
	}
	s.Remove(a)
	if s.Has(a) || !s.Add(a) {
		t.Fatal("a removed key is still there")
	}
	if !s.Add(Hash{}) || s.Add(Hash{}) || !s.Has(Hash{}) {
		t.Fatal("the zero key")
	}
}

func TestHashesBoundedBySize(t *testing.T) {
	s := NewHashes(100, time.Hour, nil)
	key := func(i uint64) Hash { return Hash{i * 0x9e3779b97f4a7c15, i} }
	for i := range uint64(1000) {
		s.Add(key(i))
		if s.Len() > 100 {
			t.Fatalf("%d keys after %d adds, want <= 100", s.Len(), i+1)
		}
	}
	// The newest half is remembered, the oldest is gone.
	if !s.Has(key(999)) || s.Has(key(0)) {
		t.Fatal("wrong generation kept")
	}
}

func TestHashesExpireAfterTTL(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	s := NewHashes(100, time.Minute, c.now)
	s.Add(Hash{7, 7})
	c.t = c.t.Add(61 * time.Second)
	if !s.Has(Hash{7, 7}) {
		t.Fatal("gone after one ttl (kept for at least ttl)")
	}
	c.t = c.t.Add(61 * time.Second)
	if s.Has(Hash{7, 7}) {
		t.Fatal("kept after two ttls")
	}
}

// FuzzHashes checks the table against a map under adds and removes of
// keys chosen to collide (few distinct homes in a small table), across
// rotations.
func FuzzHashes(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0x81, 0x82, 4, 5, 6, 0x84})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, ops []byte) {
		const size = 16
		s := NewHashes(size, time.Hour, nil)
		model := []map[Hash]bool{{}, {}} // cur, old
		for i, op := range ops {
			k := fuzzKey(op)
			inModel := model[0][k] || model[1][k]
			if op&0x80 != 0 {
				s.Remove(k)
				delete(model[0], k)
				delete(model[1], k)
			} else {
				if got := s.Add(k); got == inModel {
					t.Fatalf("op %d: Add(%v) = %v, model has it: %v", i, k, got, inModel)
				}
				if !inModel {
					if len(model[0]) >= size/2 {
						model[1], model[0] = model[0], map[Hash]bool{}
					}
					model[0][k] = true
				}
			}
			if len(model[0]) >= size/2 { // Has starts a new generation first
				model[1], model[0] = model[0], map[Hash]bool{}
			}
			for j := range 16 {
				q := fuzzKey(byte(j))
				if want := model[0][q] || model[1][q]; s.Has(q) != want {
					t.Fatalf("op %d: Has(%v) = %v, want %v", i, q, !want, want)
				}
			}
			if s.Len() != len(model[0])+len(model[1]) {
				t.Fatalf("op %d: Len %d, model %d", i, s.Len(), len(model[0])+len(model[1]))
			}
		}
	})
}

// fuzzKey is one of 16 keys over 8 homes, among them the table's first
// and last slots, so that runs collide and wrap past the end.
func fuzzKey(op byte) Hash {
	homes := [8]uint64{0, ^uint64(0), ^uint64(0) - 1<<60, 1 << 62, 1 << 63, 3 << 62, 1 << 61, 5 << 61}
	return Hash{homes[op&7], uint64(op & 15)}
}

// TestHashesRemoveWraps: removing the head of a run that wraps past the
// table's end moves the rest back over the end, and every key is still
// found.
func TestHashesRemoveWraps(t *testing.T) {
	var tb hashTable
	tb.slots = make([]Hash, 11)
	last := ^uint64(0) // home 10, the last slot
	a, b, c := Hash{last, 1}, Hash{last, 2}, Hash{last, 3}
	d := Hash{0, 4} // home 0, pushed to slot 3 by the wrapped run
	for _, k := range []Hash{a, b, c, d} {
		tb.add(k)
	}
	if tb.home(a) != 10 || tb.slots[10] != a || tb.slots[0] != b || tb.slots[1] != c || tb.slots[2] != d {
		t.Fatalf("setup: %v", tb.slots)
	}
	tb.remove(a)
	if tb.slots[10] != b || tb.slots[0] != c || tb.slots[1] != d || tb.slots[2] != (Hash{}) {
		t.Fatalf("after removing the run's head: %v", tb.slots)
	}
	tb.remove(c) // c at slot 0; d (home 0) moves back into it, b stays
	if tb.slots[10] != b || tb.slots[0] != d || tb.slots[1] != (Hash{}) {
		t.Fatalf("after removing c: %v", tb.slots)
	}
	for _, k := range []Hash{b, d} {
		if !tb.has(k) {
			t.Fatalf("%v lost", k)
		}
	}
	if tb.n != 2 {
		t.Fatalf("n = %d, want 2", tb.n)
	}
}

func BenchmarkHashesAdd(b *testing.B) {
	s := NewHashes(1<<18, time.Hour, nil)
	i := uint64(0)
	for b.Loop() {
		i++
		s.Add(Hash{i * 0x9e3779b97f4a7c15, i})
	}
}

func BenchmarkSetAdd(b *testing.B) {
	s := New[Hash](1<<18, time.Hour, nil)
	i := uint64(0)
	for b.Loop() {
		i++
		s.Add(Hash{i * 0x9e3779b97f4a7c15, i})
	}
}
