package admin

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/relay"
)

// GET /api/v1/mesh: the whole federation as this relay sees it (one
// sweep over /gsio/inspect/1.0.0, node/inspectsweep.go), the document
// behind /ui and `gsio-relay mesh`. docs/ADMIN.md describes every field.

// Mesh is GET /api/v1/mesh.
type Mesh struct {
	Relay       string      `json:"relay"`   // the relay that swept (this one); "" standalone
	Network     string      `json:"network"` // federation name
	GeneratedAt time.Time   `json:"generated_at"`
	SweepMS     float64     `json:"sweep_ms"` // how long the sweep took
	Relays      []MeshRelay `json:"relays"`   // this relay first, then by id
	Links       []MeshLink  `json:"links"`    // connections between relays, by a then b
	Totals      MeshTotals  `json:"totals"`
}

// MeshRelay is one relay of the federation.
type MeshRelay struct {
	ID    string `json:"id"`
	Self  bool   `json:"self"`  // the relay that swept
	State string `json:"state"` // ok, unreachable, refused, gone, partitioned
	Error string `json:"error,omitempty"`
	// InDirectory: in this relay's presence directory; PresenceAgeSeconds:
	// since its last presence message (null when not in the directory, and
	// for this relay); DirectoryNodes: the nodes the directory lists for it.
	InDirectory        bool     `json:"in_directory"`
	PresenceAgeSeconds *float64 `json:"presence_age_seconds"`
	DirectoryNodes     int      `json:"directory_nodes"`
	RTTMS              *float64 `json:"rtt_ms"` // of the inspection request; null when not asked or for this relay
	// The relay's own answer; Stale when it is from an earlier sweep
	// (the relay did not answer this one), AnsweredAt null if it never
	// answered (then the fields below are zero).
	AnsweredAt    *time.Time      `json:"answered_at"`
	Stale         bool            `json:"stale"`
	Version       string          `json:"version"`
	UptimeSeconds float64         `json:"uptime_seconds"`
	LocalNodes    int             `json:"local_nodes"` // nodes connected to it
	Peers         int             `json:"peers"`       // its connected libp2p peers
	RelayPeers    int             `json:"relay_peers"` // of which gsio relays
	Counters      *node.Counters  `json:"counters"`    // cumulative; null without counters
	Rates         *node.Rates     `json:"rates"`       // per second over the last seconds; null until sampled
	History       json.RawMessage `json:"history,omitempty"`
}

// MeshLink is a connection between two relays, as they report it.
type MeshLink struct {
	A         string   `json:"a"` // a < b
	B         string   `json:"b"`
	Mesh      []string `json:"mesh"`       // topics whose GossipSub mesh holds the link (either end says so)
	LatencyMS *float64 `json:"latency_ms"` // the lower of the two ends' ping averages; null unknown
	Limited   bool     `json:"limited"`    // relayed (circuit v2): carries no federation traffic
	Ends      int      `json:"ends"`       // ends that reported it: 2, or 1 when only one end answered
}

// MeshTotals sum the federation.
type MeshTotals struct {
	Relays      int     `json:"relays"`    // listed
	Reachable   int     `json:"reachable"` // state ok
	Nodes       int     `json:"nodes"`     // local nodes of the reachable relays
	MessagesIn  float64 `json:"messages_in_per_second"`
	MessagesOut float64 `json:"messages_out_per_second"`
	Errors      float64 `json:"errors_per_second"`
}

// MeshSource is a Source that can sweep its federation.
type MeshSource interface {
	Mesh(ctx context.Context) (Mesh, error)
}

var _ MeshSource = (*RelaySource)(nil)

// Mesh sweeps the federation (or serves the last sweep, younger than the
// node's Inspect.CacheTTL). A standalone relay is a federation of one.
func (s *RelaySource) Mesh(ctx context.Context) (Mesh, error) {
	s.init()
	now := time.Now()
	if s.Node == nil {
		self := MeshRelay{Self: true, State: string(node.RelayOK), InDirectory: true, AnsweredAt: &now,
			Version: s.Version, UptimeSeconds: seconds(now.Sub(s.Started)), LocalNodes: len(s.Router.LocalNodes())}
		self.DirectoryNodes = self.LocalNodes
		return Mesh{GeneratedAt: now.UTC(), Relays: []MeshRelay{self}, Links: []MeshLink{}, Totals: totals([]MeshRelay{self})}, nil
	}
	v, err := s.Node.MeshView(ctx)
	if err != nil {
		return Mesh{}, err
	}
	return MeshFromView(v), nil
}

// MeshFromView turns a node's federation view into the API document; a
// function of the view alone (ages are as of the sweep).
func MeshFromView(v *node.MeshView) Mesh {
	m := Mesh{
		Relay: v.Self.String(), Network: v.Network, GeneratedAt: v.At.UTC(),
		SweepMS: float64(v.Took.Microseconds()) / 1000, Relays: []MeshRelay{}, Links: []MeshLink{},
	}
	listed := map[string]bool{}
	for _, r := range v.Relays {
		mr := MeshRelay{ID: r.ID.String(), Self: r.Self, State: string(r.State), Error: r.Err,
			InDirectory: r.InDirectory || r.Self, DirectoryNodes: r.DirNodes}
		listed[mr.ID] = true
		if !r.LastSeen.IsZero() {
			age := seconds(v.At.Sub(r.LastSeen))
			mr.PresenceAgeSeconds = &age
		}
		if r.RTT > 0 && !r.Self {
			ms := float64(r.RTT.Microseconds()) / 1000
			mr.RTTMS = &ms
		}
		if s := r.Summary; s != nil {
			at := r.AnsweredAt.UTC()
			mr.AnsweredAt, mr.Stale = &at, r.State != node.RelayOK
			mr.Version, mr.LocalNodes, mr.Peers = s.Version, s.LocalNodes, s.PeersTotal
			mr.UptimeSeconds = float64(max(s.AtMS-s.StartedMS, 0)) / 1000
			mr.Counters, mr.Rates, mr.History = s.Counters, s.Rates, s.History
			for _, p := range s.Peers {
				if p.Relay {
					mr.RelayPeers++
				}
			}
		}
		m.Relays = append(m.Relays, mr)
	}
	m.Links = links(v, listed)
	m.Totals = totals(m.Relays)
	return m
}

// links joins the relay peers of the relays that answered this sweep.
func links(v *node.MeshView, listed map[string]bool) []MeshLink {
	type end struct {
		latency *float64
		limited bool
		mesh    []string
	}
	ends := map[[2]string]map[string]end{} // link -> reporting relay -> what it says
	for _, r := range v.Relays {
		s := r.Summary
		if r.State != node.RelayOK || s == nil {
			continue
		}
		self := r.ID.String()
		inMesh := map[string][]string{}
		for topic, ids := range s.Mesh {
			for _, id := range ids {
				inMesh[id] = append(inMesh[id], topicKind(topic))
			}
		}
		for _, p := range s.Peers {
			if !p.Relay || !listed[p.ID] || p.ID == self {
				continue
			}
			k := [2]string{self, p.ID}
			if k[1] < k[0] {
				k[0], k[1] = k[1], k[0]
			}
			if ends[k] == nil {
				ends[k] = map[string]end{}
			}
			ends[k][self] = end{latency: p.LatencyMS, limited: p.Limited, mesh: inMesh[p.ID]}
		}
	}
	out := make([]MeshLink, 0, len(ends))
	for k, es := range ends {
		l := MeshLink{A: k[0], B: k[1], Mesh: []string{}, Ends: len(es)}
		for _, e := range es {
			if e.latency != nil && (l.LatencyMS == nil || *e.latency < *l.LatencyMS) {
				ms := *e.latency
				l.LatencyMS = &ms
			}
			l.Limited = l.Limited || e.limited
			l.Mesh = append(l.Mesh, e.mesh...)
		}
		slices.Sort(l.Mesh)
		l.Mesh = slices.Compact(l.Mesh)
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b MeshLink) int {
		if c := strings.Compare(a.A, b.A); c != 0 {
			return c
		}
		return strings.Compare(a.B, b.B)
	})
	return out
}

// topicKind names a gsio topic by its kind: gsio/<net>/broadcast/1 ->
// broadcast.
func topicKind(t string) string {
	if parts := strings.Split(t, "/"); len(parts) == 4 && parts[0] == "gsio" {
		return parts[2]
	}
	return t
}

func totals(rs []MeshRelay) MeshTotals {
	t := MeshTotals{Relays: len(rs)}
	for _, r := range rs {
		if r.State != string(node.RelayOK) {
			continue
		}
		t.Reachable++
		t.Nodes += r.LocalNodes
		if r.Rates != nil {
			t.MessagesIn += r.Rates.MessagesIn
			t.MessagesOut += r.Rates.MessagesOut
			t.Errors += r.Rates.Errors
		}
	}
	return t
}

// meshTimeout bounds an API request's wait for a sweep.
const meshTimeout = 15 * time.Second

// serveMesh answers GET /api/v1/mesh. The document of one sweep is
// encoded (and gzipped) once: every viewer polling within the node's
// Inspect.CacheTTL gets the same bytes.
func (s *Server) serveMesh(ms MeshSource) http.HandlerFunc {
	var (
		mu        sync.Mutex
		key       string // the sweep the bytes are of
		plain, gz []byte
	)
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), meshTimeout)
		defer cancel()
		m, err := ms.Mesh(ctx)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{"federation view: " + err.Error()})
			return
		}
		k := m.Relay + " " + m.GeneratedAt.Format(time.RFC3339Nano)
		mu.Lock()
		if k != key || m.Relay == "" { // a standalone relay has no sweep: always new
			b, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				mu.Unlock()
				writeJSON(w, http.StatusInternalServerError, apiError{"encode response: " + err.Error()})
				return
			}
			key, plain, gz = k, append(b, '\n'), nil
			if len(plain) >= gzipMin {
				// The page polls this every 1.5 s: gzip takes a 50-relay
				// answer from ~90 KB to ~5 KB.
				var z bytes.Buffer
				zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
				_, _ = zw.Write(plain)
				_ = zw.Close()
				gz = z.Bytes()
			}
		}
		body, zipped := plain, gz != nil && acceptsGzip(r)
		if zipped {
			body = gz
		}
		mu.Unlock()
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("Vary", "Accept-Encoding")
		if zipped {
			h.Set("Content-Encoding", "gzip")
		}
		_, _ = w.Write(body)
	}
}

// gzipMin is the smallest answer worth compressing.
const gzipMin = 1400

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// Mesh fetches /api/v1/mesh.
func (c *Client) Mesh(ctx context.Context) (v Mesh, raw []byte, err error) {
	raw, err = c.getJSON(ctx, "/api/v1/mesh", &v)
	return v, raw, err
}

// RouterCounters reads a router's message counters for the node's
// inspection summary (node.WithCounters): messages in and out on every
// route, and the messages it dropped as errors. m must be the router's
// (relay.WithMetrics).
func RouterCounters(m *relay.Metrics) func() node.Counters {
	in, out, errs := prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()
	in.MustRegister(m.In)
	out.MustRegister(m.Out)
	errs.MustRegister(m.Dropped)
	return func() node.Counters {
		return node.Counters{MessagesIn: sum(in), MessagesOut: sum(out), Errors: sum(errs)}
	}
}

// sum adds up every counter g gathers.
func sum(g prometheus.Gatherer) uint64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	var t float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			t += m.GetCounter().GetValue()
		}
	}
	return uint64(t)
}
