package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// InspectProtocol is the read-only inspection protocol between relays
// (docs/INSPECT.md): a relay asks another for its Summary, and one relay
// collects the whole federation's view (MeshView, inspectsweep.go).
const InspectProtocol = "/gsio/inspect/1.0.0"

// Wire limits of InspectProtocol, the same for every relay.
const (
	inspectVersion    = 1
	maxInspectRequest = 1 << 10  // request bytes
	maxInspectPeers   = 512      // peers listed in one summary (relays first)
	maxInspectHistory = 16 << 10 // bytes of Summary.History
	maxInspectString  = 64       // runes of a free-form string (version, network)
	maxInspectLimiter = 4096     // per-peer token buckets kept at once
	inspectSampleTick = time.Second
	inspectRateWindow = 5 // samples behind Summary.Rates (5 s)
)

// Refusal reasons of an inspection response's "error".
const (
	InspectForbidden   = "forbidden"    // the requester is not a member of the federation
	InspectRateLimited = "rate_limited" // over the requester's token bucket
	InspectLimited     = "limited"      // asked over a limited (relayed) connection
	InspectBadRequest  = "bad_request"  // the request is not {"v":N} JSON
	// InspectNotSupported is no answer but what a requester reports for
	// a relay that does not speak InspectProtocol.
	InspectNotSupported = "not_supported"
)

// InspectConfig is InspectProtocol: who may ask, how often, and how a
// sweep of the federation is bounded.
type InspectConfig struct {
	// Enable answers InspectProtocol. This relay can still sweep the
	// federation without it. Default true.
	Enable bool
	// Rate and Burst are each requesting peer's token bucket: Rate
	// requests per second, bursts of Burst. A request beyond it is
	// refused (rate_limited). Default 2 and 5.
	Rate  float64
	Burst int
	// MaxConcurrent bounds requests being answered at once, all peers
	// together; a stream beyond it is reset. Default 8.
	MaxConcurrent int
	// Timeout bounds one request on either side (dial, stream, request,
	// answer). Default 3 s.
	Timeout time.Duration
	// MaxResponse bounds one answer in bytes, on either side. Default
	// 256 KiB.
	MaxResponse int
	// SweepParallel bounds the requests of one sweep at once. Default 16.
	SweepParallel int
	// CacheTTL: a federation view younger than this is served as it is.
	// Default 1 s.
	CacheTTL time.Duration
	// RetryMax: a relay we are not connected to that could not be asked is
	// asked again after 1 s, doubling up to RetryMax; its last answer is
	// shown meanwhile. Default 15 s.
	RetryMax time.Duration
	// Forget is how long a relay that left the presence directory stays
	// in the view as gone. Default 5 min.
	Forget time.Duration
}

// defaultInspectConfig returns InspectConfig's documented defaults.
func defaultInspectConfig() InspectConfig {
	return InspectConfig{
		Enable: true, Rate: 2, Burst: 5, MaxConcurrent: 8, Timeout: 3 * time.Second, MaxResponse: 256 << 10,
		SweepParallel: 16, CacheTTL: time.Second, RetryMax: 15 * time.Second, Forget: 5 * time.Minute,
	}
}

// validate checks the values of c, naming each by its flag.
func (c InspectConfig) validate() error {
	var errs []error
	if c.Rate <= 0 || c.Burst < 1 {
		errs = append(errs, fmt.Errorf("--inspect-rate %v / --inspect-burst %d: must be positive", c.Rate, c.Burst))
	}
	if c.MaxConcurrent < 1 || c.SweepParallel < 1 {
		errs = append(errs, fmt.Errorf("--inspect-concurrency %d / --inspect-sweep-parallel %d: must be positive", c.MaxConcurrent, c.SweepParallel))
	}
	if c.MaxResponse < 16<<10 {
		errs = append(errs, fmt.Errorf("--inspect-max-response %d: at least 16384", c.MaxResponse))
	}
	if c.Timeout <= 0 || c.CacheTTL < 0 || c.RetryMax < time.Second || c.Forget < 0 {
		errs = append(errs, fmt.Errorf("--inspect-timeout %v, --inspect-cache %v, --inspect-retry-max %v, --inspect-forget %v: out of range",
			c.Timeout, c.CacheTTL, c.RetryMax, c.Forget))
	}
	return errors.Join(errs...)
}

// inspectRequest and inspectResponse are the wire documents.
type inspectRequest struct {
	V int `json:"v"`
}

type inspectResponse struct {
	V            int      `json:"v"`
	Summary      *Summary `json:"summary,omitempty"`
	Error        string   `json:"error,omitempty"`
	RetryAfterMS int64    `json:"retry_after_ms,omitempty"`
}

// InspectRefusedError is a relay's refusal to answer.
type InspectRefusedError struct {
	Reason     string // InspectForbidden, InspectRateLimited, …
	RetryAfter time.Duration
}

func (e *InspectRefusedError) Error() string { return "refused: " + e.Reason }

// inspectService is the inspection component: it answers
// InspectProtocol, samples the counters for rates, and sweeps the
// federation (inspectsweep.go). Goroutines: sampleLoop; one sweep at a
// time with its requests (each sweep waits for its own); libp2p runs
// handle for inbound streams, tracked by hwg (close resets them). Locks,
// never nested: mu (limiters, inbound streams, closed), sampleMu
// (counter samples, the cached summary), viewMu (the cached view, the
// sweep in flight).
type inspectService struct {
	core
	routines
	insp     *inspector
	pres     *presence
	dir      *directory
	allow    *allowList
	opts     inspectOptions
	icfg     InspectConfig
	started  time.Time
	requests *prometheus.CounterVec // result

	mu       sync.Mutex
	limiters map[peer.ID]*limiter
	inbound  map[network.Stream]struct{}
	closed   bool
	hwg      sync.WaitGroup

	sampleMu sync.Mutex
	samples  []counterSample // ring, oldest first
	cached   *Summary        // the last local summary, reused for 250 ms

	viewMu     sync.Mutex
	view       *MeshView
	sweeping   chan struct{} // closed when the sweep in flight ends
	viewClosed bool

	memory map[peer.ID]*relayMemory // owned by the sweep in flight (one at a time)
}

type limiter struct {
	lim  *rate.Limiter
	last time.Time
}

type counterSample struct {
	at time.Time
	c  Counters
}

func newInspectService(parent context.Context, c core, insp *inspector, pres *presence, dir *directory,
	allow *allowList, o options) (*inspectService, error) {
	s := &inspectService{
		core: c, routines: newRoutines(parent), insp: insp, pres: pres, dir: dir, allow: allow,
		opts: o.inspect, icfg: c.cfg.Inspect, started: time.Now(),
		limiters: map[peer.ID]*limiter{}, inbound: map[network.Stream]struct{}{}, memory: map[peer.ID]*relayMemory{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gsio", Subsystem: "node", Name: "inspect_requests_total",
			Help: "Requests answered on " + InspectProtocol + " by result (ok, forbidden, rate_limited, limited, bad_request, busy, error).",
		}, []string{"result"}),
	}
	if o.registerer != nil {
		if err := o.registerer.Register(s.requests); err != nil {
			return nil, fmt.Errorf("inspect metrics: %w", err)
		}
	}
	return s, nil
}

// start serves InspectProtocol (when enabled) and samples the counters.
func (s *inspectService) start() {
	if s.icfg.Enable {
		s.host.SetStreamHandler(InspectProtocol, s.handle)
	}
	s.spawn(s.sampleLoop)
}

// close stops answering, resets the inbound streams, ends the goroutines
// and waits for the handlers. nil-safe.
func (s *inspectService) close() {
	if s == nil {
		return
	}
	s.host.RemoveStreamHandler(InspectProtocol)
	s.mu.Lock()
	s.closed = true
	for st := range s.inbound {
		_ = st.Reset()
	}
	s.mu.Unlock()
	s.viewMu.Lock() // no sweep starts after this
	s.viewClosed = true
	s.viewMu.Unlock()
	s.stop()
	s.hwg.Wait()
}

func (s *inspectService) pruneLimiters(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, l := range s.limiters {
		if now.Sub(l.last) > time.Minute {
			delete(s.limiters, p)
		}
	}
}

// member is the access rule (docs/INSPECT.md): with an allow-list, the
// peers on it; otherwise the relays in our presence directory and our
// bootstrap peers.
func (s *inspectService) member(p peer.ID) bool {
	if s.allow != nil {
		return s.allow.allowed(p)
	}
	return !s.dir.lastSeen(p).IsZero() || s.insp.disc.isBootstrap(p)
}

// admit takes a token from p's bucket; on refusal it says when to retry.
func (s *inspectService) admit(p peer.ID, now time.Time) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[p]
	if l == nil {
		if len(s.limiters) >= maxInspectLimiter {
			return false, time.Second
		}
		l = &limiter{lim: rate.NewLimiter(rate.Limit(s.icfg.Rate), s.icfg.Burst)}
		s.limiters[p] = l
	}
	l.last = now
	r := l.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// enter records an inbound stream; false when closed or too many run.
func (s *inspectService) enter(st network.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.inbound) >= s.icfg.MaxConcurrent {
		return false
	}
	s.inbound[st] = struct{}{}
	s.hwg.Add(1)
	return true
}

func (s *inspectService) leave(st network.Stream) {
	s.mu.Lock()
	delete(s.inbound, st)
	s.mu.Unlock()
	s.hwg.Done()
}

// handle answers one inbound InspectProtocol stream.
func (s *inspectService) handle(st network.Stream) {
	if !s.enter(st) {
		s.requests.WithLabelValues("busy").Inc()
		_ = st.Reset()
		return
	}
	defer s.leave(st)
	now := time.Now()
	_ = st.SetDeadline(now.Add(s.icfg.Timeout))
	from := st.Conn().RemotePeer()
	resp := inspectResponse{V: inspectVersion}
	switch {
	case st.Conn().Stat().Limited:
		resp.Error = InspectLimited
	case !s.member(from):
		resp.Error = InspectForbidden
	default:
		if ok, wait := s.admit(from, now); !ok {
			resp.Error, resp.RetryAfterMS = InspectRateLimited, max(wait.Milliseconds(), 1)
			break
		}
		var req inspectRequest
		b, err := io.ReadAll(io.LimitReader(st, maxInspectRequest+1))
		if err != nil || len(b) > maxInspectRequest || json.Unmarshal(b, &req) != nil || req.V < 1 {
			resp.Error = InspectBadRequest
			break
		}
		resp.Summary = s.summary(now)
	}
	result := resp.Error
	if result == "" {
		result = "ok"
	}
	b, err := s.encodeResponse(resp)
	if err == nil {
		_, err = st.Write(b)
	}
	if err != nil {
		s.requests.WithLabelValues("error").Inc()
		s.log.Debug("inspect answer", "remote", from.String(), "err", err)
		_ = st.Reset()
		return
	}
	s.requests.WithLabelValues(result).Inc()
	if resp.Error != "" {
		s.log.Debug("inspect request refused", "remote", from.String(), "reason", resp.Error)
	}
	_ = st.Close()
}

// encodeResponse encodes resp within MaxResponse, listing fewer peers
// (and dropping the history) when the summary does not fit.
func (s *inspectService) encodeResponse(resp inspectResponse) ([]byte, error) {
	for {
		b, err := json.Marshal(resp)
		if err != nil || len(b) <= s.icfg.MaxResponse {
			return b, err
		}
		sum := *resp.Summary
		switch {
		case sum.History != nil:
			sum.History = nil
		case len(sum.Peers) > 0:
			sum.Peers = sum.Peers[:len(sum.Peers)/2]
		default:
			return nil, fmt.Errorf("summary of %d bytes over the %d limit", len(b), s.icfg.MaxResponse)
		}
		resp.Summary = &sum
	}
}

// ask requests p's summary. Without dial, p must be connected already;
// with it, p is dialled (directly, by its presence addresses) if needed.
// It returns the round trip of the request on the stream.
func (s *inspectService) ask(ctx context.Context, p peer.ID, dial bool) (*Summary, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.icfg.Timeout)
	defer cancel()
	if s.host.Network().Connectedness(p) != network.Connected {
		if !dial {
			return nil, 0, errors.New("not connected")
		}
		addrs := s.dir.addrsOf(p)
		if len(addrs) > 0 {
			s.host.Peerstore().AddAddrs(p, addrs, peerstore.TempAddrTTL)
		}
		if err := s.host.Connect(network.WithForceDirectDial(ctx, "gsio inspect"), peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
			s.log.Debug("inspect dial", "remote", p.String(), "err", err)
			return nil, 0, fmt.Errorf("dial: %s", lastCause(err))
		}
	}
	st, err := s.host.NewStream(ctx, p, InspectProtocol)
	if err != nil {
		if protos, perr := s.host.Peerstore().GetProtocols(p); perr == nil && len(protos) > 0 && !slices.Contains(protos, InspectProtocol) {
			return nil, 0, &InspectRefusedError{Reason: InspectNotSupported} // --inspect=false, or an older relay
		}
		return nil, 0, fmt.Errorf("open stream: %s", lastCause(err))
	}
	dl, _ := ctx.Deadline()
	_ = st.SetDeadline(dl)
	start := time.Now()
	req, _ := json.Marshal(inspectRequest{V: inspectVersion})
	if _, err := st.Write(req); err != nil {
		_ = st.Reset()
		return nil, 0, fmt.Errorf("write request: %w", err)
	}
	_ = st.CloseWrite()
	b, err := io.ReadAll(io.LimitReader(st, int64(s.icfg.MaxResponse)+1))
	rtt := time.Since(start)
	if err != nil || len(b) > s.icfg.MaxResponse {
		_ = st.Reset()
		if err == nil {
			err = fmt.Errorf("answer over %d bytes", s.icfg.MaxResponse)
		}
		return nil, 0, fmt.Errorf("read answer: %s", lastCause(err))
	}
	_ = st.Close()
	var resp inspectResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, rtt, fmt.Errorf("answer is not JSON: %w", err)
	}
	if resp.Error != "" {
		return nil, rtt, &InspectRefusedError{Reason: cutString(resp.Error), RetryAfter: time.Duration(resp.RetryAfterMS) * time.Millisecond}
	}
	if resp.Summary == nil || resp.Summary.PeerID != p.String() {
		return nil, rtt, errors.New("answer without its own summary")
	}
	return sanitize(resp.Summary), rtt, nil
}

// sanitize bounds what another relay says about itself: free-form
// strings cut, peer ids that do not parse dropped.
func sanitize(s *Summary) *Summary {
	s.Version, s.Network = cutString(s.Version), cutString(s.Network)
	valid := func(id string) bool { _, err := peer.Decode(id); return err == nil }
	s.Peers = slices.DeleteFunc(s.Peers, func(p SummaryPeer) bool { return !valid(p.ID) })
	if len(s.Peers) > maxInspectPeers {
		s.Peers = s.Peers[:maxInspectPeers]
	}
	for i := range s.Peers {
		if s.Peers[i].Direction != "inbound" && s.Peers[i].Direction != "outbound" {
			s.Peers[i].Direction = "unknown"
		}
	}
	mesh := map[string][]string{}
	for t, ids := range s.Mesh {
		if len(mesh) == 8 {
			break
		}
		mesh[cutString(t)] = slices.DeleteFunc(ids, func(id string) bool { return !valid(id) })
	}
	s.Mesh = mesh
	s.PeersTotal = max(s.PeersTotal, len(s.Peers))
	return s
}

// lastCause is the innermost part of a chain of wrapped error messages
// ("dial: …: connect: connection refused" -> "connection refused"): what
// an operator reads in the view (the whole error is logged at Debug).
func lastCause(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		s = s[i+2:]
	}
	return cutString(s)
}

// cutString cuts s to maxInspectString runes.
func cutString(s string) string {
	if r := []rune(s); len(r) > maxInspectString {
		return string(r[:maxInspectString])
	}
	return s
}
