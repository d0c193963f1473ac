package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gsio-net/gsio-relay/history"
)

// historyCollector exports the broadcast store's Stats as Prometheus
// metrics, read at each scrape (so history/ needs no Prometheus). The
// counters count from the relay's start.
type historyCollector struct {
	stats func() history.Stats
}

func newHistoryCollector(store *history.Store) prometheus.Collector {
	return historyCollector{stats: store.Stats}
}

var (
	histBytes = prometheus.NewDesc("gsio_history_bytes",
		"Logical size of the stored broadcasts (keys + values), what --history-max-bytes bounds.", nil, nil)
	histMessages = prometheus.NewDesc("gsio_history_messages",
		"Broadcasts in the history store.", nil, nil)
	histOldest = prometheus.NewDesc("gsio_history_oldest_timestamp_seconds",
		"Federation ts of the oldest stored broadcast, unix seconds; 0 when the store is empty.", nil, nil)
	histNewest = prometheus.NewDesc("gsio_history_newest_timestamp_seconds",
		"Federation ts of the newest stored broadcast, unix seconds; 0 when the store is empty.", nil, nil)
	histWrites = prometheus.NewDesc("gsio_history_writes_total",
		"Broadcasts newly stored.", nil, nil)
	histDropped = prometheus.NewDesc("gsio_history_dropped_total",
		"Broadcasts not stored (write queue full, disk low or failing, store closed); each leaves a gap.", nil, nil)
	histDuplicates = prometheus.NewDesc("gsio_history_duplicates_total",
		"Broadcasts not stored because the store held them already.", nil, nil)
	histStale = prometheus.NewDesc("gsio_history_stale_total",
		"Broadcasts not stored because they were older than retention already dropped, or malformed.", nil, nil)
	histQueued = prometheus.NewDesc("gsio_history_queued",
		"Broadcasts waiting for the store's writer.", nil, nil)
	histGaps = prometheus.NewDesc("gsio_history_gaps",
		"Recorded gaps: windows of ts in which the store may lack broadcasts.", nil, nil)
	histLowDisk = prometheus.NewDesc("gsio_history_low_disk",
		"1 while writing is paused for lack of free disk.", nil, nil)
	histFailed = prometheus.NewDesc("gsio_history_failed",
		"1 once the store has failed: broadcasts are dropped until the relay restarts.", nil, nil)
)

func (historyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{histBytes, histMessages, histOldest, histNewest, histWrites, histDropped,
		histDuplicates, histStale, histQueued, histGaps, histLowDisk, histFailed} {
		ch <- d
	}
}

func (c historyCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(histBytes, float64(st.Bytes))
	gauge(histMessages, float64(st.Count))
	gauge(histOldest, float64(st.OldestTS)/1000)
	gauge(histNewest, float64(st.NewestTS)/1000)
	counter(histWrites, st.Writes)
	counter(histDropped, st.Dropped)
	counter(histDuplicates, st.Duplicates)
	counter(histStale, st.Stale)
	gauge(histQueued, float64(st.Queued))
	gauge(histGaps, float64(st.Gaps))
	gauge(histLowDisk, boolFloat(st.LowDisk))
	gauge(histFailed, boolFloat(st.Failed))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
