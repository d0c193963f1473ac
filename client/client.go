package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/internal/ttlset"
)

// stableAfter: a connection that lasted this long resets the backoff.
const stableAfter = 10 * time.Second

// closeGrace bounds the wait for a relay's answer to our close frame.
const closeGrace = time.Second

// Client is a gsio-node's connection to the federation: one relay at a
// time, failing over to the next. Its methods are safe for concurrent use.
type Client struct {
	cfg    Config
	opts   options
	log    *slog.Logger
	dialer websocket.Dialer

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the run goroutine
	closeOnce sync.Once

	msgs    chan Message  // Messages(); closed when run ends
	done    chan struct{} // closed when run ends, after err is set
	err     error         // why the client stopped
	up      chan struct{} // closed at the first bound connection
	seen    *ttlset.Set[dedupKey]
	histSem chan struct{} // one History call at a time

	// Owned by the run goroutine.
	urls     []string
	token    string
	resumeAt int64  // unix ms up to which everything was heard; 0: nothing yet
	lastURL  string // the relay of the last bound connection

	// Resume marks, written by session readers.
	highTS atomic.Int64 // highest ts delivered
	heard  atomic.Int64 // local unix ms of the last frame or pong heard live

	// Catch-up of a cut replay (catchup.go).
	gapFrom  atomic.Int64 // unix ms where what was not fetched yet starts; 0: none
	catching atomic.Bool  // the catch-up goroutine runs
	catchWG  sync.WaitGroup

	mu      sync.Mutex
	sess    *session      // the bound connection, nil between connections
	slow    bool          // waiting for the reader to empty Messages()
	changed chan struct{} // closed and replaced whenever sess or slow change
	nodeID  string        // the bound node id
	lastErr error         // the last connection failure (Dial's error)

	stats struct{ attempts, connections, delivered, duplicates, slow atomic.Int64 }
}

type dedupKey struct{ sender, id string }

// Stats are the client's counters since Dial.
type Stats struct {
	Attempts        int64 // connection attempts
	Connections     int64 // connections bound
	Delivered       int64 // messages put into Messages()
	Duplicates      int64 // messages dropped as already delivered
	SlowReaderDrops int64 // connections dropped because Messages() was full
}

// Dial validates cfg, starts the client and waits until it has bound its
// node id on one of the relays, trying them in turn with backoff. ctx
// bounds this first connection only; the client then runs, reconnecting
// as needed, until Close or a fatal error (see Err). An authentication
// failure or a takeover (4000) is returned at once.
func Dial(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	id, err := cfg.validate(o.tokens != nil)
	if err != nil {
		return nil, err
	}
	c := newClient(cfg, o, id)
	c.wg.Add(1)
	go c.run()
	select {
	case <-c.up:
		return c, nil
	case <-c.done:
		c.wg.Wait()
		return nil, c.err
	case <-ctx.Done():
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		c.Close()
		if last != nil {
			return nil, fmt.Errorf("dial: %w (last attempt: %v)", ctx.Err(), last)
		}
		return nil, fmt.Errorf("dial: %w", ctx.Err())
	}
}

// newClient builds a client that does not run yet.
func newClient(cfg Config, o options, id string) *Client {
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	cfg.URLs = slices.Clone(cfg.URLs)
	c := &Client{
		cfg:     cfg,
		opts:    o,
		log:     o.log,
		dialer:  websocket.Dialer{Proxy: http.ProxyFromEnvironment, TLSClientConfig: o.tls, HandshakeTimeout: cfg.HandshakeTimeout},
		msgs:    make(chan Message, cfg.Buffer),
		done:    make(chan struct{}),
		up:      make(chan struct{}),
		seen:    ttlset.New[dedupKey](cfg.DedupSize, cfg.DedupTTL, nil),
		histSem: make(chan struct{}, 1),
		urls:    cfg.URLs,
		token:   cfg.Token,
		changed: make(chan struct{}),
		nodeID:  id,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Messages returns the received messages: broadcasts and direct messages
// from other nodes, NodeListResponses, and RelayErrors (Message.Err set).
// Its capacity is Config.Buffer; see the package doc for what happens when
// it is full. It is closed when the client stops.
func (c *Client) Messages() <-chan Message { return c.msgs }

// Done is closed when the client has stopped: Close, or a fatal error.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the client stopped (ErrClosed after Close, an *AuthError,
// ErrReplaced, ErrTokenExpired), or nil while it runs.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close stops the client: it closes the connection (1000), waits for every
// goroutine and closes Messages(). It is idempotent and returns nil.
func (c *Client) Close() error {
	c.closeOnce.Do(c.cancel)
	c.wg.Wait()
	return nil
}

// NodeID is the bound node id (a key id with NodeKey, a token's sub).
func (c *Client) NodeID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodeID
}

// URL is the relay the client is connected to, or "" between connections.
func (c *Client) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return ""
	}
	return c.sess.url
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Attempts:        c.stats.attempts.Load(),
		Connections:     c.stats.connections.Load(),
		Delivered:       c.stats.delivered.Load(),
		Duplicates:      c.stats.duplicates.Load(),
		SlowReaderDrops: c.stats.slow.Load(),
	}
}

// run is the client's connection goroutine: it owns every session.
func (c *Client) run() {
	defer c.wg.Done()
	c.err = c.loop() // returned by Err, not logged
	c.cancel()       // ends a catch-up, which may be sending to msgs
	c.catchWG.Wait()
	close(c.msgs)
	close(c.done)
}

// loop connects, serves and reconnects until Close or a fatal error.
func (c *Client) loop() error {
	idx, fails := 0, 0
	for {
		if c.ctx.Err() != nil {
			return ErrClosed
		}
		u := c.urls[idx]
		c.stats.attempts.Add(1)
		s, err := c.connect(u)
		if err != nil {
			if c.ctx.Err() != nil {
				return ErrClosed
			}
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			c.notify(State{URL: u, Err: err})
			if c.fatal(err) {
				return err
			}
			c.log.Info("connection failed", "remote", u, "err", err)
			idx = (idx + 1) % len(c.urls)
			if !c.pause(c.backoff(fails)) {
				return ErrClosed
			}
			fails++
			continue
		}
		start := time.Now()
		end := c.serve(s)
		if c.ctx.Err() != nil {
			return ErrClosed
		}
		c.notify(State{URL: u, Err: end})
		if c.fatal(end) {
			return end
		}
		c.log.Info("connection ended", "remote", u, "err", end)
		if time.Since(start) >= stableAfter {
			fails = 0
		}
		var delay time.Duration
		switch {
		case errors.Is(end, ErrTokenExpired):
			c.token = "" // the token source gives a fresh one; same relay
			delay = c.backoff(fails)
			fails++
		case errors.Is(end, ErrSlowReader):
			c.setSlow(true)
			ok := c.caughtUp()
			c.setSlow(false)
			if !ok {
				return ErrClosed
			}
			continue // the relay is fine; reconnect to it once the reader caught up
		case errors.Is(end, ErrDraining):
			idx = c.follow(idx, s.drainURLs)
			delay = c.cfg.BackoffMin/2 + rand.N(c.cfg.BackoffMin/2+1) // spread the drained nodes
			if time.Since(start) < stableAfter {
				// Drained again soon after connecting: a relay that drains
				// every node it takes must not turn this into a tight loop.
				delay = max(delay, c.backoff(fails))
				fails++
			}
		default:
			idx = (idx + 1) % len(c.urls)
			delay = c.backoff(fails)
			fails++
		}
		if !c.pause(delay) {
			return ErrClosed
		}
	}
}

// fatal reports whether err stops the client.
func (c *Client) fatal(err error) bool {
	return errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrReplaced) ||
		(errors.Is(err, ErrTokenExpired) && c.opts.tokens == nil)
}

// backoff is the delay after n consecutive failures: BackoffMin doubled n
// times, at most BackoffMax, drawn uniformly from [d/2, d].
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.BackoffMin
	for i := 0; i < n && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// pause waits d, or reports false when the client is closed first.
func (c *Client) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// caughtUp waits until the reader has emptied half of Messages().
func (c *Client) caughtUp() bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for len(c.msgs) > cap(c.msgs)/2 {
		select {
		case <-t.C:
		case <-c.ctx.Done():
			return false
		}
	}
	return true
}

// follow adds the URLs a draining relay gave to the list and returns the
// index of one of them, chosen at random so that the drained nodes spread;
// or the next URL when none is usable. A wss:// relay cannot send the
// client to a ws:// one.
func (c *Client) follow(idx int, urls []string) int {
	cur := c.urls[idx]
	var to []int
	for _, u := range urls {
		if u == cur || checkURL(u) != nil || (strings.HasPrefix(cur, "wss:") && !strings.HasPrefix(u, "wss:")) {
			continue
		}
		i := slices.Index(c.urls, u)
		if i < 0 {
			if len(c.urls) >= MaxURLs {
				continue
			}
			c.urls = append(c.urls, u)
			i = len(c.urls) - 1
		}
		to = append(to, i)
	}
	if len(to) == 0 {
		return (idx + 1) % len(c.urls)
	}
	return to[rand.IntN(len(to))]
}

// notify calls the state hook.
func (c *Client) notify(s State) {
	if c.opts.hook != nil {
		c.opts.hook(s)
	}
}

// setSession publishes s (nil between connections) to Send and History.
func (c *Client) setSession(s *session) {
	c.mu.Lock()
	c.sess = s
	if s != nil {
		c.nodeID = s.nodeID
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// setSlow marks the wait for a slow reader, and wakes waiting senders.
func (c *Client) setSlow(slow bool) {
	c.mu.Lock()
	c.slow = slow
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// session returns the bound connection other than not, waiting for one;
// it fails with ErrSlowReader while the client waits for its reader.
func (c *Client) session(ctx context.Context, not *session) (*session, error) {
	for {
		c.mu.Lock()
		s, ch, slow := c.sess, c.changed, c.slow
		c.mu.Unlock()
		if s != nil && s != not {
			return s, nil
		}
		if slow {
			return nil, ErrSlowReader
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, c.err
		}
	}
}

// connectURL is u with the connect parameters: node_id, jwt, since_ms.
func (c *Client) connectURL(u string, since int64) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	q := p.Query()
	if id := c.NodeID(); id != "" {
		q.Set("node_id", id)
	}
	if c.token != "" {
		q.Set("jwt", c.token)
	}
	if since > 0 {
		q.Set("since_ms", strconv.FormatInt(since, 10))
	}
	p.RawQuery = q.Encode()
	return p.String(), nil
}

// since updates the resume point and returns the since_ms of the next
// connection (to u), 0 for none: the later of the highest ts delivered
// and the last time heard, less ResumeMargin (FailoverMargin when u is
// not the relay last connected to); before anything was heard,
// Config.Since.
func (c *Client) since(u string) int64 {
	if !c.cfg.Resume {
		return 0
	}
	c.resumeAt = max(c.resumeAt, c.highTS.Load(), c.heard.Load())
	if c.resumeAt == 0 {
		if c.cfg.Since.IsZero() {
			return 0
		}
		return c.cfg.Since.UnixMilli()
	}
	margin := c.cfg.ResumeMargin
	if c.lastURL != "" && u != c.lastURL {
		margin = max(margin, c.cfg.FailoverMargin) // see Config.FailoverMargin
	}
	since := max(c.resumeAt-margin.Milliseconds(), 1)
	if gap := c.gapFrom.Load(); gap > 0 && gap < since {
		since = gap // a cut replay not yet caught up (catchup.go)
	}
	return since
}
