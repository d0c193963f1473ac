package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Close codes of the relay (SPEC sections 1 and 6, relay/ports.go and
// relay/auth.go).
const (
	closeReplaced     = 4000
	closeAuthFailed   = 4001
	closeTokenExpired = 4002
)

// authKind is how a session binds its node id.
type authKind int

const (
	authPlain authKind = iota // ?node_id= binds at connect
	authKey                   // RelayChallenge, NodeAuth, RelayAuthOk
	authToken                 // ?jwt=, RelayAuthOk
)

// session is one WebSocket connection to a relay, with its reader and
// writer goroutines. The run goroutine starts it (connect), publishes it
// once bound (serve) and stops it (shutdown).
type session struct {
	c      *Client
	url    string
	conn   *websocket.Conn
	auth   authKind
	nodeID string // the id to bind; the bound id once ready

	out    chan writeReq      // frames for the writer
	ctx    context.Context    // the writer's; cancelled by stop and by the reader's end
	cancel context.CancelFunc //
	ready  chan struct{}      // closed by the reader once the id is bound
	over   chan struct{}      // closed when the reader has ended
	wdone  chan struct{}      // closed when the writer has ended
	wg     sync.WaitGroup     // reader and writer

	stopOnce sync.Once
	closing  atomic.Bool // a close frame was sent: frames read now are dropped

	// Reader only.
	challenged bool
	bound      bool
	replaying  bool // a since_ms replay runs until its RelayHistoryEnd
	// After the replay's RelayHistoryEnd the relay sends the live
	// broadcasts it held meanwhile; until one of them is as new as the end
	// (endMS, local clock), "now" is not yet heard (draining).
	draining bool
	endMS    int64

	mu        sync.Mutex
	end       error        // the first reason the session ended
	hist      *historyCall // the History call this session answers
	ended     bool         // the reader is gone: no History may start
	drainURLs []string     // from RelayDraining, read after over is closed
}

// writeReq is a frame for the writer; done, when set, gets the result.
type writeReq struct {
	data []byte
	done chan error
}

// connect dials u and binds the node id within HandshakeTimeout.
func (c *Client) connect(u string) (*session, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	if err := c.freshToken(ctx, u); err != nil {
		return nil, err
	}
	since := c.since(u)
	full, err := c.connectURL(u, since)
	if err != nil {
		return nil, fmt.Errorf("relay URL %s: %w", u, err)
	}
	h := http.Header{}
	if c.cfg.AuthToken != "" {
		h.Set("Authorization", "Bearer "+c.cfg.AuthToken)
	}
	conn, resp, err := c.dialer.DialContext(ctx, full, h)
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, &AuthError{URL: u, Code: resp.StatusCode, Reason: resp.Status, err: ErrAuthFailed}
		}
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, fmt.Errorf("connect %s: %w", u, err)
	}
	s := &session{
		c: c, url: u, conn: conn, nodeID: c.NodeID(), replaying: since > 0,
		out: make(chan writeReq, 64), ready: make(chan struct{}), over: make(chan struct{}), wdone: make(chan struct{}),
	}
	switch {
	case c.cfg.NodeKey != nil:
		s.auth = authKey
	case c.token != "":
		s.auth = authToken
	}
	s.ctx, s.cancel = context.WithCancel(c.ctx)
	conn.SetReadLimit(c.cfg.MaxMessageSize)
	s.wg.Add(2)
	go s.read()
	go s.write()
	select {
	case <-s.ready:
		return s, nil
	case <-s.over:
	case <-ctx.Done():
		s.stop(websocket.CloseNormalClosure, "", fmt.Errorf("relay %s: no bind within %v: %w", u, c.cfg.HandshakeTimeout, ctx.Err()))
	}
	c.shutdown(s)
	return nil, s.endErr()
}

// serve publishes a bound session and waits for its end (renewing its
// token meanwhile), then shuts it down and returns why it ended.
func (c *Client) serve(s *session) error {
	c.setSession(s)
	c.lastURL = s.url // run goroutine, like since
	c.stats.connections.Add(1)
	c.log.Info("connected", "remote", s.url, "node", s.nodeID)
	c.notify(State{URL: s.url, Connected: true})
	select {
	case <-c.up:
	default:
		close(c.up) // Dial returns
	}
	renew := c.renewTimer()
	defer renew.Stop()
wait:
	for {
		select {
		case <-s.over:
			break wait
		case <-c.ctx.Done():
			s.stop(websocket.CloseNormalClosure, "client closing", ErrClosed)
			break wait
		case <-renew.C:
			c.renew(s)
			renew.Stop()
			renew = c.renewTimer()
		}
	}
	c.setSession(nil)
	c.shutdown(s)
	return s.endErr()
}

// shutdown stops s, waits up to closeGrace for the relay's close frame,
// then for the reader and writer.
func (c *Client) shutdown(s *session) {
	s.stop(websocket.CloseNormalClosure, "", ErrClosed)
	t := time.NewTimer(closeGrace)
	select {
	case <-s.over:
	case <-t.C:
		_ = s.conn.Close()
	}
	t.Stop()
	s.wg.Wait()
}

// stop sends a close frame once and makes the reader end within
// closeGrace; reason is why the session ends, unless one was set before.
func (s *session) stop(code int, text string, reason error) {
	s.stopOnce.Do(func() {
		s.setEnd(reason)
		s.closing.Store(true)
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeGrace))
		_ = s.conn.SetReadDeadline(time.Now().Add(closeGrace))
		s.cancel()
	})
}

func (s *session) setEnd(err error) {
	s.mu.Lock()
	if s.end == nil {
		s.end = err
	}
	s.mu.Unlock()
}

func (s *session) endErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
}

// read is the reader goroutine: the handshake, then every frame.
func (s *session) read() {
	defer s.wg.Done()
	defer s.finish()
	s.conn.SetPongHandler(func(string) error {
		s.alive()
		return nil
	})
	s.conn.SetPingHandler(func(data string) error {
		s.alive()
		err := s.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(s.c.cfg.WriteTimeout))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})
	_ = s.conn.SetReadDeadline(time.Now().Add(s.c.cfg.ReadTimeout))
	if s.auth == authPlain {
		s.markBound(s.nodeID)
	}
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			s.setEnd(s.closeReason(err))
			return
		}
		if s.closing.Load() {
			continue
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(s.c.cfg.ReadTimeout))
		if err := s.frame(data); err != nil {
			s.stop(websocket.CloseNormalClosure, closeText(err), err)
			return
		}
	}
}

// closeText is the reason in the close frame of a session the client ends.
func closeText(err error) string {
	switch {
	case errors.Is(err, ErrSlowReader):
		return "slow reader"
	case errors.Is(err, ErrDraining):
		return "relay draining"
	}
	return "protocol error"
}

// alive notes a ping or pong: the connection is live, and (outside a
// replay) everything sent before now has been heard.
func (s *session) alive() {
	if s.closing.Load() {
		return
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(s.c.cfg.ReadTimeout))
	if s.bound && !s.replaying && !s.draining {
		s.c.heard.Store(time.Now().UnixMilli())
	}
}

// markBound records the bound id and releases connect.
func (s *session) markBound(id string) {
	s.nodeID, s.bound = id, true
	if !s.replaying {
		// From the bind on, this connection receives what is sent: a
		// connection that drops before hearing anything resumes from here.
		s.c.heard.Store(time.Now().UnixMilli())
	}
	close(s.ready)
}

// finish runs when the reader ends: it stops the writer, closes the socket
// and fails a pending History call.
func (s *session) finish() {
	s.cancel()
	_ = s.conn.Close()
	s.mu.Lock()
	s.ended = true
	if h := s.hist; h != nil {
		h.finish(nil, ErrConnectionLost)
	}
	s.mu.Unlock()
	close(s.over)
}

// closeReason turns the reader's error into why the session ended.
func (s *session) closeReason(err error) error {
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		return fmt.Errorf("connection to %s: %w", s.url, err)
	}
	switch ce.Code {
	case closeReplaced:
		return fmt.Errorf("relay %s: %w", s.url, ErrReplaced)
	case closeAuthFailed:
		return &AuthError{URL: s.url, Code: ce.Code, Reason: ce.Text, err: ErrAuthFailed}
	case closeTokenExpired:
		return &AuthError{URL: s.url, Code: ce.Code, Reason: ce.Text, err: ErrTokenExpired}
	}
	return fmt.Errorf("relay %s closed the connection: %w", s.url, err)
}

// write is the writer goroutine: the only one that writes data frames;
// it pings every PingInterval.
func (s *session) write() {
	defer s.wg.Done()
	defer close(s.wdone)
	cfg := &s.c.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	for {
		var err error
		select {
		case <-s.ctx.Done():
			return
		case r := <-s.out:
			_ = s.conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			err = s.conn.WriteMessage(websocket.TextMessage, r.data)
			if r.done != nil {
				r.done <- err
			}
		case <-ping.C:
			err = s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout))
		}
		if err != nil {
			s.setEnd(fmt.Errorf("write to %s: %w", s.url, err))
			_ = s.conn.Close() // the reader ends
			return
		}
	}
}

// errNotSent: the session ended before its writer took the frame.
var errNotSent = errors.New("not sent")

// send hands data to the writer and waits until it is written. It
// returns errNotSent when the session ended before the writer took it, so
// the caller may send it on the next connection.
func (s *session) send(ctx context.Context, data []byte) error {
	r := writeReq{data: data, done: make(chan error, 1)}
	select {
	case s.out <- r:
	case <-s.wdone:
		return errNotSent
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return wrapLost(err)
	case <-s.wdone:
		select {
		case err := <-r.done:
			return wrapLost(err)
		default:
			return errNotSent
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func wrapLost(err error) error {
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	return nil
}

// post queues a frame for the writer without waiting (handshake and token
// renewal); false when the queue is full or the session over.
func (s *session) post(data []byte) bool {
	select {
	case s.out <- writeReq{data: data}:
		return true
	default:
		return false
	}
}
