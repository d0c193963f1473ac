package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/internal/bearer"
	"github.com/gsio-net/gsio-relay/internal/clientip"
)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("transport: server closed")

// Server is the WebSocket listener and the set of its connections.
type Server struct {
	cfg       Config
	limits    atomic.Pointer[Limits] // the part of cfg SetLimits changes; read it, not cfg
	h         Handler
	log       *slog.Logger
	m         *Metrics
	large     atomic.Int64 // bytes of messages being read beyond LargeMessageThreshold
	up        websocket.Upgrader
	tlsConfig *tls.Config
	certs     *certReloader      // the wss key pair, when TLS is on
	tlsPoll   time.Duration      // how often watchTLS checks the files
	clients   *clientip.Resolver // TrustedProxies: who the client is
	anyOrigin bool
	origins   []string // normalized AllowedOrigins when not anyOrigin
	token     bearer.Token

	nextID atomic.Uint64
	wg     sync.WaitGroup // every goroutine the server starts
	quit   chan struct{}  // closed by Close: stops the keepalive ticker
	done   chan struct{}  // closed when wg has drained after Close

	mu       sync.Mutex // guards the fields below
	started  bool
	closing  bool
	serving  bool
	ln       net.Listener
	hs       *http.Server
	conns    map[*Conn]struct{}
	perIP    map[string]int // open and upgrading connections per remote IP
	upgrades int            // upgrades in progress (counted towards MaxConns)

	closeOnce sync.Once
}

// New validates cfg and returns a Server; Start makes it listen.
func New(cfg Config, h Handler, opts ...Option) (*Server, error) {
	if h == nil {
		return nil, errors.New("transport: nil Handler")
	}
	o := options{log: discardLogger(), tlsPoll: tlsPollInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	clients, err := clientip.New(cfg.TrustedProxies)
	if err != nil {
		return nil, err // validate has said it with the flag's name
	}
	s := &Server{
		cfg:       cfg,
		h:         h,
		log:       o.log,
		m:         o.metrics,
		clients:   clients,
		tlsPoll:   o.tlsPoll,
		anyOrigin: len(cfg.AllowedOrigins) == 0,
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		conns:     make(map[*Conn]struct{}),
		perIP:     make(map[string]int),
	}
	lim := limitsOf(cfg)
	s.limits.Store(&lim)
	if cfg.TLSCertFile != "" {
		if s.certs, err = newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return nil, err
		}
		s.tlsConfig = s.certs.tlsConfig()
	}
	for _, a := range cfg.AllowedOrigins {
		n, _ := normalizeOrigin(a)
		if n == "*" {
			s.anyOrigin = true
		}
		s.origins = append(s.origins, n)
	}
	s.token = bearer.New(cfg.AuthToken)
	s.up = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   cfg.ReadBufferSize,
		// gorilla's write path is not used (frames are written by
		// Conn's writer), so it must hold no write buffer per
		// connection: a pool it never draws from.
		WriteBufferPool:   writeBufferPool,
		CheckOrigin:       func(*http.Request) bool { return true }, // checked before Upgrade
		EnableCompression: false,
	}
	return s, nil
}

var writeBufferPool = &sync.Pool{}

// Start listens on cfg.Listen and serves in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrClosed
	}
	if s.started {
		return errors.New("transport: server already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("transport: listen on %s: %w", s.cfg.Listen, err)
	}
	if s.clients.Enabled() {
		// Under TLS: the PROXY header comes before the ClientHello.
		ln = s.proxyListener(ln)
	}
	if s.tlsConfig != nil {
		ln = tls.NewListener(ln, s.tlsConfig)
	}
	s.ln = ln
	s.hs = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.HandshakeTimeout,
		WriteTimeout:      s.cfg.HandshakeTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnState:         s.connState,
	}
	s.started, s.serving = true, true
	hs := s.hs
	s.wg.Go(func() {
		err := hs.Serve(ln)
		s.mu.Lock()
		s.serving = false
		s.mu.Unlock()
		if !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("websocket listener stopped", "err", err)
		}
	})
	s.wg.Go(s.keepalive)
	if s.certs != nil {
		s.wg.Go(s.watchTLS)
	}
	s.log.Info("websocket listener started", "addr", ln.Addr().String(), "tls", s.tlsConfig != nil,
		"trusted_proxies", len(s.cfg.TrustedProxies))
	return nil
}

const (
	httpIdleTimeout = 30 * time.Second
	maxHeaderBytes  = 16 << 10
)

// connState counts net/http's connection goroutines in wg: from StateNew
// (called by the Serve goroutine, which holds a count) until the
// connection is closed or hijacked. A handler holds its own count across
// the hijack (see reserve).
func (s *Server) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.wg.Add(1)
	case http.StateHijacked, http.StateClosed:
		s.wg.Done()
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

// Conns is the number of open WebSocket connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Ready reports whether the listener is up and the server not closing.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serving && !s.closing
}

// Close stops accepting, closes every connection with 1001 "going away"
// (after the frames already queued to it), and waits until every goroutine
// the server started has returned, or until ctx is done: then the
// remaining sockets are closed at once and ctx's error returned. Close may
// be called more than once.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(s.beginClose)
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	conns := s.snapshotLocked(nil)
	s.mu.Unlock()
	for _, c := range conns {
		c.sock.closeSocket()
	}
	return fmt.Errorf("transport: close: %w", ctx.Err())
}

func (s *Server) beginClose() {
	s.mu.Lock()
	s.closing = true
	hs := s.hs
	conns := s.snapshotLocked(nil)
	s.mu.Unlock()
	close(s.quit)
	if hs != nil {
		hs.Close() // the listener and connections not (yet) upgraded
	}
	// Queued frames get a short time to go out, then the close frame; a
	// client that does not read must not hold the shutdown for a whole
	// WriteTimeout.
	capAt := time.Now().Add(2 * closeGrace)
	for _, c := range conns {
		c.Close(websocket.CloseGoingAway, "going away")
		c.sock.capWrite(capAt)
	}
	// The one goroutine outside wg: it waits for wg itself and ends
	// right after.
	go func() {
		s.wg.Wait()
		close(s.done)
	}()
}

func (s *Server) snapshotLocked(buf []*Conn) []*Conn {
	for c := range s.conns {
		buf = append(buf, c)
	}
	return buf
}

// keepalive queues a ping to every connection each PingInterval: one
// ticker for the whole server instead of a timer per connection.
func (s *Server) keepalive() {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	var conns []*Conn
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		s.mu.Lock()
		conns = s.snapshotLocked(conns[:0])
		s.mu.Unlock()
		for _, c := range conns {
			c.queuePing()
		}
		clear(conns)
	}
}

// serveHTTP checks an upgrade request against the limits, upgrades it and
// starts the connection's read pump, then returns, so that the net/http
// goroutine and its buffers are gone while the connection lives.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" && r.URL.Path != "/ws" {
		http.NotFound(w, r)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUpgradeRequired)
		io.WriteString(w, "Expected Upgrade: websocket")
		return
	}
	// The client's address: the TCP peer, or the client a trusted proxy
	// names (PROXY header, X-Forwarded-For). Limits and logs use it.
	remote := s.clients.ClientAddr(r)
	if !s.token.HeaderOrQuery(r, "token") {
		s.m.reject(rejectUnauthorized)
		s.log.Debug("upgrade refused: bad or missing token", "remote", remote)
		w.Header().Set("WWW-Authenticate", `Bearer realm="gsio-relay"`)
		http.Error(w, "missing or invalid token", http.StatusUnauthorized)
		return
	}
	if !s.originAllowed(r) {
		s.m.reject(rejectOrigin)
		s.log.Debug("upgrade refused: origin", "remote", remote, "origin", r.Header.Get("Origin"))
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	ip := limitKey(remote)
	if status, msg := s.reserve(ip); status != 0 {
		s.log.Debug("upgrade refused", "remote", remote, "status", status)
		http.Error(w, msg, status)
		return
	}
	// reserve took a wg count for this handler; hold it until the read
	// pump has its own.
	defer s.wg.Done()

	hw := &hijackWriter{ResponseWriter: w}
	ws, err := s.up.Upgrade(hw, r, nil)
	if err != nil {
		s.release(ip, nil)
		s.m.reject(rejectBadUpgrade)
		s.log.Debug("upgrade failed", "remote", remote, "err", err)
		return
	}
	c := &Conn{
		srv:    s,
		id:     s.nextID.Add(1),
		ws:     ws,
		sock:   hw.sock,
		remote: remote,
		ip:     ip,
		query:  strings.Clone(r.URL.RawQuery),
		at:     time.Now(),
	}
	ws.SetReadLimit(s.limits.Load().MaxMessageSize)
	ws.SetPingHandler(c.onPing)
	ws.SetPongHandler(c.onPong)
	ws.SetCloseHandler(c.onClose)

	s.mu.Lock()
	s.upgrades--
	s.conns[c] = struct{}{}
	closing := s.closing
	s.mu.Unlock()
	if closing {
		c.Close(websocket.CloseGoingAway, "going away")
	}
	s.m.Accepted.Inc()
	if remote != r.RemoteAddr {
		s.log.Debug("connection open", "conn", c.id, "remote", c.remote, "proxy", r.RemoteAddr)
	} else {
		s.log.Debug("connection open", "conn", c.id, "remote", c.remote)
	}
	s.wg.Go(c.readLoop)
}

// reserve counts an upgrade against MaxConns and MaxConnsPerIP and takes a
// wg count for the handler. It returns an HTTP status when refused.
func (s *Server) reserve(ip string) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		s.m.reject(rejectShutdown)
		return http.StatusServiceUnavailable, "server shutting down"
	case len(s.conns)+s.upgrades >= s.limits.Load().MaxConns:
		s.m.reject(rejectMaxConns)
		return http.StatusServiceUnavailable, "too many connections"
	case s.perIP[ip] >= s.limits.Load().MaxConnsPerIP:
		s.m.reject(rejectMaxConnsIP)
		return http.StatusTooManyRequests, "too many connections from this address"
	}
	s.upgrades++
	s.perIP[ip]++
	s.wg.Add(1)
	return 0, ""
}

// release undoes reserve's counting for a failed upgrade (c nil) or a
// closed connection.
func (s *Server) release(ip string, c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == nil {
		s.upgrades--
	} else {
		delete(s.conns, c)
	}
	if n := s.perIP[ip] - 1; n > 0 {
		s.perIP[ip] = n
	} else {
		delete(s.perIP, ip)
	}
}

func (s *Server) unregister(c *Conn) { s.release(c.ip, c) }

// originAllowed applies AllowedOrigins. A request without Origin comes
// from a non-browser client and is allowed.
func (s *Server) originAllowed(r *http.Request) bool {
	if s.anyOrigin {
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	for _, a := range s.origins {
		if strings.EqualFold(o, a) {
			return true
		}
	}
	return false
}

// limitKey is what MaxConnsPerIP counts: the IPv4 address (/32), or the
// IPv6 /64 (one host holds a whole /64; counting single IPv6 addresses
// would make the limit free to dodge). addr is "ip:port", or a bare "ip"
// (a client named by X-Forwarded-For).
func limitKey(addr string) string {
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(addr); err != nil {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return addr
		}
		return host
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}
