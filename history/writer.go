package history

import (
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// writerState belongs to the writer goroutine alone.
type writerState struct {
	pending     []item
	seen        map[Entry]struct{}
	deltas      map[int64]bucket
	key         [dataKeyLen]byte
	val         []byte
	loggedDrops int64
	// high is the highest ts ever committed (at least): an entry with a
	// later ts cannot be stored yet, and needs no duplicate lookup. A
	// broadcast has one ts federation-wide, so live traffic, whose ts
	// grows, skips the lookup; reconciled and reordered entries do not.
	high int64
}

// run is the writer: the one goroutine that changes the store. It commits
// queued broadcasts in batches (BatchSize, or FlushInterval after the
// first one), and on every JanitorInterval applies retention, writes the
// heartbeat and gaps and checks free disk. It exits when Close cancels
// its context, after draining the queue.
func (s *Store) run() {
	defer s.wg.Done()
	defer close(s.done)
	s.w.pending = make([]item, 0, s.cfg.BatchSize)
	s.w.seen = make(map[Entry]struct{})
	s.w.deltas = make(map[int64]bucket)
	s.mu.Lock()
	s.w.high = s.newest
	s.mu.Unlock()
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	defer flush.Stop()
	janitor := time.NewTicker(s.cfg.JanitorInterval)
	defer janitor.Stop()
	s.checkDisk()
	for {
		select {
		case it := <-s.queue:
			if s.take(it) {
				flush.Stop()
			} else if len(s.w.pending) == 1 {
				flush.Reset(s.cfg.FlushInterval)
			}
		case <-flush.C:
			s.commit()
		case <-janitor.C:
			s.janitor()
		case <-s.ctx.Done():
			s.drain()
			return
		}
	}
}

// take adds it to the pending batch, committing when the batch is full or
// it is a Flush marker. It reports whether it committed.
func (s *Store) take(it item) bool {
	if it.flush != nil {
		s.commit()
		close(it.flush)
		return true
	}
	s.w.pending = append(s.w.pending, it)
	if len(s.w.pending) >= s.cfg.BatchSize {
		s.commit()
		return true
	}
	return false
}

// drain commits what is queued when Close is called, for at most
// CloseTimeout, drops the rest, and writes the final heartbeat.
func (s *Store) drain() {
	deadline := time.Now().Add(s.cfg.CloseTimeout)
	for {
		select {
		case it := <-s.queue:
			if time.Now().Before(deadline) {
				s.take(it)
				continue
			}
			if it.flush != nil {
				close(it.flush)
				continue
			}
			s.queuedBytes.Add(-int64(len(it.frame) + len(it.sender) + itemOverhead))
			s.drop(it.ts, it.ts+1, 1)
			continue
		default:
		}
		break
	}
	s.commit()
	if !s.failed.Load() {
		if err := guard(func() error { return s.persistMeta(s.opts.clock().UnixMilli(), pebble.Sync) }); err != nil {
			s.log.Warn("history: final heartbeat", "err", err)
		}
	}
	s.logDrops()
}

// commit writes the pending batch, or drops it (recording a gap over its
// ts span) when the disk is low or the engine has failed. A failed commit
// marks the engine failed: after a failed WAL write the engine cannot be
// trusted until it is reopened.
func (s *Store) commit() {
	batch := s.w.pending
	if len(batch) == 0 {
		return
	}
	defer func() {
		clear(batch) // release the frames
		s.w.pending = batch[:0]
	}()
	var queued int64
	for _, it := range batch {
		queued += int64(len(it.frame) + len(it.sender) + itemOverhead)
	}
	defer s.queuedBytes.Add(-queued)
	if s.opts.beforeCommit != nil {
		s.opts.beforeCommit()
	}
	if !s.failed.Load() && !s.lowDisk.Load() {
		err := guard(func() error { return s.writeBatch(batch) })
		if err == nil {
			return
		}
		s.failed.Store(true)
		s.log.Error("history: write failed; dropping broadcasts until the relay restarts", "err", err)
	}
	lo, hi := batch[0].ts, batch[0].ts
	for _, it := range batch {
		lo, hi = min(lo, it.ts), max(hi, it.ts)
	}
	s.drop(lo, hi+1, len(batch))
}

// writeBatch stores the new entries of batch with their bucket updates in
// one synced engine batch, skipping duplicates (in the batch or stored).
func (s *Store) writeBatch(batch []item) error {
	b := s.db.NewBatch()
	defer b.Close()
	clear(s.w.seen)
	clear(s.w.deltas)
	evicted := s.evictedA.Load()
	var dups, stale int64
	lo, hi := int64(-1), int64(-1)
	for _, it := range batch {
		if it.ts < evicted {
			stale++
			continue
		}
		e := Entry{TS: it.ts, Key: it.key}
		if _, ok := s.w.seen[e]; ok {
			dups++
			continue
		}
		s.w.seen[e] = struct{}{}
		k := s.w.key[:]
		putDataKey(k, it.ts, it.key)
		if it.ts <= s.w.high {
			if _, closer, err := s.db.Get(k); err == nil {
				closer.Close()
				dups++
				continue
			} else if !errors.Is(err, pebble.ErrNotFound) {
				return err
			}
		}
		s.w.val = appendValue(s.w.val[:0], it.sender, it.frame)
		if err := b.Set(k, s.w.val, nil); err != nil {
			return err
		}
		sec := it.ts / bucketLen
		d := s.w.deltas[sec]
		d.addEntry(it.key, int64(len(k)+len(s.w.val)))
		s.w.deltas[sec] = d
		if lo < 0 || it.ts < lo {
			lo = it.ts
		}
		hi = max(hi, it.ts)
	}
	s.dups.Add(dups)
	s.stale.Add(stale)
	if len(s.w.deltas) == 0 {
		return nil
	}
	var added bucket
	for sec, d := range s.w.deltas {
		cur, err := getBucket(s.db, sec)
		if err != nil {
			return err
		}
		cur.add(d)
		added.add(d)
		if err := b.Set(bucketKey(sec), cur.encode(), nil); err != nil {
			return err
		}
	}
	// No heartbeat here: the janitor's (every JanitorInterval, well
	// within GapMargin) is enough, and a meta key in every batch would
	// make every flushed table span the whole key space.
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.w.high = max(s.w.high, hi)
	s.writes.Add(added.count)
	s.mu.Lock()
	if s.count == 0 || lo < s.oldest {
		s.oldest = lo
	}
	s.newest = max(s.newest, hi)
	s.count += added.count
	s.bytes += added.bytes
	s.mu.Unlock()
	return nil
}

func getBucket(r pebble.Reader, sec int64) (bucket, error) {
	v, err := getValue(r, bucketKey(sec))
	if errors.Is(err, pebble.ErrNotFound) {
		return bucket{}, nil
	}
	if err != nil {
		return bucket{}, err
	}
	return decodeBucket(v)
}
