package history

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// janitor runs on the writer goroutine every JanitorInterval: retention
// by age, then by size, then the heartbeat (with gaps if they changed),
// then the free-space check. Running it on the writer keeps one owner for
// every change to entries and buckets, so they never need a lock between
// them.
func (s *Store) janitor() {
	if !s.failed.Load() {
		now := s.opts.clock().UnixMilli()
		err := guard(func() error {
			if err := s.evictAge(now); err != nil {
				return err
			}
			if err := s.evictBytes(); err != nil {
				return err
			}
			// Synced, like the writer's batches: an unsynced write that
			// fails is remembered by the engine, which then panics at a
			// later write in a way no recover survives (a failing disk
			// would take the relay down); a synced one returns the error.
			return s.persistMeta(now, pebble.Sync)
		})
		if err != nil {
			// As for a failed write: the engine is not to be trusted with
			// more (the next write could panic on what it remembered).
			s.failed.Store(true)
			s.log.Error("history: janitor failed; dropping broadcasts until the relay restarts", "err", err)
		}
	}
	s.checkDisk()
	s.logDrops()
}

func (s *Store) evictAge(now int64) error {
	cutoff := now - s.cfg.Retention.Milliseconds()
	s.mu.Lock()
	evicted := s.evicted
	s.mu.Unlock()
	if cutoff <= evicted {
		return nil
	}
	return s.evictBefore(cutoff)
}

// evictBytes drops the oldest entries, whole ts at a time, until the
// logical size is at most 98% of MaxBytes.
func (s *Store) evictBytes() error {
	s.mu.Lock()
	size := s.bytes
	s.mu.Unlock()
	if size <= s.cfg.MaxBytes {
		return nil
	}
	cutoff, err := s.bytesCutoff(size - s.cfg.MaxBytes*98/100)
	if err != nil {
		return fmt.Errorf("history: size cutoff: %w", err)
	}
	return s.evictBefore(cutoff)
}

// bytesCutoff returns the smallest x such that removing every entry with
// ts < x frees at least need bytes: whole buckets from the oldest, then a
// scan of the bucket where need is met.
func (s *Store) bytesCutoff(need int64) (int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixBucket}, UpperBound: bucketEnd})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var acc int64
	for ok := it.First(); ok; ok = it.Next() {
		sec, err := parseBucketKey(it.Key())
		if err != nil {
			return 0, err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, err
		}
		b, err := decodeBucket(v)
		if err != nil {
			return 0, err
		}
		if acc+b.bytes < need {
			acc += b.bytes
			continue
		}
		end := (sec + 1) * bucketLen
		if acc+b.bytes == need {
			return end, nil
		}
		return scanCutoff(s.db, sec*bucketLen, end, need-acc)
	}
	if err := it.Error(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newest + 1, nil
}

// scanCutoff walks entries in [from, to) until need bytes are covered and
// returns the ts after the last one needed.
func scanCutoff(r pebble.Reader, from, to, need int64) (int64, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: dataBound(from), UpperBound: dataBound(to)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var acc int64
	for ok := it.First(); ok; ok = it.Next() {
		e, err := parseDataKey(it.Key())
		if err != nil {
			return 0, err
		}
		lv := it.LazyValue()
		acc += int64(len(it.Key()) + lv.Len())
		if acc >= need {
			return e.TS + 1, nil
		}
	}
	return to, it.Error()
}

// evictBefore deletes every entry with ts < x in one engine batch: a
// range deletion for the entries, whole buckets deleted, the bucket that
// x cuts recomputed from a scan of its evicted part, and the new horizon.
func (s *Store) evictBefore(x int64) error {
	b := s.db.NewBatch()
	defer b.Close()
	lastSec := (x + bucketLen - 1) / bucketLen // buckets with sec*1000 < x
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixBucket}, UpperBound: bucketKey(lastSec)})
	if err != nil {
		return err
	}
	var removed bucket
	for ok := it.First(); ok; ok = it.Next() {
		sec, err := parseBucketKey(it.Key())
		if err != nil {
			return errors.Join(err, it.Close())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		bk, err := decodeBucket(v)
		if err != nil {
			return errors.Join(err, it.Close())
		}
		if (sec+1)*bucketLen <= x {
			removed.add(bk)
			_ = b.Delete(it.Key(), nil)
			continue
		}
		part, err := sumData(s.db, sec*bucketLen, x)
		if err != nil {
			return errors.Join(err, it.Close())
		}
		removed.add(part)
		bk.sub(part)
		if bk.count <= 0 {
			_ = b.Delete(it.Key(), nil)
		} else {
			_ = b.Set(it.Key(), bk.encode(), nil)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	_ = b.DeleteRange([]byte{prefixData}, dataBound(x), nil)
	_ = b.Set(metaEvicted, encodeInt(x), nil)
	// The horizon moves before the entries go: a Range meanwhile answers
	// "incomplete before x" rather than complete over deleted entries.
	s.evictedA.Store(x)
	s.mu.Lock()
	s.evicted = x
	s.mu.Unlock()
	if err := b.Commit(pebble.Sync); err != nil { // synced: see janitor
		return fmt.Errorf("history: evict before %d: %w", x, err)
	}
	oldest, _, err := s.bounds()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count -= removed.count
	s.bytes -= removed.bytes
	s.oldest = oldest
	if s.count == 0 {
		s.oldest, s.newest = 0, 0
	}
	s.gaps = s.gaps.prune(x)
	s.gapsDirty = true
	return nil
}

// checkDisk pauses writing while Dir's filesystem has less than
// MinFreeDisk free, and resumes once twice that is free.
func (s *Store) checkDisk() {
	if s.cfg.MinFreeDisk == 0 {
		return
	}
	du, err := s.opts.fs.GetDiskUsage(s.cfg.Dir)
	if err != nil {
		s.log.Debug("history: disk usage", "err", err)
		return
	}
	free := int64(min(du.AvailBytes, 1<<62))
	switch {
	case !s.lowDisk.Load() && free < s.cfg.MinFreeDisk:
		s.lowDisk.Store(true)
		s.log.Warn("history: disk almost full; dropping broadcasts", "free", free, "dir", s.cfg.Dir)
	case s.lowDisk.Load() && free/2 >= s.cfg.MinFreeDisk: // free/2: 2*MinFreeDisk may overflow
		s.lowDisk.Store(false)
		s.log.Info("history: disk space back; writing again", "free", free, "dir", s.cfg.Dir)
	}
}

// logDrops logs, once per janitor round, how many broadcasts were dropped
// since the last round: per-message logging would flood under overload.
func (s *Store) logDrops() {
	d := s.dropped.Load()
	if d > s.w.loggedDrops {
		s.log.Warn("history: dropped broadcasts", "n", d-s.w.loggedDrops, "total", d)
		s.w.loggedDrops = d
	}
}
