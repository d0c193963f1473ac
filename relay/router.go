package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/gsio-net/gsio-relay/internal/ttlset"
	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// Config holds the routing settings an operator chooses.
type Config struct {
	RelayID   string        // sender_id of messages the relay itself sends; default "relay"
	Echo      bool          // deliver broadcasts back to their sender too; default false
	RateLimit float64       // messages per second per connection; default 1000
	RateBurst int           // token bucket depth; default 2000
	DedupSize int           // (sender_id, message_id) pairs remembered; default 262144
	DedupTTL  time.Duration // how long a pair is remembered at least; default 2m

	NodeListMaxBytes int // node ids in one NodeListResponse answer (in pages of 64 KiB); default 1 MiB

	MaxBroadcastSize int // largest broadcast frame (larger: too_large); default 1 MiB (--max-message-size)
	MaxDirectSize    int // largest direct message frame; default 16 MiB (--max-direct-size)

	MailboxTTL time.Duration // direct messages are kept for a node seen connected within it; default 24h
	MailboxMax int           // messages kept per recipient (0: no mailboxes); default 1000

	ReplayTimeout time.Duration // a replay (resume, HistoryRequest) whose reader does not read this long: slow consumer; default 30s

	NodeAuth    string        // AuthOpen or AuthRequired; default AuthOpen
	BindTimeout time.Duration // a connection not bound this long is closed 4001; default 10s
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		RelayID:   "relay",
		RateLimit: 1000,
		RateBurst: 2000,
		DedupSize: 1 << 18,
		DedupTTL:  2 * time.Minute,

		NodeListMaxBytes: 1 << 20,
		MaxBroadcastSize: 1 << 20,
		MaxDirectSize:    16 << 20,
		ReplayTimeout:    30 * time.Second,
		MailboxTTL:       24 * time.Hour,
		MailboxMax:       1000,

		NodeAuth:    AuthOpen,
		BindTimeout: 10 * time.Second,
	}
}

func (c Config) validate() error {
	switch {
	case c.RelayID == "" || len(c.RelayID) > message.MaxIDLen:
		return errors.New("relay id must be 1 to 256 bytes")
	case c.RateLimit <= 0:
		return errors.New("--rate-limit must be positive")
	case c.RateBurst < 1:
		return errors.New("--rate-burst must be at least 1")
	case c.DedupSize < 2:
		return errors.New("--dedup-size must be at least 2")
	case c.DedupTTL <= 0:
		return errors.New("--dedup-ttl must be positive")
	case c.NodeAuth != AuthOpen && c.NodeAuth != AuthRequired:
		return fmt.Errorf("--node-auth must be %q or %q, not %q", AuthOpen, AuthRequired, c.NodeAuth)
	case c.NodeListMaxBytes < 1024:
		return errors.New("--node-list-max-bytes must be at least 1024")
	case c.MaxBroadcastSize < 1024:
		return errors.New("--max-message-size must be at least 1024")
	case c.MaxDirectSize < c.MaxBroadcastSize:
		return errors.New("--max-direct-size must be at least --max-message-size")
	case c.MailboxMax < 0:
		return errors.New("--mailbox-max must not be negative")
	case c.MailboxTTL <= 0:
		return errors.New("--mailbox-ttl must be positive")
	case c.ReplayTimeout <= 0:
		return errors.New("replay timeout must be positive")
	case c.BindTimeout <= 0:
		return errors.New("--bind-timeout must be positive")
	}
	return nil
}

// Option configures what a programmer injects.
type Option func(*Router)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(r *Router) { r.log = l } }

// WithMetrics sets the metrics the router updates (default: unregistered).
func WithMetrics(m *Metrics) Option { return func(r *Router) { r.metrics = m } }

// WithRelayPeerID sets the relay's libp2p peer ID, the "relay" of key-id
// challenges (default none: key ids cannot bind).
func WithRelayPeerID(id string) Option { return func(r *Router) { r.relayPeerID = id } }

// WithJWTVerifier makes the router accept node tokens checked by v
// (--node-jwt-key; default none: tokens are refused).
func WithJWTVerifier(v *nodeauth.JWTVerifier) Option { return func(r *Router) { r.jwt = v } }

// WithHistory makes the router record broadcasts in h and answer
// HistoryRequest and ?since_ms= from it (default none: empty answers,
// never complete).
func WithHistory(h History) Option { return func(r *Router) { r.hist = h } }

// WithClock sets the clock of proofs and tokens (default time.Now).
func WithClock(now func() time.Time) Option { return func(r *Router) { r.now = now } }

// Router routes GSIO messages between local WebSocket connections and the
// federation.
type Router struct {
	cfg     Config
	limits  atomic.Pointer[Limits] // the part of cfg SetLimits changes; read it, not cfg
	mesh    Mesh                   // nil: a relay alone
	log     *slog.Logger
	metrics *Metrics
	dedup   *ttlset.Hashes
	seed    [2]maphash.Seed // of msgHash

	relayPeerID string                // challenges name it; "" refuses key ids
	jwt         *nodeauth.JWTVerifier // nil refuses tokens
	hist        History               // nil: no history
	now         func() time.Time

	mail     mailboxes // mailbox.go
	inflight inflight  // direct messages sent to other relays (inflight.go)
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the mailbox goroutine

	// Learned's pacing state (outbound.go).
	learnMu      sync.Mutex
	learnedN     int
	learnedBytes int
	learnBehind  map[*Session]struct{} // over the bounds for a whole wait

	mu       sync.RWMutex
	nodes    map[string]*Session // bound local nodes by node id
	localGen atomic.Uint64       // bumped on every change of nodes
	draining atomic.Bool         // Drain was called; set with mu held (drain.go)
	cache    nodesCache
}

var _ Inbound = (*Router)(nil)

// dedupKey identifies a message federation-wide.
type dedupKey struct{ sender, id string }

// msgHash is a dedupKey as the dedup set keeps it: 128 bits of a hash
// seeded per process (no one can aim at a collision; by chance one in
// 2^128), not the two strings. The set (ttlset.Hashes) remembers a
// quarter of a million messages for minutes in 16 bytes a slot and keeps
// nothing of them alive; as a map of the strings it held ~30 MB.
type msgHash = ttlset.Hash

// hash is the msgHash of (sender, id): two 64-bit hashes under two seeds,
// each over the sender's length, the sender and the id (the length first,
// so that no two pairs write the same bytes).
func (r *Router) hash(sender, id string) msgHash {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(sender)))
	var out msgHash
	for i := range out {
		var h maphash.Hash
		h.SetSeed(r.seed[i])
		_, _ = h.Write(n[:])
		_, _ = h.WriteString(sender)
		_, _ = h.WriteString(id)
		out[i] = h.Sum64()
	}
	return out
}

// New returns a Router. mesh may be nil for a relay without federation.
func New(cfg Config, mesh Mesh, opts ...Option) (*Router, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Router{
		cfg:   cfg,
		mesh:  mesh,
		log:   slog.New(slog.DiscardHandler),
		nodes: make(map[string]*Session),
		dedup: ttlset.NewHashes(cfg.DedupSize, cfg.DedupTTL, nil),
		seed:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		now:   time.Now,
	}
	lim := limitsOf(cfg)
	r.limits.Store(&lim)
	for _, o := range opts {
		o(r)
	}
	if r.metrics == nil {
		r.metrics = NewMetrics(nil)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if mesh != nil && cfg.MailboxMax > 0 {
		// Watches presence: who was seen, whose mailbox can go out.
		r.mail.running = true
		r.wg.Go(r.pollMailboxes)
	}
	return r, nil
}

// Session is the router's state of one connection, returned by Open. The
// connection's read pump calls Frame and Closed. Only the read pump writes
// nodeID (with Router.mu held) and touches the limiter fields; other
// goroutines read nodeID with Router.mu held.
type Session struct {
	r       *Router
	conn    Conn
	nodeID  string
	limiter *rate.Limiter
	// flood accounting: messages refused by the limiter in the current
	// one-second window, and whether this window already got a RelayError.
	window   time.Time
	refused  int
	notified bool
	// messages received from and queued to this connection (admin API).
	in, out   atomic.Uint64
	auth      authState
	nodeLists *rate.Limiter // NodeListRequest answers; read pump only, made on first use
	histories *rate.Limiter // HistoryRequest answers; likewise

	// Resume (history.go): resumeSince is ?since_ms= (-1: none);
	// pendingResume is set by bind for the read pump to run the replay.
	resumeSince   int64
	pendingResume bool
	// While replaying, live frames wait in backlog. replayingA mirrors
	// replaying for a lock-free check on the send path; it is set before
	// the session is visible to senders and cleared under backlogMu.
	replayingA   atomic.Bool
	backlogMu    sync.Mutex
	replaying    bool
	backlog      []*wsframe.Frame
	backlogBytes int
	backlogOver  bool
}

// LocalNodes returns the node ids bound on this relay, sorted.
func (r *Router) LocalNodes() []string {
	r.mu.RLock()
	ids := make([]string, 0, len(r.nodes))
	for id := range r.nodes {
		ids = append(ids, id)
	}
	r.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// nodeListTTL bounds how stale the federation part of Nodes may be: the
// presence directory itself lags by gossip latency, and NodeListRequest must
// not cost a sort of the whole federation per message.
const nodeListTTL = 200 * time.Millisecond

// nodesCache holds the last result of Nodes. Its mutex is never held
// together with Router.mu.
type nodesCache struct {
	mu  sync.Mutex
	ids []string
	gen uint64 // Router.localGen when ids was computed
	at  time.Time
}

// Nodes returns every node id known in the federation, sorted, each once.
// A local bind or leave is reflected at once; remote changes within
// nodeListTTL.
func (r *Router) Nodes() []string {
	gen := r.localGen.Load()
	r.cache.mu.Lock()
	if r.cache.ids != nil && r.cache.gen == gen && time.Since(r.cache.at) < nodeListTTL {
		ids := slices.Clone(r.cache.ids)
		r.cache.mu.Unlock()
		return ids
	}
	r.cache.mu.Unlock()
	ids := r.LocalNodes()
	if r.mesh != nil {
		ids = append(ids, r.mesh.RemoteNodes()...)
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	r.cache.mu.Lock()
	r.cache.ids, r.cache.gen, r.cache.at = ids, gen, time.Now()
	r.cache.mu.Unlock()
	return slices.Clone(ids)
}

// Open starts the session of a new connection and binds it to its
// ?node_id= when it gave one. It never returns nil.
func (r *Router) Open(c Conn) *Session {
	lim := r.limits.Load()
	s := &Session{
		r:       r,
		conn:    c,
		limiter: rate.NewLimiter(rate.Limit(lim.RateLimit), lim.RateBurst),
	}
	r.metrics.Connections.Inc()
	if r.draining.Load() {
		c.Close(CloseTryAgain, drainReason)
		return s
	}
	if id := c.Query("node_id"); len(id) > message.MaxIDLen || !utf8.ValidString(id) {
		c.Close(ClosePolicy, "node_id must be valid UTF-8 of at most 256 bytes")
		return s
	}
	s.resumeSince = -1
	if v := c.Query("since_ms"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			c.Close(ClosePolicy, "since_ms must be an integer >= 0 (unix ms)")
			return s
		}
		s.resumeSince = n
	}
	r.openAuth(s)
	r.resumeIfBound(s)
	return s
}

// resumeIfBound runs the replay of ?since_ms= once bind asked for it (on
// the read pump, after the frame or the connect that bound the id).
func (r *Router) resumeIfBound(s *Session) {
	if s.pendingResume {
		s.pendingResume = false
		r.resume(s)
	}
}

// Closed forgets the connection and announces the node's leave, unless a
// newer connection took the node id over.
func (s *Session) Closed() {
	r := s.r
	s.stopAuth()
	r.metrics.Connections.Dec()
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.nodeID != "" {
		r.sawNode(s.nodeID, r.now())
	}
	if s.nodeID != "" && r.nodes[s.nodeID] == s {
		delete(r.nodes, s.nodeID)
		r.localGen.Add(1)
		r.metrics.LocalNodes.Set(float64(len(r.nodes)))
		if r.mesh != nil {
			r.mesh.NodeLeft(s.nodeID)
		}
	}
}

// bind makes s the connection of node id; an older connection of the same
// id on this relay is closed with CloseReplaced. It reports false, and
// closes the connection with CloseTryAgain, when the relay is draining.
func (r *Router) bind(s *Session, id string) bool {
	r.mu.Lock()
	if r.draining.Load() {
		r.mu.Unlock()
		s.conn.Close(CloseTryAgain, drainReason)
		return false
	}
	if s.resumeSince >= 0 && s.nodeID == "" {
		// Live frames wait from the moment the node is visible.
		s.replaying = true
		s.replayingA.Store(true)
		s.pendingResume = true
	}
	old := r.nodes[id]
	r.nodes[id] = s
	r.localGen.Add(1)
	s.nodeID = id
	if old == nil || s.auth.proof != nil {
		r.metrics.LocalNodes.Set(float64(len(r.nodes)))
		if r.mesh != nil {
			r.mesh.NodeJoined(id, s.auth.proof)
		}
	}
	r.mu.Unlock()
	r.sawNode(id, r.now())
	r.deliverMailbox(s, id)
	if old != nil && old != s {
		r.log.Info("node taken over by a newer connection", "node", id, "conn", old.conn.ID(), "remote", s.conn.RemoteAddr())
		old.conn.Close(CloseReplaced, "replaced by a newer connection")
	}
	return true
}

// local returns the session bound to node id, or nil.
func (r *Router) local(id string) *Session {
	r.mu.RLock()
	s := r.nodes[id]
	r.mu.RUnlock()
	return s
}

// fanout sends one prepared frame to every local node except the one named
// (unless echo is on). It reports the number of receivers.
func (r *Router) fanout(f *wsframe.Frame, except string) int {
	n := 0
	r.mu.RLock()
	for id, s := range r.nodes {
		if id == except && !r.cfg.Echo {
			continue
		}
		if r.send(s, f) {
			n++
		}
	}
	r.mu.RUnlock()
	return n
}

// send queues f to s and counts it for the session; a refused send
// (closing connection, slow consumer) is counted as a drop.
func (r *Router) send(s *Session, f *wsframe.Frame) bool {
	if s.replayingA.Load() && s.hold(f) {
		s.out.Add(1)
		return true
	}
	if err := s.conn.Send(f); err != nil {
		r.metrics.drop(DropSendRefused)
		return false
	}
	s.out.Add(1)
	return true
}

// sendError queues a RelayError for node id to on session s.
func (r *Router) sendError(s *Session, to, code, msg, ref string) {
	r.metrics.Errors.WithLabelValues(code).Inc()
	b := message.RelayError(r.cfg.RelayID, to, code, msg, ref)
	if r.send(s, wsframe.NewText(b)) {
		r.metrics.countOut(message.TypeRelayError, RouteLocal, len(b), 1)
	}
}
