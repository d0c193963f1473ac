package ttlset

import (
	"math/bits"
	"sync"
	"time"
)

// Hash is a key of Hashes: 128 bits of a hash, uniformly distributed.
type Hash [2]uint64

// Hashes is Set for Hash keys, built for the relay's message dedup: a
// quarter of a million keys held for minutes. Each generation is an
// open-addressing table allocated once (16 bytes a slot, at most 3/4
// full) and cleared when it becomes current again: no per-key
// allocation and no garbage at rotation, where Go maps of the same keys
// cost about 48 bytes a key and a new map every generation.
type Hashes struct {
	mu       sync.Mutex
	half     int
	ttl      time.Duration
	now      func() time.Time
	cur, old hashTable
	started  time.Time
}

// NewHashes returns a Hashes of at most size keys (size >= 2), kept as
// Set keeps them (New). now is the clock (nil: time.Now).
func NewHashes(size int, ttl time.Duration, now func() time.Time) *Hashes {
	if now == nil {
		now = time.Now
	}
	half := max(size/2, 1)
	slots := half + half/3 + 1 // load <= 3/4
	return &Hashes{
		half: half, ttl: ttl, now: now,
		cur:     hashTable{slots: make([]Hash, slots)},
		old:     hashTable{slots: make([]Hash, slots)},
		started: now(),
	}
}

// Add records k and reports whether it was new.
func (s *Hashes) Add(k Hash) bool {
	k = stored(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.has(k) || s.old.has(k) {
		return false
	}
	s.rotateLocked()
	s.cur.add(k)
	return true
}

// Has reports whether k is remembered.
func (s *Hashes) Has(k Hash) bool {
	k = stored(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotateLocked()
	return s.cur.has(k) || s.old.has(k)
}

// Remove forgets k.
func (s *Hashes) Remove(k Hash) {
	k = stored(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur.remove(k)
	s.old.remove(k)
}

// Len is the number of keys remembered.
func (s *Hashes) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.n + s.old.n
}

func (s *Hashes) rotateLocked() {
	now := s.now()
	if s.cur.n < s.half && now.Sub(s.started) < s.ttl {
		return
	}
	s.old, s.cur = s.cur, s.old
	clear(s.cur.slots)
	s.cur.n = 0
	s.started = now
}

// stored maps the one key that marks an empty slot to another (a 2^-128
// chance of confusing two messages).
func stored(k Hash) Hash {
	if k == (Hash{}) {
		return Hash{0, 1}
	}
	return k
}

// hashTable is linear probing over slots; the zero Hash is an empty slot.
type hashTable struct {
	slots []Hash
	n     int
}

// home is k's first slot: k[0] scaled to the table (no modulo).
func (t *hashTable) home(k Hash) int {
	hi, _ := bits.Mul64(k[0], uint64(len(t.slots)))
	return int(hi)
}

func (t *hashTable) next(i int) int {
	if i++; i == len(t.slots) {
		return 0
	}
	return i
}

// find returns k's slot, or the empty slot where it would go.
func (t *hashTable) find(k Hash) (int, bool) {
	for i := t.home(k); ; i = t.next(i) {
		switch t.slots[i] {
		case k:
			return i, true
		case Hash{}:
			return i, false
		}
	}
}

func (t *hashTable) has(k Hash) bool {
	_, ok := t.find(k)
	return ok
}

// add puts k, not present, in the table; the caller keeps n < len(slots)
// (rotation at half keys, with a third of that in spare slots).
func (t *hashTable) add(k Hash) {
	i, _ := t.find(k)
	t.slots[i] = k
	t.n++
}

// remove deletes k by backward shift: every key after it in its run that
// may live in the freed slot moves there, so that no lookup stops early.
func (t *hashTable) remove(k Hash) {
	i, ok := t.find(k)
	if !ok {
		return
	}
	t.n--
	for j := t.next(i); ; j = t.next(j) {
		if t.slots[j] == (Hash{}) {
			break
		}
		// The key at j may move to i unless its home lies cyclically in
		// (i, j].
		h := t.home(t.slots[j])
		if (i < j && (h <= i || h > j)) || (i > j && h <= i && h > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = Hash{}
}
