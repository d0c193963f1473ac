package main

import (
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram in nanoseconds: 64 linear
// sub-buckets per power of two, so a quantile is within 1/64 (1.6 %) of
// the true value. Not safe for concurrent use: each receiver owns one, and
// they are merged after the run.
type histogram struct {
	counts [64 * 64]uint64
	n      uint64
	max    int64
}

const subBits = 6 // 64 sub-buckets

func bucketOf(v int64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits // >= 1
	return e<<subBits | int(v>>(e-1))&(1<<subBits-1)
}

// lowerBound is the smallest value of bucket b.
func lowerBound(b int) int64 {
	e, m := b>>subBits, int64(b&(1<<subBits-1))
	if e == 0 {
		return m
	}
	return (1<<subBits | m) << (e - 1)
}

func (h *histogram) record(v int64) {
	v = max(v, 0)
	h.counts[bucketOf(v)]++
	h.n++
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value at q (0 < q <= 1): the middle of its bucket,
// never above the maximum.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			lo := lowerBound(b)
			hi := lowerBound(b + 1)
			return time.Duration(min((lo+hi)/2, h.max))
		}
	}
	return time.Duration(h.max)
}

// seqSet records which sequence numbers arrived, to count uniques and
// duplicates.
type seqSet struct {
	words  []uint64
	unique int64
	dup    int64
}

// add records seq and reports whether it is new.
func (s *seqSet) add(seq int64) bool {
	if seq < 0 {
		return false
	}
	w := int(seq >> 6)
	if w >= len(s.words) {
		n := max(2*len(s.words), w+1, 1024)
		nw := make([]uint64, n)
		copy(nw, s.words)
		s.words = nw
	}
	bit := uint64(1) << (seq & 63)
	if s.words[w]&bit != 0 {
		s.dup++
		return false
	}
	s.words[w] |= bit
	s.unique++
	return true
}
