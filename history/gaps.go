package history

import (
	"slices"
	"sort"
)

// Gap is a window of ts, [From, To), in which the store may lack
// broadcasts that other relays have: messages dropped on a full queue or a
// failing disk, the time the relay was down, the time before the store was
// created. Reconciliation repairs a window and then calls ClearGaps.
type Gap struct {
	From, To int64
}

// maxGaps bounds the gap list: past it the closer half of neighbouring
// gaps are merged (a merged gap also covers the good stretch between its
// parts, which only errs towards reporting incomplete). Halving at once
// keeps add amortised cheap on Append's drop path.
const maxGaps = 4096

// gapSet is a sorted list of disjoint, non-adjacent gaps. Not safe for
// concurrent use: Store.mu guards it.
type gapSet []Gap

// add inserts [from, to), merging what it overlaps or touches.
func (s gapSet) add(from, to int64) gapSet {
	if from >= to {
		return s
	}
	// First gap that ends at or after from: it may touch the new one.
	i := sort.Search(len(s), func(i int) bool { return s[i].To >= from })
	j := i
	for j < len(s) && s[j].From <= to {
		from = min(from, s[j].From)
		to = max(to, s[j].To)
		j++
	}
	s = slices.Replace(s, i, j, Gap{from, to})
	if len(s) > maxGaps {
		s = s.coarsen()
	}
	return s
}

// coarsen merges neighbours pairwise, (0,1), (2,3), ..., where they are
// no further apart than the median distance: the list shrinks by up to
// half and the gaps it widens least are the ones merged.
func (s gapSet) coarsen() gapSet {
	dist := make([]int64, len(s)-1)
	for i := range dist {
		dist[i] = s[i+1].From - s[i].To
	}
	slices.Sort(dist)
	limit := dist[len(dist)/2]
	out := s[:0]
	for i := 0; i < len(s); i += 2 {
		g := s[i]
		if i+1 < len(s) {
			if s[i+1].From-g.To <= limit {
				g.To = s[i+1].To
			} else {
				out = append(out, g)
				g = s[i+1]
			}
		}
		out = append(out, g)
	}
	return out
}

// clear removes [from, to) from every gap, splitting one that straddles it.
func (s gapSet) clear(from, to int64) gapSet {
	if from >= to {
		return s
	}
	var out gapSet
	for _, g := range s {
		if g.To <= from || g.From >= to {
			out = append(out, g)
			continue
		}
		if g.From < from {
			out = append(out, Gap{g.From, from})
		}
		if g.To > to {
			out = append(out, Gap{to, g.To})
		}
	}
	return out
}

// overlaps reports whether some gap meets [from, to).
func (s gapSet) overlaps(from, to int64) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].To > from })
	return i < len(s) && s[i].From < to
}

// prune drops what lies before ts: the store claims nothing there anyway.
func (s gapSet) prune(ts int64) gapSet {
	i := sort.Search(len(s), func(i int) bool { return s[i].To > ts })
	s = slices.Delete(s, 0, i)
	if len(s) > 0 && s[0].From < ts {
		s[0].From = ts
	}
	return s
}

// MarkGap records that the store may lack broadcasts with ts in
// [from, to). Range answers that meet it are not Complete.
func (s *Store) MarkGap(from, to int64) {
	s.mu.Lock()
	s.gaps = s.gaps.add(max(from, 0), to)
	s.gapsDirty = true
	s.mu.Unlock()
}

// ClearGaps records that [from, to) has been repaired (reconciled with
// other relays): gaps within it are removed.
func (s *Store) ClearGaps(from, to int64) {
	s.mu.Lock()
	s.gaps = s.gaps.clear(from, to)
	s.gapsDirty = true
	s.mu.Unlock()
}

// Gaps returns the recorded gaps in ts order.
func (s *Store) Gaps() []Gap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.gaps)
}

// Horizon is the ts before which the store may have dropped entries
// (retention, MaxBytes); it only moves forward. Reconciliation never
// compares a window that starts before either side's horizon.
func (s *Store) Horizon() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evicted
}
