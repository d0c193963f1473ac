package history

import (
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"

	"github.com/gsio-net/gsio-relay/message"
)

// Summary is for operators (the admin API's /api/v1/history and
// `gsio-relay history`): what the store holds from a time on. It is the
// one read of the store that looks inside a frame, for its message_type
// (with package message, a leaf); everything else treats frames as bytes.

// Bounds of one Summary call, beyond maxScan: the frame bytes it parses,
// and the distinct message types it names (the rest are OtherTypes: a
// client may invent a type per message).
const (
	summaryMaxBytes = 64 << 20
	summaryMaxTypes = 256
)

// Summary describes the stored broadcasts with ts >= Since.
type Summary struct {
	// Since is the window's start, as asked (at least 0).
	Since int64
	// Count and Bytes are the broadcasts stored in the window and their
	// logical size (keys + values): exact, from the per-second sums and a
	// scan of the first, partial second.
	Count, Bytes int64
	// Complete is true when the store holds every broadcast of the window
	// that the federation had, as far as it knows: Since is not before
	// what retention may have dropped, and no recorded gap meets the
	// window. A HistoryRequest from Since would say the same (unless its
	// limit cuts it).
	Complete bool
	// Gaps are the recorded gaps that meet the window, in ts order, as
	// recorded (the first may begin before Since).
	Gaps []Gap
	// Types counts the broadcasts examined by message_type. OtherTypes
	// counts those whose type is beyond the first 256 distinct ones, or
	// whose frame cannot be read.
	Types      map[string]int64
	OtherTypes int64
	// Scanned is how many broadcasts were examined for Types, newest
	// first. Partial is true when the scan stopped (maxScan entries or 64
	// MiB of frames) before the window's start: Types then covers only the
	// Scanned newest, from ScannedFrom on.
	Scanned     int64
	Partial     bool
	ScannedFrom int64 // ts of the oldest broadcast examined; 0 when none
}

// Summary reports on the broadcasts with ts >= since: count, size,
// completeness and gaps exactly, and the count per message_type of at
// most maxScan of them, newest first (maxScan <= 0: none). Its work is
// bounded by maxScan entries and 64 MiB of frames, plus one second of
// keys for the window's first, partial second.
func (s *Store) Summary(since int64, maxScan int) (Summary, error) {
	since = max(since, 0)
	sum := Summary{Since: since, Types: map[string]int64{}}
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.dbClosed {
		return sum, ErrClosed
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	// The in-memory summary is read after the snapshot is taken: a gap
	// or an eviction in between only makes the answer more cautious.
	s.mu.Lock()
	sum.Complete = since >= s.evicted && !s.gaps.overlaps(since, math.MaxInt64)
	for _, g := range s.gaps {
		if g.To > since {
			sum.Gaps = append(sum.Gaps, g)
		}
	}
	s.mu.Unlock()

	total, err := windowTotals(snap, since)
	if err != nil {
		return sum, fmt.Errorf("history: summary: %w", err)
	}
	sum.Count, sum.Bytes = total.count, total.bytes
	if err := sum.countTypes(snap, maxScan); err != nil {
		return sum, fmt.Errorf("history: summary: %w", err)
	}
	return sum, nil
}

// windowTotals sums the entries with ts >= since: a scan up to the next
// whole second, the per-second buckets from there.
func windowTotals(r pebble.Reader, since int64) (bucket, error) {
	lo := (since + bucketLen - 1) / bucketLen * bucketLen
	total, err := sumData(r, since, lo)
	if err != nil {
		return total, err
	}
	rest, err := sumBuckets(r, lo/bucketLen, 1<<62)
	total.add(rest)
	return total, err
}

// countTypes reads the message_type of the window's entries, newest
// first, within maxScan entries and summaryMaxBytes of frames.
func (sum *Summary) countTypes(r pebble.Reader, maxScan int) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: dataBound(sum.Since), UpperBound: dataEnd})
	if err != nil {
		return err
	}
	var read int64
	ok := it.Last()
	for ; ok; ok = it.Prev() {
		if sum.Scanned >= int64(maxScan) || read >= summaryMaxBytes {
			break
		}
		e, err := parseDataKey(it.Key())
		if err != nil {
			return errors.Join(err, it.Close())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		read += int64(len(v))
		sum.Scanned++
		sum.ScannedFrom = e.TS
		typ := ""
		if _, frame, err := decodeValue(v); err == nil {
			if env, err := message.Parse(frame); err == nil {
				typ = env.Type
			}
		}
		switch _, known := sum.Types[typ]; {
		case typ == "":
			sum.OtherTypes++
		case known || len(sum.Types) < summaryMaxTypes:
			sum.Types[typ]++
		default:
			sum.OtherTypes++
		}
	}
	sum.Partial = ok
	return errors.Join(it.Error(), it.Close())
}
