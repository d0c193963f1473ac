package history

import (
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
)

// MaxLimit is the most broadcasts one Range answers (SPEC §7: the
// default and maximum of a HistoryRequest's limit).
const MaxLimit = 10_000

// maxScan bounds the entries one Range examines, skipped ones included
// (checked between ts groups).
const maxScan = 10 * MaxLimit

// Result describes a Range answer.
type Result struct {
	// Count is how many broadcasts fn was given.
	Count int
	// Complete is true when the answer holds every broadcast in the window
	// that the federation had: not cut, since >= the eviction horizon, and
	// no recorded gap meets [since, until).
	Complete bool
	// NextSince, when not 0, says the answer was cut (limit, byte cap or
	// scan cap): asking again from NextSince continues it with no loss and
	// no duplicate, because an answer is always cut between two ts.
	NextSince int64
	// Oldest is the ts of the oldest stored entry (0 when empty).
	Oldest int64
}

// Range calls fn with every stored broadcast with since <= ts < until
// (until <= 0: no upper bound) whose sender is not skipSender, in ts
// order, ties by message key. frame is valid only during the call, and
// fn runs with the store's read lock held (Close waits for it): it may
// block on a slow client, but not forever. Range stops at limit
// broadcasts (<= 0 or > MaxLimit: MaxLimit), past RangeMaxBytes of
// frames, or past 100,000 examined entries (skipped ones too), always
// between two ts: a ts group is answered whole or not at all. When more
// than limit broadcasts share the first ts, that group is answered whole
// anyway (the answer exceeds limit); only past MaxLimit in one
// millisecond does fn get the first MaxLimit and NextSince is ts+1,
// losing the rest of that millisecond. An error from fn stops Range and is returned.
func (s *Store) Range(since, until int64, limit int, skipSender string,
	fn func(ts int64, sender string, frame []byte) error) (Result, error) {
	if limit <= 0 || limit > MaxLimit {
		limit = MaxLimit
	}
	since = max(since, 0)
	if until <= 0 {
		until = math.MaxInt64
	}
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.dbClosed {
		return Result{}, ErrClosed
	}
	if since >= until {
		return Result{Complete: true, Oldest: s.Stats().OldestTS}, nil
	}
	upper := dataEnd
	if until != math.MaxInt64 {
		upper = dataBound(until)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: dataBound(since), UpperBound: upper})
	if err != nil {
		return Result{}, fmt.Errorf("history: range: %w", err)
	}
	// The summary is read after the iterator is made: a gap or eviction
	// that happens in between can only make the answer more cautious.
	s.mu.Lock()
	res := Result{Oldest: s.oldest}
	covered := since >= s.evicted && !s.gaps.overlaps(since, until)
	s.mu.Unlock()

	r := ranger{fn: fn, limit: limit, maxBytes: s.cfg.RangeMaxBytes, res: &res}
	err = r.run(it, skipSender)
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("history: range: %w", cerr)
	}
	if err != nil {
		res.Complete = false
		return res, err
	}
	res.Complete = covered && res.NextSince == 0
	return res, nil
}

// ranger holds one Range call's progress: the ts group being gathered
// (copied into arena, since the iterator's bytes do not outlive a step)
// and what was sent.
type ranger struct {
	fn       func(ts int64, sender string, frame []byte) error
	limit    int
	maxBytes int64
	res      *Result

	groupTS int64
	group   []span // sender and frame as offsets into arena
	arena   []byte
	sent    int64 // frame bytes given to fn
}

type span struct{ s0, s1, f1 int }

func (r *ranger) run(it *pebble.Iterator, skip string) error {
	scanned := 0
	r.groupTS = -1
	for ok := it.First(); ok; ok = it.Next() {
		e, err := parseDataKey(it.Key())
		if err != nil {
			return fmt.Errorf("history: range: %w", err)
		}
		if e.TS != r.groupTS {
			if r.groupTS >= 0 {
				if cut, err := r.closeGroup(); cut || err != nil {
					return err
				}
			}
			if scanned >= maxScan {
				r.res.NextSince = e.TS
				return nil
			}
			r.groupTS = e.TS
		}
		scanned++
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("history: range: %w", err)
		}
		sender, frame, err := decodeValue(v)
		if err != nil {
			return fmt.Errorf("history: range: entry %d/%x: %w", e.TS, e.Key, err)
		}
		if skip != "" && string(sender) == skip {
			continue
		}
		// The first ts group is answered whole (beyond limit if need be,
		// up to MaxLimit), so that asking again from its ts+1 loses none.
		lim := r.limit
		if r.res.Count == 0 {
			lim = MaxLimit
		}
		if r.res.Count+len(r.group) >= lim {
			// One more of this ts does not fit.
			return r.cutInGroup()
		}
		s0 := len(r.arena)
		r.arena = append(r.arena, sender...)
		s1 := len(r.arena)
		r.arena = append(r.arena, frame...)
		r.group = append(r.group, span{s0, s1, len(r.arena)})
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("history: range: %w", err)
	}
	if r.groupTS >= 0 {
		if _, err := r.closeGroup(); err != nil {
			return err
		}
	}
	return nil
}

// closeGroup sends the gathered ts group if it fits the byte cap (the
// first group always fits), else cuts the answer before it.
func (r *ranger) closeGroup() (cut bool, err error) {
	var size int64
	for _, sp := range r.group {
		size += int64(sp.f1 - sp.s1)
	}
	if r.res.Count > 0 && r.sent+size > r.maxBytes {
		r.res.NextSince = r.groupTS
		return true, nil
	}
	return false, r.send()
}

// cutInGroup handles a ts group that outgrew the limit: if something was
// sent already, the answer ends before the group; else the group alone is
// over the limit and is sent truncated, continuing after its ts.
func (r *ranger) cutInGroup() error {
	if r.res.Count > 0 {
		r.res.NextSince = r.groupTS
		return nil
	}
	r.res.NextSince = r.groupTS + 1
	return r.send()
}

func (r *ranger) send() error {
	for _, sp := range r.group {
		frame := r.arena[sp.s1:sp.f1]
		if err := r.fn(r.groupTS, string(r.arena[sp.s0:sp.s1]), frame); err != nil {
			return err
		}
		r.res.Count++
		r.sent += int64(len(frame))
	}
	r.group = r.group[:0]
	r.arena = r.arena[:0]
	return nil
}

// Fingerprint returns the number of entries with ts in [from, to) and
// the XOR of their message keys, from one consistent snapshot: bucket sums
// for the whole seconds inside the range, a scan for the partial seconds
// at its ends.
func (s *Store) Fingerprint(from, to int64) (count int, fp [16]byte, err error) {
	from, to = max(from, 0), min(to, 1<<62)
	if from >= to {
		return 0, fp, nil
	}
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.dbClosed {
		return 0, fp, ErrClosed
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	lo := (from + bucketLen - 1) / bucketLen * bucketLen
	hi := to / bucketLen * bucketLen
	var total bucket
	if lo >= hi {
		total, err = sumData(snap, from, to)
	} else {
		var parts [3]bucket
		parts[0], err = sumData(snap, from, lo)
		if err == nil {
			parts[1], err = sumBuckets(snap, lo/bucketLen, hi/bucketLen)
		}
		if err == nil {
			parts[2], err = sumData(snap, hi, to)
		}
		for _, p := range parts {
			total.add(p)
		}
	}
	if err != nil {
		return 0, fp, fmt.Errorf("history: fingerprint: %w", err)
	}
	return int(total.count), total.xor, nil
}

// Keys returns up to limit entries with ts in [from, to), in order.
func (s *Store) Keys(from, to int64, limit int) ([]Entry, error) {
	from = max(from, 0)
	if from >= to || limit <= 0 {
		return nil, nil
	}
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.dbClosed {
		return nil, ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: dataBound(from), UpperBound: dataBound(to)})
	if err != nil {
		return nil, fmt.Errorf("history: keys: %w", err)
	}
	var out []Entry
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		e, err := parseDataKey(it.Key())
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		out = append(out, e)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("history: keys: %w", err)
	}
	return out, nil
}

// Get returns the stored broadcast (ts, key), or ErrNotFound.
func (s *Store) Get(ts int64, key [16]byte) (sender string, frame []byte, err error) {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.dbClosed {
		return "", nil, ErrClosed
	}
	v, err := getValue(s.db, dataKey(ts, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return "", nil, ErrNotFound
	}
	if err != nil {
		return "", nil, fmt.Errorf("history: get: %w", err)
	}
	snd, frame, err := decodeValue(v)
	if err != nil {
		return "", nil, &CorruptError{Dir: s.cfg.Dir, Err: err}
	}
	return string(snd), frame, nil
}
