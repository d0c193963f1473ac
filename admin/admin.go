// Package admin serves the relay's operator HTTP API and is its client:
// JSON inspection endpoints under /api/v1/ (info, peers, nodes, topics,
// reservations, mesh), the /ui page (ui.go), Prometheus /metrics,
// /healthz and /readyz. docs/ADMIN.md
// documents every endpoint and field; api.go holds the documents' types,
// shared by the server and Client (used by the CLI).
//
// The server reads a Source (RelaySource: node, router and WebSocket
// server of one relay). It runs the HTTP server's goroutine, started by
// Start, and, when the Source is a Sampler (RelaySource pings peers to
// measure their latency), one sampling goroutine; Close stops both and
// waits for them.
//
// A bearer token (Config.Token) guards everything but /healthz and
// /readyz; Config.Validate refuses a listener beyond loopback without one.
// Every request must name the server in its Host header (Config.AllowedHosts,
// hostAllowed): a web page cannot reach a loopback admin API through DNS
// rebinding.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gsio-net/gsio-relay/internal/bearer"
)

// Config holds the admin listener's settings.
type Config struct {
	// Listen is the address of the admin HTTP server. Default
	// "127.0.0.1:8788".
	Listen string
	// Token, when set, is required as "Authorization: Bearer <Token>" on
	// every path but /healthz and /readyz. Required when Listen is not a
	// loopback address. Default none.
	Token string
	// AllowedHosts are more names (or name:port) requests may give as
	// their Host, besides the listen address, localhost and loopback IPs
	// (and any IP when the listener is on all interfaces): a reverse
	// proxy's name, a DNS name of the machine. Any other Host is refused
	// with 421, so that a web page whose name was rebound to 127.0.0.1
	// cannot talk to the API. Default none.
	AllowedHosts []string
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config { return Config{Listen: "127.0.0.1:8788"} }

// ErrTokenRequired is returned by Validate for a listener beyond loopback
// without a token.
var ErrTokenRequired = errors.New("an admin listener beyond loopback requires a token")

// Validate checks the listen address and that a listener reachable beyond
// loopback has a token.
func (c Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("admin listen address %q: %w", c.Listen, err)
	}
	if c.Token == "" && !IsLoopback(host) {
		return fmt.Errorf("admin listen address %q: %w", c.Listen, ErrTokenRequired)
	}
	return nil
}

// IsLoopback reports whether host (an IP or "localhost") only accepts
// connections from this machine. An empty host (all interfaces) or any
// other name is not loopback.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Option configures injected things.
type Option func(*Server)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithSource sets what /api/v1 reports on; without it the API answers 404.
// Its Ready is part of /readyz.
func WithSource(src Source) Option { return func(s *Server) { s.src = src } }

// WithMetrics serves g at /metrics (the Prometheus text format).
func WithMetrics(g prometheus.Gatherer) Option { return func(s *Server) { s.gatherer = g } }

// WithReady adds a readiness check to /readyz; nil error means ready.
func WithReady(f func() error) Option { return func(s *Server) { s.ready = append(s.ready, f) } }

// WithHandler mounts an extra handler on the admin mux (behind the token).
func WithHandler(pattern string, h http.Handler) Option {
	return func(s *Server) { s.extra = append(s.extra, route{pattern, h}) }
}

// WithSampleInterval sets how often a Source that is a Sampler is sampled
// (default 1 s).
func WithSampleInterval(d time.Duration) Option { return func(s *Server) { s.sampleEvery = d } }

type route struct {
	pattern string
	h       http.Handler
}

// Server is the admin HTTP server.
type Server struct {
	cfg         Config
	log         *slog.Logger
	src         Source
	gatherer    prometheus.Gatherer
	ready       []func() error
	extra       []route
	drainer     Drainer // nil: no /api/v1/drain
	sampleEvery time.Duration
	token       bearer.Token
	mux         *http.ServeMux
	srv         *http.Server

	ctx    context.Context // cancelled by Close: ends the sampler
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex // guards ln
	ln net.Listener
}

// New validates cfg and builds the server.
func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		log:         slog.New(slog.DiscardHandler),
		sampleEvery: time.Second,
		mux:         http.NewServeMux(),
	}
	for _, o := range opts {
		o(s)
	}
	s.token = bearer.New(cfg.Token)
	s.routes()
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start listens and serves in the background, and starts sampling the
// Source when it is a Sampler.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Go(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "err", err)
		}
	})
	if sm, ok := s.src.(Sampler); ok {
		s.wg.Go(func() { s.sample(sm) })
	}
	return nil
}

// sample calls sm.Sample at once and every sampleEvery until Close.
func (s *Server) sample(sm Sampler) {
	t := time.NewTicker(s.sampleEvery)
	defer t.Stop()
	for {
		sm.Sample(s.ctx)
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Addr is the bound address after Start, else nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// URL is the server's base URL after Start (http://host:port).
func (s *Server) URL() string { return "http://" + s.Addr().String() }

// Close stops the server and the sampler and waits for them, at most until
// ctx ends (then open requests are cut).
func (s *Server) Close(ctx context.Context) error {
	s.cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	s.wg.Wait()
	return err
}

// serveHTTP checks the Host and the token, then dispatches.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		writeJSON(w, http.StatusMisdirectedRequest, apiError{fmt.Sprintf(
			"Host %q is not this admin API (DNS rebinding protection): use %s, localhost or 127.0.0.1, or allow the name with --admin-allowed-hosts",
			r.Host, s.cfg.Listen)})
		return
	}
	if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !isUIPath(r.URL.Path) && !s.token.Header(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gsio-relay admin"`)
		writeJSON(w, http.StatusUnauthorized, apiError{"missing or invalid bearer token"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether a request's Host names this server: its
// listen host, localhost, a loopback IP, any IP literal when the listener
// is on all interfaces (a rebinding attack always sends a name), or one of
// Config.AllowedHosts (with its port, if it gives one). The port of Host
// is not checked otherwise (a proxy may map it).
func (s *Server) hostAllowed(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	lhost, _, _ := net.SplitHostPort(s.cfg.Listen)
	lhost = strings.ToLower(strings.Trim(lhost, "[]"))
	if host == "localhost" || host == lhost {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		lip := net.ParseIP(lhost)
		return ip.IsLoopback() || lhost == "" || (lip != nil && (lip.IsUnspecified() || lip.Equal(ip)))
	}
	for _, a := range s.cfg.AllowedHosts {
		ah, ap, err := net.SplitHostPort(a)
		if err != nil {
			ah, ap = a, ""
		}
		if strings.EqualFold(strings.TrimSuffix(ah, "."), host) && (ap == "" || ap == port) {
			return true
		}
	}
	return false
}

// Ready runs the readiness checks: the Source's, then WithReady's.
func (s *Server) Ready() error {
	if s.src != nil {
		if err := s.src.Ready(); err != nil {
			return err
		}
	}
	for _, f := range s.ready {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, index)
	})
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := s.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if s.gatherer != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}))
	}
	if s.src != nil {
		api := func(f func() any) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, f()) }
		}
		m.HandleFunc("GET /api/v1/info", api(func() any { return s.src.Info() }))
		m.HandleFunc("GET /api/v1/peers", api(func() any { return s.src.Peers() }))
		m.HandleFunc("GET /api/v1/nodes", api(func() any { return s.src.Nodes() }))
		m.HandleFunc("GET /api/v1/topics", api(func() any { return s.src.Topics() }))
		m.HandleFunc("GET /api/v1/reservations", api(func() any { return s.src.Reservations() }))
		if ms, ok := s.src.(MeshSource); ok {
			m.HandleFunc("GET /api/v1/mesh", s.serveMesh(ms))
			m.Handle("GET /ui", uiHandler())
			m.Handle("GET /ui/", uiHandler())
		}
	}
	if s.drainer != nil {
		s.drainRoutes(m)
	}
	m.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{"no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	for _, r := range s.extra {
		m.Handle(r.pattern, r.h)
	}
}

const index = `gsio-relay admin API
  GET /api/v1/info          this relay: peer ID, addresses, counts
  GET /api/v1/peers         connected libp2p peers
  GET /api/v1/nodes         gsio-nodes, on this relay and federation-wide
  GET /api/v1/topics        GossipSub topics and their peers
  GET /api/v1/reservations  circuit relay v2 reservations
  GET /api/v1/mesh          the whole federation, swept over /gsio/inspect/1.0.0
  POST /api/v1/drain        drain: move the nodes to other relays, then exit
  GET /api/v1/drain         the drain's state
  GET /ui                   the federation as a live picture (?token=TOKEN)
  GET /metrics              Prometheus metrics
  GET /healthz              200 while the process runs
  GET /readyz               200 when ready, 503 with the reason when not
See docs/ADMIN.md.
`

// writeJSON writes v as indented JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(apiError{"encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
