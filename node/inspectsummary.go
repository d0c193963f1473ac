package node

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// The inspection summary: what a relay says of itself on
// InspectProtocol (docs/INSPECT.md), and the counter samples behind its
// rates.

// Counters are a relay's cumulative message counts since it started, as
// the program that embeds the node counts them (WithCounters: the
// router's). The node adds its own federation drops to Errors.
type Counters struct {
	MessagesIn  uint64 `json:"messages_in"`  // messages received (clients and federation)
	MessagesOut uint64 `json:"messages_out"` // messages sent (to clients, once per receiver, and to the federation)
	Errors      uint64 `json:"errors"`       // messages dropped or refused
}

// Rates are Counters per second over the last few seconds.
type Rates struct {
	WindowMS    int64   `json:"window_ms"`
	MessagesIn  float64 `json:"messages_in"`
	MessagesOut float64 `json:"messages_out"`
	Errors      float64 `json:"errors"`
}

// inspectOptions are what a programmer injects (WithCounters,
// WithVersion, WithHistoryState).
type inspectOptions struct {
	counters func() Counters
	version  string
	history  func() any
}

// WithCounters gives the node the relay's message counters for its
// inspection summary (cmd passes the router's; the node does not import
// relay). f is called once a second and must be cheap and safe for
// concurrent use. Without it the summary has no counters and no rates.
func WithCounters(f func() Counters) Option { return func(o *options) { o.inspect.counters = f } }

// WithVersion sets the build version the inspection summary reports.
func WithVersion(v string) Option { return func(o *options) { o.inspect.version = v } }

// WithHistoryState sets what the inspection summary reports as the
// relay's history and reconciliation state: f's result as JSON, at most
// 16 KiB (omitted when larger or on an error).
func WithHistoryState(f func() any) Option { return func(o *options) { o.inspect.history = f } }

// Summary is one relay's answer on InspectProtocol (docs/INSPECT.md).
type Summary struct {
	PeerID          string              `json:"peer_id"`
	Version         string              `json:"version"`
	Network         string              `json:"network"`
	StartedMS       int64               `json:"started_ms"` // unix ms
	AtMS            int64               `json:"at_ms"`      // when this summary was taken, unix ms
	LocalNodes      int                 `json:"local_nodes"`
	DirectoryRelays int                 `json:"directory_relays"` // other relays in its presence directory
	Peers           []SummaryPeer       `json:"peers"`            // relays first, then by id; at most 512
	PeersTotal      int                 `json:"peers_total"`      // connected peers, listed or not
	Mesh            map[string][]string `json:"mesh"`             // topic -> peers in its GossipSub mesh
	Counters        *Counters           `json:"counters,omitempty"`
	Rates           *Rates              `json:"rates,omitempty"`
	History         json.RawMessage     `json:"history,omitempty"` // history/reconciliation state; format of its own
}

// SummaryPeer is one connected peer of a Summary.
type SummaryPeer struct {
	ID        string   `json:"id"`
	Direction string   `json:"direction"` // of the oldest connection: inbound, outbound
	LatencyMS *float64 `json:"latency_ms,omitempty"`
	Limited   bool     `json:"limited,omitempty"` // every connection is relayed (circuit v2)
	Relay     bool     `json:"relay,omitempty"`   // a gsio relay as this relay sees it
}

// sampleLoop samples the counters every second for Rates and forgets
// idle token buckets.
func (s *inspectService) sampleLoop() {
	t := time.NewTicker(inspectSampleTick)
	defer t.Stop()
	for {
		s.sample(time.Now())
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.pruneLimiters(now)
		}
	}
}

func (s *inspectService) sample(now time.Time) {
	c, ok := s.counters()
	if !ok {
		return
	}
	s.sampleMu.Lock()
	defer s.sampleMu.Unlock()
	if len(s.samples) > inspectRateWindow {
		s.samples = append(s.samples[:0], s.samples[1:]...)
	}
	s.samples = append(s.samples, counterSample{now, c})
}

// counters are the injected counters plus the node's federation drops.
func (s *inspectService) counters() (Counters, bool) {
	if s.opts.counters == nil {
		return Counters{}, false
	}
	c := s.opts.counters()
	c.Errors += uint64(s.tracer.dropped())
	return c, true
}

// summaryReuse is how long a local summary is reused.
const summaryReuse = 250 * time.Millisecond

// summary describes this relay. The summary is shared (reused for
// summaryReuse): callers keep it but never modify it.
func (s *inspectService) summary(now time.Time) *Summary {
	s.sampleMu.Lock()
	if c := s.cached; c != nil && now.Sub(time.UnixMilli(c.AtMS)) < summaryReuse {
		s.sampleMu.Unlock()
		return c
	}
	rates := s.ratesLocked()
	s.sampleMu.Unlock()

	sum := &Summary{
		PeerID:          s.self.String(),
		Version:         cutString(s.opts.version),
		Network:         s.cfg.Network,
		StartedMS:       s.started.UnixMilli(),
		AtMS:            now.UnixMilli(),
		LocalNodes:      s.pres.localCount(),
		DirectoryRelays: s.dir.relayCount(),
		Mesh:            map[string][]string{},
		Rates:           rates,
	}
	if c, ok := s.counters(); ok {
		sum.Counters = &c
	}
	for _, p := range s.insp.PeerInfos() {
		sp := SummaryPeer{ID: p.ID.String(), Relay: p.Relay, Limited: len(p.Conns) > 0}
		for _, c := range p.Conns {
			sp.Limited = sp.Limited && c.Limited
		}
		if len(p.Conns) > 0 {
			sp.Direction = strings.ToLower(p.Conns[0].Direction.String())
		}
		if p.Latency > 0 {
			ms := float64(p.Latency.Microseconds()) / 1000
			sp.LatencyMS = &ms
		}
		sum.Peers = append(sum.Peers, sp)
	}
	sum.PeersTotal = len(sum.Peers)
	slices.SortStableFunc(sum.Peers, func(a, b SummaryPeer) int { // relays first; PeerInfos sorts by id
		switch {
		case a.Relay == b.Relay:
			return 0
		case a.Relay:
			return -1
		}
		return 1
	})
	sum.Peers = sum.Peers[:min(len(sum.Peers), maxInspectPeers)]
	for _, t := range s.insp.TopicInfos() {
		ids := make([]string, 0, len(t.Mesh))
		for _, p := range t.Mesh {
			ids = append(ids, p.String())
		}
		sum.Mesh[t.Topic] = ids
	}
	if s.opts.history != nil {
		if b, err := json.Marshal(s.opts.history()); err == nil && len(b) <= maxInspectHistory && string(b) != "null" {
			sum.History = b
		}
	}
	s.sampleMu.Lock()
	s.cached = sum
	s.sampleMu.Unlock()
	return sum
}

// ratesLocked computes Rates from the samples (sampleMu held).
func (s *inspectService) ratesLocked() *Rates {
	if len(s.samples) < 2 {
		return nil
	}
	a, b := s.samples[0], s.samples[len(s.samples)-1]
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 {
		return nil
	}
	per := func(x, y uint64) float64 {
		if y < x {
			return 0
		}
		return float64(y-x) / dt
	}
	return &Rates{
		WindowMS:    b.at.Sub(a.at).Milliseconds(),
		MessagesIn:  per(a.c.MessagesIn, b.c.MessagesIn),
		MessagesOut: per(a.c.MessagesOut, b.c.MessagesOut),
		Errors:      per(a.c.Errors, b.c.Errors),
	}
}

// localCount is the number of local nodes.
func (p *presence) localCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.local)
}
