package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// load reads the store's summary at Open: format, creation time, eviction
// horizon, gaps, bucket totals, oldest and newest entry. A fresh store is
// stamped with its format and a gap from 0 to its creation; an existing
// one gets a gap for the time it was down.
func (s *Store) load() error {
	now := s.opts.clock().UnixMilli()
	corrupt := func(what string, err error) error {
		return &CorruptError{Dir: s.cfg.Dir, Err: fmt.Errorf("%s: %w", what, err)}
	}
	format, err := getValue(s.db, metaFormat)
	if errors.Is(err, pebble.ErrNotFound) {
		empty, err := s.isEmpty()
		if err != nil {
			return corrupt("scan", err)
		}
		if !empty {
			return corrupt("format", errors.New("entries but no format marker"))
		}
		return s.initFresh(now)
	}
	if err != nil {
		return corrupt("read format", err)
	}
	if !bytes.Equal(format, formatVersion) {
		return corrupt("format", fmt.Errorf("unknown version %x", format))
	}
	evicted, err := getInt(s.db, metaEvicted)
	if err != nil {
		return corrupt("eviction horizon", err)
	}
	alive, err := getInt(s.db, metaAlive)
	if err != nil {
		return corrupt("heartbeat", err)
	}
	gaps, err := readGaps(s.db)
	if err != nil {
		return corrupt("gaps", err)
	}
	total, err := sumBuckets(s.db, 0, 1<<62)
	if err != nil {
		return corrupt("buckets", err)
	}
	oldest, newest, err := s.bounds()
	if err != nil {
		return corrupt("bounds", err)
	}
	s.evicted, s.count, s.bytes, s.oldest, s.newest = evicted, total.count, total.bytes, oldest, newest
	s.evictedA.Store(evicted)
	// The relay was not listening from its last heartbeat until now.
	s.gaps = gaps.add(max(alive-s.cfg.GapMargin.Milliseconds(), 0), now).prune(evicted)
	s.gapsDirty = true
	return s.persistMeta(now, pebble.Sync)
}

func (s *Store) initFresh(now int64) error {
	s.gaps = gapSet{}.add(0, now)
	s.gapsDirty = true
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(metaFormat, formatVersion, nil)
	_ = b.Set(metaCreated, encodeInt(now), nil)
	_ = b.Set(metaEvicted, encodeInt(0), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("history: initialise store: %w", err)
	}
	return s.persistMeta(now, pebble.Sync)
}

// persistMeta writes the heartbeat and, if they changed, the gaps. Run by
// the writer (or Open, before the writer starts).
func (s *Store) persistMeta(now int64, sync *pebble.WriteOptions) error {
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(metaAlive, encodeInt(now), nil)
	s.mu.Lock()
	dirty := s.gapsDirty
	gaps := append(gapSet(nil), s.gaps...)
	s.gapsDirty = false
	s.mu.Unlock()
	if dirty {
		_ = b.DeleteRange([]byte{prefixGap}, gapEnd, nil)
		for _, g := range gaps {
			_ = b.Set(gapKey(g.From), encodeInt(g.To), nil)
		}
	}
	if err := b.Commit(sync); err != nil {
		if dirty {
			s.mu.Lock()
			s.gapsDirty = true
			s.mu.Unlock()
		}
		return fmt.Errorf("history: write heartbeat: %w", err)
	}
	return nil
}

func (s *Store) isEmpty() (bool, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	ok := it.First()
	return !ok, errors.Join(it.Error(), it.Close())
}

// bounds finds the oldest and newest stored ts (0, 0 when empty).
func (s *Store) bounds() (oldest, newest int64, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixData}, UpperBound: dataEnd})
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	if !it.First() {
		return 0, 0, it.Error()
	}
	first, err := parseDataKey(it.Key())
	if err != nil {
		return 0, 0, err
	}
	if !it.Last() {
		return 0, 0, it.Error()
	}
	last, err := parseDataKey(it.Key())
	if err != nil {
		return 0, 0, err
	}
	return first.TS, last.TS, nil
}

func getValue(r pebble.Reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// getInt reads an integer meta key; a missing one is 0.
func getInt(r pebble.Reader, key []byte) (int64, error) {
	v, err := getValue(r, key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return decodeInt(v)
}

func readGaps(r pebble.Reader) (gapSet, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixGap}, UpperBound: gapEnd})
	if err != nil {
		return nil, err
	}
	var gs gapSet
	for ok := it.First(); ok; ok = it.Next() {
		v, verr := it.ValueAndErr()
		to, derr := decodeInt(v)
		if len(it.Key()) != 9 || verr != nil || derr != nil {
			return nil, errors.Join(errBadValue, verr, it.Close())
		}
		gs = gs.add(int64(binary.BigEndian.Uint64(it.Key()[1:])), to)
	}
	return gs, errors.Join(it.Error(), it.Close())
}

// sumBuckets adds up the buckets of seconds [fromSec, toSec).
func sumBuckets(r pebble.Reader, fromSec, toSec int64) (bucket, error) {
	var total bucket
	if fromSec >= toSec {
		return total, nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: bucketKey(fromSec), UpperBound: bucketKey(toSec)})
	if err != nil {
		return total, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return total, errors.Join(err, it.Close())
		}
		b, err := decodeBucket(v)
		if err != nil {
			return total, errors.Join(err, it.Close())
		}
		total.add(b)
	}
	return total, errors.Join(it.Error(), it.Close())
}

// sumData adds up the entries with ts in [from, to) by scanning them.
func sumData(r pebble.Reader, from, to int64) (bucket, error) {
	var total bucket
	if from >= to {
		return total, nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: dataBound(from), UpperBound: dataBound(to)})
	if err != nil {
		return total, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		e, err := parseDataKey(it.Key())
		if err != nil {
			return total, errors.Join(err, it.Close())
		}
		lv := it.LazyValue()
		total.addEntry(e.Key, int64(len(it.Key())+lv.Len()))
	}
	return total, errors.Join(it.Error(), it.Close())
}
