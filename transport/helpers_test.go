package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a test Handler. It checks the Handler contract (Open first,
// no Frame after Closed, Closed exactly once) and records frames; onOpen
// and onFrame add behaviour.
type recorder struct {
	t       testing.TB
	onOpen  func(c *Conn)
	onFrame func(c *Conn, data []byte)
	noCopy  bool // do not record frames (benchmarks)

	mu     sync.Mutex
	state  map[*Conn]int // 1 open, 2 closed
	frames map[*Conn][]string
	opened chan *Conn
	closed chan *Conn
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{
		t:      t,
		state:  make(map[*Conn]int),
		frames: make(map[*Conn][]string),
		opened: make(chan *Conn, 8192),
		closed: make(chan *Conn, 8192),
	}
}

// handler is the recorder as the server's Handler: each connection gets
// its own recSession, which must be the one its Frame and Closed reach.
func (r *recorder) handler(c *Conn) Session {
	r.mu.Lock()
	if r.state[c] != 0 {
		r.t.Errorf("Handler called twice for conn %d", c.ID())
	}
	r.state[c] = 1
	r.mu.Unlock()
	if r.onOpen != nil {
		r.onOpen(c)
	}
	r.opened <- c
	return &recSession{r: r, c: c}
}

// recSession is the Session of one connection of a recorder.
type recSession struct {
	r *recorder
	c *Conn
}

func (s *recSession) Frame(data []byte) { s.r.frame(s.c, data) }
func (s *recSession) Closed()           { s.r.closedConn(s.c) }

func (r *recorder) frame(c *Conn, data []byte) {
	r.mu.Lock()
	if r.state[c] != 1 {
		r.t.Errorf("Frame on conn %d in state %d", c.ID(), r.state[c])
	}
	if !r.noCopy {
		r.frames[c] = append(r.frames[c], string(data))
	}
	r.mu.Unlock()
	if r.onFrame != nil {
		r.onFrame(c, data)
	}
}

func (r *recorder) closedConn(c *Conn) {
	r.mu.Lock()
	if r.state[c] != 1 {
		r.t.Errorf("Closed on conn %d in state %d", c.ID(), r.state[c])
	}
	r.state[c] = 2
	r.mu.Unlock()
	r.closed <- c
}

// framesOf returns a copy of the frames recorded for c.
func (r *recorder) framesOf(c *Conn) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.frames[c]...)
}

func (r *recorder) isClosed(c *Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state[c] == 2
}

// conns returns the open connections.
func (r *recorder) conns() []*Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	var cs []*Conn
	for c, st := range r.state {
		if st == 1 {
			cs = append(cs, c)
		}
	}
	return cs
}

// checkAllClosed verifies that every opened conn was closed exactly once.
func (r *recorder) checkAllClosed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c, st := range r.state {
		if st != 2 {
			r.t.Errorf("conn %d never got Closed", c.ID())
		}
	}
}

// waitOpen returns the next connection opened on the server.
func (r *recorder) waitOpen(t testing.TB) *Conn {
	t.Helper()
	select {
	case c := <-r.opened:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection opened within 5s")
		return nil
	}
}

// waitClosed waits until Handler.Closed was called for c.
func (r *recorder) waitClosed(t testing.TB, c *Conn, d time.Duration) {
	t.Helper()
	testutil.Eventually(t, d, func() bool { return r.isClosed(c) }, "Session.Closed for conn %d", c.ID())
}

// testConfig is a config for loopback tests.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	return cfg
}

// startServer starts a server; cleanup closes it and checks the handler
// saw every connection closed exactly once.
func startServer(t testing.TB, cfg Config, h *recorder, opts ...Option) *Server {
	t.Helper()
	s, err := New(cfg, h.handler, append([]Option{WithLogger(testutil.Logger())}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		h.checkAllClosed()
	})
	return s
}

func wsURL(s *Server, pathQuery string) string {
	return "ws://" + s.Addr().String() + pathQuery
}

var testDialer = websocket.Dialer{HandshakeTimeout: 5 * time.Second}

// dial connects a gorilla client; the connection is closed at cleanup.
func dial(t testing.TB, s *Server, pathQuery string) *websocket.Conn {
	t.Helper()
	return dialWith(t, &testDialer, wsURL(s, pathQuery), nil)
}

func dialWith(t testing.TB, d *websocket.Dialer, url string, hdr http.Header) *websocket.Conn {
	t.Helper()
	ws, resp, err := d.Dial(url, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// dialStatus dials and expects the upgrade to be refused with status.
func dialStatus(t testing.TB, d *websocket.Dialer, url string, hdr http.Header, status int) {
	t.Helper()
	ws, resp, err := d.Dial(url, hdr)
	if err == nil {
		ws.Close()
		t.Fatalf("dial %s: upgraded, want HTTP %d", url, status)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v, want HTTP %d", url, err, status)
	}
	if resp.StatusCode != status {
		t.Fatalf("dial %s: HTTP %d, want %d", url, resp.StatusCode, status)
	}
}

// readText reads one message and expects a text message.
func readText(t testing.TB, ws *websocket.Conn) string {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, p, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("read: message type %d, want text", mt)
	}
	return string(p)
}

// readUntilClose reads messages until an error (a close frame is a
// *websocket.CloseError) and returns the text messages read before it.
func readUntilClose(ws *websocket.Conn, d time.Duration) ([]string, error) {
	var got []string
	ws.SetReadDeadline(time.Now().Add(d))
	for {
		mt, p, err := ws.ReadMessage()
		if err != nil {
			return got, err
		}
		if mt != websocket.TextMessage {
			return got, fmt.Errorf("message type %d, want text", mt)
		}
		got = append(got, string(p))
	}
}

// expectClose reads until a close frame and checks its code; it returns the
// text messages read before it.
func expectClose(t testing.TB, ws *websocket.Conn, code int) []string {
	t.Helper()
	got, err := readUntilClose(ws, 10*time.Second)
	if c := closeCode(err); c != code {
		t.Fatalf("read: %v after %d messages, want close %d", err, len(got), code)
	}
	return got
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// rawDial opens a WebSocket connection by hand over plain TCP: it sends the
// upgrade request and reads the 101 response, with no client machinery
// (no goroutine, no buffers) behind it.
func rawDial(addr, pathQuery string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := rawHandshake(c, addr, pathQuery); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func rawHandshake(c net.Conn, host, pathQuery string) error {
	req := "GET " + pathQuery + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	// Read byte by byte up to the blank line, so that nothing after the
	// response is consumed.
	var buf [512]byte
	n := 0
	for n < len(buf) {
		if _, err := c.Read(buf[n : n+1]); err != nil {
			return fmt.Errorf("read response: %w", err)
		}
		n++
		if n >= 4 && string(buf[n-4:n]) == "\r\n\r\n" {
			break
		}
	}
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 101 ") {
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		return fmt.Errorf("handshake: %q", line)
	}
	return nil
}

// readRawFrame reads one unmasked server frame from a raw client.
func readRawFrame(r *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err = io.ReadFull(r, l[:]); err != nil {
			return 0, nil, err
		}
		n = int(l[0])<<8 | int(l[1])
	case 127:
		var l [8]byte
		if _, err = io.ReadFull(r, l[:]); err != nil {
			return 0, nil, err
		}
		n = 0
		for _, b := range l {
			n = n<<8 | int(b)
		}
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0], payload, err
}

// plainClient makes HTTP requests without keeping connections (and their
// goroutines) alive.
func plainClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
}
