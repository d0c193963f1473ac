package relay

import (
	"sync"
	"time"
)

// dedup remembers (sender_id, message_id) pairs in two generations: a pair
// is looked up in both, added to the current one, and the older generation
// is dropped when the current one is full or older than ttl. Memory is
// bounded by size pairs; a pair is remembered for at least min(ttl, the
// time size/2 new pairs take to arrive).
type dedup struct {
	mu       sync.Mutex
	half     int
	ttl      time.Duration
	now      func() time.Time
	cur, old map[dedupKey]struct{}
	started  time.Time // when cur became current
}

type dedupKey struct{ sender, id string }

func newDedup(size int, ttl time.Duration, now func() time.Time) *dedup {
	d := &dedup{half: size / 2, ttl: ttl, now: now}
	d.cur = make(map[dedupKey]struct{})
	d.old = make(map[dedupKey]struct{})
	d.started = now()
	return d
}

// add records the pair and reports whether it was new.
func (d *dedup) add(sender, id string) bool {
	k := dedupKey{sender, id}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.cur[k]; ok {
		return false
	}
	if _, ok := d.old[k]; ok {
		return false
	}
	if len(d.cur) >= d.half || d.now().Sub(d.started) >= d.ttl {
		d.old, d.cur = d.cur, make(map[dedupKey]struct{}, len(d.cur))
		d.started = d.now()
	}
	d.cur[k] = struct{}{}
	return true
}

// remove forgets the pair: a message that was not delivered may come again.
func (d *dedup) remove(sender, id string) {
	k := dedupKey{sender, id}
	d.mu.Lock()
	delete(d.cur, k)
	delete(d.old, k)
	d.mu.Unlock()
}

// len is the number of pairs remembered.
func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.cur) + len(d.old)
}
