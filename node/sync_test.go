package node

import (
	"context"
	"slices"
	"testing"

	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/syncproto"
)

// gapStore records ClearGaps; the rest of HistoryStore is not used.
type gapStore struct {
	HistoryStore
	cleared []history.Gap
}

func (s *gapStore) ClearGaps(from, to int64) {
	s.cleared = append(s.cleared, history.Gap{From: from, To: to})
}
func (s *gapStore) Flush(context.Context) error                     { return nil }
func (s *gapStore) Gaps() []history.Gap                             { return nil }
func (s *gapStore) Horizon() int64                                  { return 0 }
func (s *gapStore) Fingerprint(int64, int64) (int, [16]byte, error) { return 0, [16]byte{}, nil }

// TestSyncClearGaps: a reconciled window is cleared except where the
// peer has gaps of its own.
func TestSyncClearGaps(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer []history.Gap
		want []history.Gap
	}{
		{"peer complete", nil, []history.Gap{{From: 100, To: 200}}},
		{"peer gap inside", []history.Gap{{From: 120, To: 130}}, []history.Gap{{From: 100, To: 120}, {From: 130, To: 200}}},
		{"peer gaps unordered, at the edges", []history.Gap{{From: 190, To: 200}, {From: 100, To: 110}}, []history.Gap{{From: 110, To: 190}}},
		{"peer gap over all", []history.Gap{{From: 100, To: 200}}, nil},
		{"overlapping peer gaps", []history.Gap{{From: 120, To: 150}, {From: 140, To: 160}}, []history.Gap{{From: 100, To: 120}, {From: 160, To: 200}}},
	} {
		st := &gapStore{}
		y := &syncer{store: st}
		y.clearGaps(syncproto.Window{From: 100, To: 200}, tc.peer)
		if !slices.Equal(st.cleared, tc.want) {
			t.Errorf("%s: cleared %v, want %v", tc.name, st.cleared, tc.want)
		}
	}
}
