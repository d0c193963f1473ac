package transport

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/gsio-net/gsio-relay/wsframe"
)

// errCloseSent is returned for a write after a close frame went out.
var errCloseSent = errors.New("transport: close frame already sent")

// closeGrace bounds the end of a connection: how long a close frame may take
// to go out, and how long the peer's close reply is awaited.
const closeGrace = time.Second

// socket wraps the hijacked connection. Every write to the socket, the
// Conn writer's batches and gorilla's own (the 101 response, the close
// frames it sends on a read-limit or protocol error), goes through mu, so
// frames never interleave. After a close frame has been written nothing
// more is.
//
// Deadlines are the socket's: gorilla's SetWriteDeadline calls are ignored.
// A deadline may be capped (capRead, capWrite) from another goroutine; a
// cap is never extended by a later refresh.
type socket struct {
	net.Conn              // the hijacked conn: *net.TCPConn, *proxyproto.Conn or *tls.Conn
	tcp      *net.TCPConn // the TCP conn under it when plain TCP: batches use writev
	rcap     atomic.Int64 // read deadline cap, UnixNano; 0 = none
	wcap     atomic.Int64 // write deadline cap, UnixNano; 0 = none
	mu       sync.Mutex   // serialises writes; guards closeSnt
	closeSnt bool         // a close frame has been written
}

func newSocket(c net.Conn) *socket {
	s := &socket{Conn: c}
	switch c := c.(type) {
	case *net.TCPConn:
		s.tcp = c
	case *proxyproto.Conn:
		// Its header is read by now: writes may go straight to the TCP
		// conn. Reads stay with it, which may hold buffered bytes.
		s.tcp, _ = c.TCPConn()
	}
	return s
}

// Write is gorilla's path to the socket. It writes whole frames (or the 101
// response) under the write lock, with a short deadline.
func (s *socket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeSnt {
		return 0, errCloseSent
	}
	s.setWriteDeadline(time.Now().Add(closeGrace))
	n, err := s.Conn.Write(p)
	if wsframe.IsClose(p) {
		s.closeSnt = true
	}
	return n, err
}

// closeSent reports whether a close frame has been written.
func (s *socket) closeSent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeSnt
}

// SetWriteDeadline ignores gorilla's deadlines: the writer sets its own
// under the write lock.
func (s *socket) SetWriteDeadline(time.Time) error { return nil }

// writeBatch writes frames in one go: writev on TCP, one copy through a
// pooled buffer on TLS. isClose says the batch ends with a close frame.
func (s *socket) writeBatch(bufs [][]byte, deadline time.Time, isClose bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeSnt {
		return errCloseSent
	}
	s.setWriteDeadline(deadline)
	var err error
	switch {
	case s.tcp != nil:
		nb := net.Buffers(bufs)
		_, err = nb.WriteTo(s.tcp)
	default:
		err = s.writeCopied(bufs)
	}
	if err == nil && isClose {
		s.closeSnt = true
	}
	return err
}

const copyBufSize = 64 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 0, copyBufSize); return &b }}

// writeCopied writes bufs through a pooled buffer, so a TLS connection
// makes few records and few writes for many small frames.
func (s *socket) writeCopied(bufs [][]byte) error {
	bp := copyBufPool.Get().(*[]byte)
	b := (*bp)[:0]
	defer func() { *bp = b[:0]; copyBufPool.Put(bp) }()
	for _, p := range bufs {
		if len(b)+len(p) > cap(b) && len(b) > 0 {
			if _, err := s.Conn.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		if len(p) > cap(b) {
			if _, err := s.Conn.Write(p); err != nil {
				return err
			}
			continue
		}
		b = append(b, p...)
	}
	if len(b) > 0 {
		_, err := s.Conn.Write(b)
		return err
	}
	return nil
}

// setWriteDeadline sets d, or the cap when that is earlier. The second
// look at the cap closes the race with a concurrent capWrite: either this
// call sees the cap, or capWrite's own SetWriteDeadline comes after ours.
func (s *socket) setWriteDeadline(d time.Time) {
	setCapped(d, &s.wcap, s.Conn.SetWriteDeadline)
}

// setReadDeadline is setWriteDeadline for reads.
func (s *socket) setReadDeadline(d time.Time) {
	setCapped(d, &s.rcap, s.Conn.SetReadDeadline)
}

func setCapped(d time.Time, capp *atomic.Int64, set func(time.Time) error) {
	n := d.UnixNano()
	if c := capp.Load(); c != 0 && c < n {
		n = c
	}
	set(time.Unix(0, n))
	if c := capp.Load(); c != 0 && c < n {
		set(time.Unix(0, c))
	}
}

// capWrite makes the write deadline t at the latest, now and for every
// later batch, so a writer blocked in Write returns by t.
func (s *socket) capWrite(t time.Time) { s.Conn.SetWriteDeadline(time.Unix(0, storeMin(&s.wcap, t))) }

// capRead makes the read deadline t at the latest, waking the read pump
// by t.
func (s *socket) capRead(t time.Time) { s.Conn.SetReadDeadline(time.Unix(0, storeMin(&s.rcap, t))) }

func storeMin(a *atomic.Int64, t time.Time) int64 {
	n := t.UnixNano()
	for {
		old := a.Load()
		if old != 0 && old <= n {
			return old
		}
		if a.CompareAndSwap(old, n) {
			return n
		}
	}
}

// closeSocket closes the connection. A TLS connection is closed without a
// close_notify alert, which could block for seconds on a peer that does not
// read: the WebSocket closing handshake already ended the session.
func (s *socket) closeSocket() error {
	if tc, ok := s.Conn.(*tls.Conn); ok {
		return tc.NetConn().Close()
	}
	return s.Conn.Close()
}

// hijackWriter hands gorilla's Upgrade a socket instead of the raw
// connection, so that gorilla's writes go through the socket's lock too.
var _ http.Hijacker = (*hijackWriter)(nil)

type hijackWriter struct {
	http.ResponseWriter
	sock *socket
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.sock = newSocket(c)
	return w.sock, brw, nil
}
