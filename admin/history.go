package admin

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gsio-net/gsio-relay/history"
)

// GET /api/v1/history: what the relay's broadcast store holds (SPEC
// section 7), for `gsio-relay history`. Served when the server is built
// WithHistory; the document's types are here with the handler and the
// Client method.

// HistoryStats is what /api/v1/history reads: the relay's store
// (*history.Store).
type HistoryStats interface {
	Stats() history.Stats
	// Summary reports on the broadcasts with ts >= since, reading the
	// message_type of at most maxScan of them.
	Summary(since int64, maxScan int) (history.Summary, error)
}

// historyMaxScan bounds the broadcasts one request reads to count them by
// type (the store bounds the bytes too): the newest 100,000 of the window.
const historyMaxScan = 100_000

// WithHistory serves GET /api/v1/history from h (behind the token, like
// every /api/v1 path). A nil h, for a relay run with --history=false,
// answers {"enabled":false}.
func WithHistory(h HistoryStats) Option {
	return WithHandler("GET /api/v1/history", historyHandler(h))
}

// History is GET /api/v1/history?since_ms=T (T unix ms, default 0: all).
// Enabled false means the relay keeps no history; nothing else is set.
type History struct {
	Enabled bool `json:"enabled"`
	// The whole store.
	Count    int64 `json:"count"`     // broadcasts stored
	Bytes    int64 `json:"bytes"`     // their logical size (keys + values): what --history-max-bytes bounds
	OldestMS int64 `json:"oldest_ms"` // federation ts of the oldest stored broadcast (unix ms); 0 when empty
	NewestMS int64 `json:"newest_ms"` // and of the newest
	// Since the relay started.
	Writes     int64 `json:"writes"`     // broadcasts stored
	Dropped    int64 `json:"dropped"`    // broadcasts not stored (queue full, disk low or failing): each leaves a gap
	Duplicates int64 `json:"duplicates"` // broadcasts already stored
	// Now.
	Queued  int  `json:"queued"`   // broadcasts waiting to be written
	LowDisk bool `json:"low_disk"` // writing paused for lack of free disk
	Failed  bool `json:"failed"`   // the store failed: broadcasts are dropped until the relay restarts

	Window HistoryWindow `json:"window"` // the broadcasts with ts >= since_ms
}

// HistoryWindow describes the stored broadcasts with ts >= SinceMS.
type HistoryWindow struct {
	SinceMS int64 `json:"since_ms"`
	Count   int64 `json:"count"` // broadcasts stored in the window
	Bytes   int64 `json:"bytes"` // their logical size
	// Complete: the relay holds every broadcast of the window the
	// federation had, as far as it knows (nothing dropped by retention,
	// no recorded gap meets it); a HistoryRequest from since_ms says the
	// same in RelayHistoryEnd.
	Complete bool         `json:"complete"`
	Gaps     []HistoryGap `json:"gaps"` // recorded gaps that meet the window, in ts order
	// Types counts broadcasts by message_type, over the `counted` newest
	// of the window; other_types counts those beyond 256 distinct types,
	// or unreadable. partial: counted < count, and types covers only the
	// broadcasts from counted_from_ms on.
	Types         map[string]int64 `json:"types"`
	OtherTypes    int64            `json:"other_types"`
	Counted       int64            `json:"counted"`
	Partial       bool             `json:"partial"`
	CountedFromMS int64            `json:"counted_from_ms"`
}

// HistoryGap is a window of ts, [from_ms, to_ms), in which the store may
// lack broadcasts: before the store was created (from_ms 0), while the
// relay was down, or broadcasts it dropped. Reconciliation with other
// relays repairs gaps.
type HistoryGap struct {
	FromMS int64 `json:"from_ms"`
	ToMS   int64 `json:"to_ms"`
}

func historyHandler(h HistoryStats) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var since int64
		if v := r.URL.Query().Get("since_ms"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				writeJSON(w, http.StatusBadRequest, apiError{"since_ms must be an integer >= 0 (unix ms)"})
				return
			}
			since = n
		}
		if h == nil {
			writeJSON(w, http.StatusOK, History{Window: HistoryWindow{SinceMS: since, Gaps: []HistoryGap{}, Types: map[string]int64{}}})
			return
		}
		sum, err := h.Summary(since, historyMaxScan)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{err.Error()})
			return
		}
		st := h.Stats()
		doc := History{
			Enabled: true,
			Count:   st.Count, Bytes: st.Bytes, OldestMS: st.OldestTS, NewestMS: st.NewestTS,
			Writes: st.Writes, Dropped: st.Dropped, Duplicates: st.Duplicates,
			Queued: st.Queued, LowDisk: st.LowDisk, Failed: st.Failed,
			Window: HistoryWindow{
				SinceMS: sum.Since, Count: sum.Count, Bytes: sum.Bytes, Complete: sum.Complete,
				Gaps:  make([]HistoryGap, 0, len(sum.Gaps)),
				Types: sum.Types, OtherTypes: sum.OtherTypes,
				Counted: sum.Scanned, Partial: sum.Partial, CountedFromMS: sum.ScannedFrom,
			},
		}
		for _, g := range sum.Gaps {
			doc.Window.Gaps = append(doc.Window.Gaps, HistoryGap{g.From, g.To})
		}
		writeJSON(w, http.StatusOK, doc)
	}
}

// History fetches /api/v1/history?since_ms=sinceMS.
func (c *Client) History(ctx context.Context, sinceMS int64) (v History, raw []byte, err error) {
	raw, err = c.getJSON(ctx, "/api/v1/history?since_ms="+strconv.FormatInt(sinceMS, 10), &v)
	return v, raw, err
}
