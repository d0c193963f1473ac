// Package ttlset is the bounded "have I seen this?" set of the relay:
// Set for any comparable key (the direct-message seen set and sent log in
// node/, the client's dedup), Hashes for 128-bit hashes in fixed tables
// (the message dedup in relay/). Both keep two generations; they start no
// goroutines, and expiry happens on Add and Has.
package ttlset

import (
	"sync"
	"time"
)

// Set remembers keys in two generations: a key is looked up in both and
// added to the current one; the older generation is dropped when the
// current one holds size/2 keys or is older than ttl. Memory is bounded by
// size keys, and a key is remembered for at least min(ttl, the time size/2
// new keys take to arrive). Safe for concurrent use.
type Set[K comparable] struct {
	mu       sync.Mutex
	half     int
	ttl      time.Duration
	now      func() time.Time
	cur, old map[K]struct{}
	started  time.Time // when cur became current
}

// New returns a Set of at most size keys (size >= 2) kept for ttl. now is
// the clock (nil: time.Now).
func New[K comparable](size int, ttl time.Duration, now func() time.Time) *Set[K] {
	if now == nil {
		now = time.Now
	}
	if size < 2 {
		size = 2
	}
	return &Set[K]{
		half:    size / 2,
		ttl:     ttl,
		now:     now,
		cur:     make(map[K]struct{}),
		old:     make(map[K]struct{}),
		started: now(),
	}
}

// Add records k and reports whether it was new.
func (s *Set[K]) Add(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hasLocked(k) {
		return false
	}
	s.rotateLocked()
	s.cur[k] = struct{}{}
	return true
}

// Has reports whether k is remembered.
func (s *Set[K]) Has(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotateLocked()
	return s.hasLocked(k)
}

// Remove forgets k: a message that was not delivered may come again.
func (s *Set[K]) Remove(k K) {
	s.mu.Lock()
	delete(s.cur, k)
	delete(s.old, k)
	s.mu.Unlock()
}

// Len is the number of keys remembered.
func (s *Set[K]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cur) + len(s.old)
}

func (s *Set[K]) hasLocked(k K) bool {
	if _, ok := s.cur[k]; ok {
		return true
	}
	_, ok := s.old[k]
	return ok
}

// rotateLocked starts a new generation when the current one is full or
// older than ttl.
func (s *Set[K]) rotateLocked() {
	now := s.now()
	if len(s.cur) < s.half && now.Sub(s.started) < s.ttl {
		return
	}
	s.old, s.cur = s.cur, make(map[K]struct{}, len(s.cur))
	s.started = now
}
