package transport

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/wsframe"
)

// Errors of Send: the reasons a frame is not queued.
var (
	// ErrClosing: the connection is closing or closed.
	ErrClosing = errors.New("connection closing")
	// ErrSlowConsumer: the frame would overflow the send queue; the
	// connection is being closed with 1008.
	ErrSlowConsumer = errors.New("slow consumer")
)

// Conn is one upgraded WebSocket connection.
//
// Its read pump (readLoop) is the only reader; it calls the Handler and
// owns the socket's final Close. Frames to the client are queued by Send
// and written by a writer goroutine that runs only while frames are queued.
type Conn struct {
	srv    *Server
	id     uint64
	ws     *websocket.Conn
	sock   *socket
	remote string
	ip     string
	query  string // raw query of the upgrade request
	at     time.Time
	sess   Session // the handler's side; read pump only

	readRefreshed int64 // UnixNano of the last read deadline refresh; read pump only
	msgDeadline   int64 // UnixNano by which the message being read must end, 0 between messages; read pump only

	closed atomic.Bool // mirrors closing, for the read pump's lock-free check

	mu          sync.Mutex       // guards the fields below
	queue       []*wsframe.Frame // data frames waiting for the writer
	queueBytes  int              // sum of Len over queue
	pingPending bool             // a keepalive ping waits for the writer
	pong        *wsframe.Frame   // pong to the latest ping, waiting for the writer
	closeFrame  *wsframe.Frame   // close frame to write after queue, then stop
	closing     bool             // no more Sends; set by Close, slow consumer, read end
	dead        bool             // a write failed: nothing more is written
	writing     bool             // a writer goroutine is running
	writerDone  chan struct{}    // closed by the writer on exit when non-nil
}

// ID is unique among the connections of one Server.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr is the client's address: the peer's "ip:port", or, behind a
// trusted proxy (Config.TrustedProxies), the client it names: "ip:port"
// from a PROXY protocol header, a bare "ip" (or "ip:port" when the entry
// has one) from X-Forwarded-For.
func (c *Conn) RemoteAddr() string { return c.remote }

// Query returns the named query parameter of the upgrade request (the
// client's connect parameters), or "".
func (c *Conn) Query(name string) string {
	v, err := url.ParseQuery(c.query)
	if err != nil && v == nil {
		return ""
	}
	return v.Get(name)
}

// ConnectedAt is the time of the upgrade.
func (c *Conn) ConnectedAt() time.Time { return c.at }

// QueueLen reports the frames and bytes waiting to be written.
func (c *Conn) QueueLen() (frames, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue), c.queueBytes
}

// Send queues f for the client and never blocks. It returns ErrClosing
// when the connection is closing. When the queue would exceed
// SendQueueFrames or SendQueueBytes, the connection is closed as a slow
// consumer (1008): its queue is dropped and Send returns ErrSlowConsumer.
func (c *Conn) Send(f *wsframe.Frame) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosing
	}
	lim := c.srv.limits.Load()
	if len(c.queue) >= lim.SendQueueFrames || c.queueBytes+f.Len() > lim.SendQueueBytes {
		frames, bytes := len(c.queue), c.queueBytes
		c.slowConsumerLocked()
		c.mu.Unlock()
		c.srv.m.SlowConsumers.Inc()
		c.srv.log.Warn("slow consumer: closing connection", "conn", c.id, "remote", c.remote,
			"queued_frames", frames, "queued_bytes", bytes)
		return ErrSlowConsumer
	}
	if c.queue == nil {
		c.queue = getQueue()
	}
	c.queue = append(c.queue, f)
	c.queueBytes += f.Len()
	c.startWriterLocked()
	c.mu.Unlock()
	return nil
}

// Close closes the connection with code and reason. It does not block and
// may be called any number of times; only the first counts. The close frame
// is written after the frames already queued; the peer's close reply is
// awaited for about a second, then the socket is closed.
func (c *Conn) Close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(wsframe.NewClose(code, reason), false)
}

// closeLocked starts the closing handshake with cf unless it was started
// already. drop discards the queued frames first.
func (c *Conn) closeLocked(cf *wsframe.Frame, drop bool) {
	if c.closing {
		return
	}
	c.closing = true
	c.closed.Store(true)
	if drop {
		c.dropQueueLocked()
	}
	if c.dead {
		return
	}
	c.closeFrame = cf
	c.startWriterLocked()
}

func (c *Conn) slowConsumerLocked() {
	c.closeLocked(wsframe.NewClose(websocket.ClosePolicyViolation, "slow consumer"), true)
	// A writer blocked on a full socket gives up soon; the close frame
	// goes out if there is room for it.
	c.sock.capWrite(time.Now().Add(closeGrace))
}

func (c *Conn) dropQueueLocked() {
	clear(c.queue)
	c.queue = nil
	c.queueBytes = 0
	c.pingPending = false
	c.pong = nil
}

// queuePing queues a keepalive ping unless one is pending already.
func (c *Conn) queuePing() {
	c.mu.Lock()
	if !c.closing && !c.pingPending {
		c.pingPending = true
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

// startWriterLocked starts the writer unless it runs. Every caller has
// just seen c.closing false under c.mu, so the read pump has not reached
// finish and still holds its count on the server's WaitGroup: this Add
// never meets a Wait at zero.
func (c *Conn) startWriterLocked() {
	if c.writing {
		return
	}
	c.writing = true
	c.srv.wg.Go(c.writeLoop)
}

// writeScratch is a writer's reusable batch storage.
type writeScratch struct {
	frames []*wsframe.Frame
	bufs   [][]byte
}

var scratchPool = sync.Pool{New: func() any { return new(writeScratch) }}

// Batch storage above these capacities is not kept.
const (
	keepQueueCap   = 16
	keepScratchCap = 8192
)

// queuePool keeps the send queues of connections gone idle, so that a
// burst does not regrow a queue from nothing on every connection.
var queuePool sync.Pool

func getQueue() []*wsframe.Frame {
	if q, ok := queuePool.Get().(*[]*wsframe.Frame); ok {
		return (*q)[:0]
	}
	return nil
}

func putQueue(q []*wsframe.Frame) {
	if cap(q) > keepScratchCap {
		return
	}
	clear(q[:cap(q)])
	q = q[:0]
	queuePool.Put(&q)
}

// writeLoop drains the queue: everything queued goes out in one vectored
// write, and the loop goes on while more was queued meanwhile. It exits
// when the queue is empty, after the close frame, or on a write error.
func (c *Conn) writeLoop() {
	sc := scratchPool.Get().(*writeScratch)
	for {
		c.mu.Lock()
		if c.dead || (len(c.queue) == 0 && !c.pingPending && c.pong == nil && c.closeFrame == nil) {
			c.writing = false
			if cap(c.queue) > keepQueueCap {
				putQueue(c.queue)
				c.queue = nil
			}
			if c.writerDone != nil {
				close(c.writerDone)
				c.writerDone = nil
			}
			c.mu.Unlock()
			break
		}
		bufs := sc.bufs[:0]
		if c.pingPending {
			bufs = append(bufs, wsframe.Ping.Wire())
			c.pingPending = false
		}
		if c.pong != nil {
			bufs = append(bufs, c.pong.Wire())
			c.pong = nil
		}
		frames := c.queue
		c.queue, c.queueBytes = sc.frames[:0], 0
		for _, f := range frames {
			bufs = append(bufs, f.Wire())
		}
		cf := c.closeFrame
		c.closeFrame = nil
		if cf != nil {
			bufs = append(bufs, cf.Wire())
		}
		c.mu.Unlock()

		err := c.sock.writeBatch(bufs, time.Now().Add(c.srv.cfg.WriteTimeout), cf != nil)
		if err == nil {
			c.srv.m.observeDelivery(frames)
		}
		clear(frames)
		clear(bufs)
		sc.frames, sc.bufs = frames[:0], bufs[:0]
		switch {
		case err != nil:
			c.writeFailed(err)
		case cf != nil:
			// Nothing follows a close frame. Await the peer's reply
			// for a short while: the read pump ends on it or on this
			// deadline.
			c.mu.Lock()
			c.dead = true
			c.mu.Unlock()
			c.sock.capRead(time.Now().Add(closeGrace))
		}
	}
	if cap(sc.frames) > keepScratchCap || cap(sc.bufs) > keepScratchCap {
		return
	}
	scratchPool.Put(sc)
}

// writeFailed ends the connection after a failed write: the stream may be
// cut mid-frame, so nothing more is written, and the read pump is woken to
// close the socket.
func (c *Conn) writeFailed(err error) {
	c.mu.Lock()
	c.dead = true
	c.closing = true
	c.closed.Store(true)
	c.dropQueueLocked()
	c.closeFrame = nil
	c.mu.Unlock()
	if errors.Is(err, errCloseSent) {
		// gorilla wrote a close frame from the read pump, which is
		// ending already.
		return
	}
	c.sock.capRead(time.Now())
	c.srv.m.WriteErrors.Inc()
	c.srv.log.Debug("write failed", "conn", c.id, "remote", c.remote, "err", err)
}

// Read buffers: messages are read into pooled buffers that grow as needed
// (up to MaxMessageSize); grown buffers beyond readBufKeep are not pooled.
const (
	readBufStart = 4 << 10
	readBufKeep  = 64 << 10
)

var readBufPool = sync.Pool{New: func() any { b := make([]byte, 0, readBufStart); return &b }}

// readLoop is the connection's read pump. It runs from the upgrade until
// the connection is gone, then closes the socket and calls Session.Closed.
func (c *Conn) readLoop() {
	c.refreshRead()
	c.sess = c.srv.h(c)
	var err error
	for {
		var mt int
		var r io.Reader
		mt, r, err = c.ws.NextReader()
		if err != nil {
			break
		}
		c.refreshRead()
		if mt != websocket.TextMessage {
			c.Close(websocket.CloseUnsupportedData, "binary frames are not supported")
			continue
		}
		// A message must end within PongTimeout of its first frame:
		// pings between its fragments keep the connection alive but do
		// not let a half-sent message pin its buffer for ever.
		c.msgDeadline = time.Now().Add(c.srv.cfg.PongTimeout).UnixNano()
		bp := readBufPool.Get().(*[]byte)
		orig := *bp
		var msg []byte
		var large int64
		msg, large, err = c.srv.readMessage(r, orig[:0])
		c.msgDeadline = 0
		if err == nil && !c.closed.Load() {
			if utf8.Valid(msg) {
				c.sess.Frame(msg)
			} else {
				c.Close(websocket.CloseInvalidFramePayloadData, "text frame is not valid UTF-8")
			}
		}
		c.srv.large.Add(-large)
		if errors.Is(err, errLargeBudget) {
			c.Close(closeTryAgainLater, "too many large messages in flight; try again later")
			err = nil
		}
		if cap(msg) <= readBufKeep {
			*bp = msg[:0]
		} else {
			*bp = orig[:0]
		}
		readBufPool.Put(bp)
		if err != nil {
			break
		}
	}
	c.finish(err)
}

// closeTryAgainLater is RFC 6455's 1013: the server is overloaded.
const closeTryAgainLater = 1013

// errLargeBudget: the relay-wide budget of large messages is spent.
var errLargeBudget = errors.New("large message budget spent")

// readMessage appends the rest of r to b. The bytes of a message beyond
// LargeMessageThreshold are reserved from the server's LargeMessageBudget
// as it grows (and released by the caller: large), so that many clients
// sending 16 MiB messages at once cannot take more than the budget.
func (s *Server) readMessage(r io.Reader, b []byte) (msg []byte, large int64, err error) {
	th := s.cfg.LargeMessageThreshold
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if over := int64(len(b)) - th; over > large {
			if !s.reserveLarge(over - large) {
				return b, large, errLargeBudget
			}
			large = over
		}
		if err != nil {
			if err == io.EOF {
				return b, large, nil
			}
			return b, large, err
		}
	}
}

// reserveLarge takes n bytes of the large-message budget, if there are.
func (s *Server) reserveLarge(n int64) bool {
	for {
		cur := s.large.Load()
		if cur+n > s.limits.Load().LargeMessageBudget {
			return false
		}
		if s.large.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// refreshRead pushes the read deadline PongTimeout ahead (never past a cap
// set by closing). Called from the read pump only. A deadline set less
// than PongTimeout/32 ago is left alone: moving it costs more than a
// clock read, and a busy connection would move it on every frame.
func (c *Conn) refreshRead() {
	now := time.Now()
	pt := c.srv.cfg.PongTimeout
	if n := now.UnixNano(); n-c.readRefreshed >= int64(pt/32) || c.msgDeadline != 0 {
		c.readRefreshed = n
		d := now.Add(pt)
		if c.msgDeadline != 0 && d.UnixNano() > c.msgDeadline {
			d = time.Unix(0, c.msgDeadline)
		}
		c.sock.setReadDeadline(d)
	}
}

// onPing answers a client's ping through the writer.
func (c *Conn) onPing(data string) error {
	c.refreshRead()
	c.mu.Lock()
	if !c.closing {
		c.pong = wsframe.NewPong([]byte(data))
		c.startWriterLocked()
	}
	c.mu.Unlock()
	return nil
}

func (c *Conn) onPong(string) error {
	c.refreshRead()
	return nil
}

// onClose answers the peer's close frame with the same code, unless this
// side started the closing handshake. Queued frames are dropped: the peer
// has stopped listening.
func (c *Conn) onClose(code int, _ string) error {
	c.mu.Lock()
	c.closeLocked(wsframe.NewClose(code, ""), true)
	c.mu.Unlock()
	return nil
}

// finish ends the connection once the read pump has stopped: no more
// Sends, the writer gets a moment to flush a pending close frame, then the
// socket is closed, the connection unregistered, and Session.Closed called.
func (c *Conn) finish(err error) {
	c.mu.Lock()
	c.closing = true
	c.closed.Store(true)
	c.dropQueueLocked()
	var wait chan struct{}
	if c.writing {
		c.writerDone = make(chan struct{})
		wait = c.writerDone
	}
	c.mu.Unlock()
	if wait != nil {
		c.sock.capWrite(time.Now().Add(closeGrace))
		<-wait
	}
	if c.sock.closeSent() && lingers(err) {
		c.drain()
	}
	c.sock.closeSocket()
	c.srv.unregister(c)
	c.srv.log.Debug("connection closed", "conn", c.id, "remote", c.remote, "reason", closeReason(err))
	c.sess.Closed()
}

// lingers reports whether the read pump ended on an error after which the
// peer may still be sending: gorilla's read-limit and protocol errors, on
// which it writes a close frame itself.
func lingers(err error) bool {
	var ce *websocket.CloseError
	var ne net.Error
	return err != nil && !errors.As(err, &ce) && !errors.As(err, &ne) &&
		!errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)
}

// drain reads and discards what the peer still sends, until it closes or
// closeGrace passes. Closing a socket with unread input resets the
// connection, and a reset can destroy the close frame on its way to the
// peer (1009 would arrive as 1006).
func (c *Conn) drain() {
	c.sock.capRead(time.Now().Add(closeGrace))
	bp := readBufPool.Get().(*[]byte)
	b := (*bp)[:cap(*bp)]
	for {
		if _, err := c.sock.Conn.Read(b); err != nil {
			break
		}
	}
	readBufPool.Put(bp)
}

// closeReason describes why a read pump ended, for the log.
func closeReason(err error) string {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return ce.Error()
	case errors.Is(err, websocket.ErrReadLimit):
		return "message too large"
	case errors.As(err, &ne) && ne.Timeout():
		return "read deadline"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection lost"
	case err == nil:
		return "closed"
	}
	return err.Error()
}
