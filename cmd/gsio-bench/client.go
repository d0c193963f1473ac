package main

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// protocol is what a client speaks over WebSocket.
type protocol int

const (
	protoGSIO protocol = iota // one GSIO JSON message per text frame (gsio-relay, ref-hub)
	protoNATS                 // the NATS text protocol in binary frames (nats-server)
)

func protoOf(kind string) protocol {
	if kind == kindNATS {
		return protoNATS
	}
	return protoGSIO
}

// t0 is the origin of the generator's clock: timestamps in messages are
// monotonic nanoseconds since t0, so publish and receive times compare
// within this process.
var t0 = time.Now()

func clock() int64 { return int64(time.Since(t0)) }

// conn is one client connection with its reader goroutine. Every
// connection has a receiver, publishers' too: it counts the RelayErrors and
// other messages they get.
type conn struct {
	ws    *wsConn
	proto protocol
	id    string
	rcv   *receiver

	nats  natsParser // reader goroutine only
	t     int64      // receive time of the frame being parsed; reader only
	pongs chan struct{}

	closing atomic.Bool   // close was called: the reader's error is expected
	done    chan struct{} // closed when the reader has returned
	readErr error         // valid after done
}

// dialTimeout bounds one connection's TCP connect and upgrade.
const dialTimeout = 10 * time.Second

// dialClient connects to s as node id (GSIO: bound with ?node_id=) and,
// for NATS, sends CONNECT, a SUB to subject when not empty, and a PING.
func dialClient(s *server, proto protocol, id, subject string) (*conn, error) {
	path := s.wsPath
	if proto == protoGSIO {
		path += "?node_id=" + id
	}
	ws, err := dialWS(s.ws, path, dialTimeout)
	if err != nil {
		return nil, err
	}
	c := &conn{ws: ws, proto: proto, id: id, pongs: make(chan struct{}, 1), done: make(chan struct{})}
	if proto == protoNATS {
		b := []byte("CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,\"name\":\"" + id + "\"}\r\n")
		if subject != "" {
			b = append(b, "SUB "+subject+" 1\r\n"...)
		}
		b = append(b, "PING\r\n"...)
		if err := ws.write(appendFrame(nil, opBinary, b, ws.mask), time.Now().Add(dialTimeout)); err != nil {
			ws.c.Close()
			return nil, err
		}
	}
	return c, nil
}

// start runs the reader goroutine, handing messages to r.
func (c *conn) start(r *receiver) {
	c.rcv = r
	go func() {
		defer close(c.done)
		c.readErr = c.ws.readLoop(clock, c.onData, r.onBatch)
		if !c.closing.Load() {
			r.fail(fmt.Errorf("%s: connection ended: %w", c.id, c.readErr))
		}
	}()
}

func (c *conn) onData(_ byte, payload []byte, t int64) error {
	if c.proto == protoGSIO {
		c.rcv.onMessage(payload, t)
		return nil
	}
	c.t = t
	return c.nats.feed(payload, c)
}

var errPong = errors.New("pong")

// syncPong reads, without a reader goroutine, until the NATS server
// answers the PING sent at connect: it has then processed CONNECT and SUB.
func (c *conn) syncPong(timeout time.Duration) error {
	c.rcv = newReceiver(0, new(atomic.Bool))
	_ = c.ws.c.SetReadDeadline(time.Now().Add(timeout))
	defer c.ws.c.SetReadDeadline(time.Time{})
	err := c.ws.readLoop(clock, func(op byte, payload []byte, t int64) error {
		if err := c.onData(op, payload, t); err != nil {
			return err
		}
		select {
		case <-c.pongs:
			return errPong
		default:
			return nil
		}
	}, nil)
	if err == errPong {
		err = c.rcv.failure()
	}
	return err
}

func (c *conn) natsMsg(payload []byte) { c.rcv.onMessage(payload, c.t) }

func (c *conn) natsPing() {
	if err := c.ws.write(appendFrame(nil, opBinary, []byte("PONG\r\n"), c.ws.mask), time.Now().Add(2*time.Second)); err != nil {
		c.rcv.fail(err)
	}
}

func (c *conn) natsPong() {
	select {
	case c.pongs <- struct{}{}:
	default:
	}
}

func (c *conn) natsErr(line []byte) { c.rcv.fail(fmt.Errorf("nats: %s", line)) }

// close closes the socket; the reader ends.
func (c *conn) close() {
	if !c.closing.Swap(true) {
		c.ws.close()
	}
}

// waitDone waits for the reader to end, at most d.
func (c *conn) waitDone(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stream is what one receiver got from one publisher.
type stream struct {
	count atomic.Int64 // measured messages received, duplicates included
	warm  atomic.Bool  // a warm-up message arrived
	seq   seqSet       // reader only until the reader ends
	_     [40]byte     // keep the counters of two streams off one cache line
}

// receiver is the receive side of one connection. Its reader goroutine owns
// everything but the atomics; the scenario reads the rest after the reader
// has ended.
type receiver struct {
	streams   []*stream    // by publisher index; nil: nothing expected from it
	notify    []*publisher // publishers to wake when their window may open
	hist      histogram
	measuring *atomic.Bool // set while the measured run goes on
	otherWarm int64        // frames that are not benchmark messages, before the measured run
	other     int64        // the same during and after the measured run
	stray     int64        // benchmark messages from an unexpected publisher
	example   string       // the first other frame of the measured run, for the report

	lastRecv atomic.Int64 // clock of the last measured message
	lastT    int64
	touched  bool

	errMu sync.Mutex
	err   error
}

func newReceiver(pubs int, measuring *atomic.Bool) *receiver {
	return &receiver{streams: make([]*stream, pubs), measuring: measuring}
}

// expect makes r a receiver of p's messages.
func (r *receiver) expect(p *publisher) *stream {
	s := new(stream)
	r.streams[p.idx] = s
	r.notify = append(r.notify, p)
	p.streams = append(p.streams, s)
	return s
}

// onMessage handles one received message (a GSIO frame, a NATS payload).
func (r *receiver) onMessage(msg []byte, t int64) {
	f, ok := scanBench(msg)
	if !ok {
		if !r.measuring.Load() {
			r.otherWarm++
			return
		}
		if r.other == 0 {
			r.example = string(msg[:min(len(msg), 200)])
		}
		r.other++
		return
	}
	if f.pub < 0 || f.pub >= int64(len(r.streams)) || r.streams[f.pub] == nil {
		r.stray++
		return
	}
	s := r.streams[f.pub]
	switch f.run {
	case runWarmup:
		if !s.warm.Load() {
			s.warm.Store(true)
		}
	case runMeasured:
		if s.seq.add(f.seq) {
			r.hist.record(t - f.ts)
		}
		s.count.Add(1)
		r.lastT, r.touched = t, true
	}
}

// onBatch runs after the frames of one read: it publishes the receive time
// and wakes publishers waiting for their window.
func (r *receiver) onBatch() {
	if !r.touched {
		return
	}
	r.touched = false
	r.lastRecv.Store(r.lastT)
	for _, p := range r.notify {
		if p.waiting.Load() {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}
}

func (r *receiver) fail(err error) {
	r.errMu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.errMu.Unlock()
}

func (r *receiver) failure() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.err
}

// Runs of a scenario: warm-up messages are only a readiness barrier.
const (
	runWarmup   = 0
	runMeasured = 1
)

// publisher sends benchmark messages on its connection.
type publisher struct {
	idx       int
	c         *conn
	name      string // sender_id
	recipient string // "" for a broadcast
	subject   string // NATS subject
	payload   int
	window    int

	streams []*stream // the receivers expected to get each message

	sent     int64 // measured messages sent
	warmSent int64
	stalled  bool
	err      error

	waiting atomic.Bool
	wake    chan struct{}
	timer   *time.Timer

	msg, nb, buf []byte // scratch
}

func newPublisher(idx int, c *conn, name, recipient, subject string, payload, window int) *publisher {
	return &publisher{idx: idx, c: c, name: name, recipient: recipient, subject: subject,
		payload: payload, window: window, wake: make(chan struct{}, 1)}
}

// maxBatch bounds the messages of one write.
const maxBatch = 64

// send writes k messages of run in one write.
func (p *publisher) send(run int64, k int) error {
	buf, nb := p.buf[:0], p.nb[:0]
	seq := &p.sent
	if run == runWarmup {
		seq = &p.warmSent
	}
	for range k {
		f := benchFields{run: run, pub: int64(p.idx), seq: *seq, ts: clock()}
		p.msg = appendBench(p.msg[:0], p.name, p.recipient, f, p.payload)
		if p.c.proto == protoGSIO {
			buf = appendFrame(buf, opText, p.msg, p.c.ws.mask)
		} else {
			nb = appendPub(nb, p.subject, p.msg)
		}
		*seq++
	}
	if p.c.proto == protoNATS {
		buf = appendFrame(buf, opBinary, nb, p.c.ws.mask)
	}
	p.buf, p.nb = buf, nb
	return p.c.ws.write(buf, time.Now().Add(10*time.Second))
}

// minCount is the fewest measured messages any receiver has got.
func (p *publisher) minCount() int64 {
	m := int64(-1)
	for _, s := range p.streams {
		if n := s.count.Load(); m < 0 || n < m {
			m = n
		}
	}
	return max(m, 0)
}

func (p *publisher) allWarm() bool {
	for _, s := range p.streams {
		if !s.warm.Load() {
			return false
		}
	}
	return true
}

// warmup sends a warm-up message every period until every receiver has
// got one, or until the deadline.
func (p *publisher) warmup(deadline time.Time, period time.Duration) error {
	for !p.allWarm() {
		if time.Now().After(deadline) {
			n := 0
			for _, s := range p.streams {
				if s.warm.Load() {
					n++
				}
			}
			return fmt.Errorf("%s: warm-up reached %d of %d receivers", p.name, n, len(p.streams))
		}
		if err := p.send(runWarmup, 1); err != nil {
			return err
		}
		time.Sleep(period)
	}
	return nil
}

// stallTimeout ends a publisher whose window has not moved for that long
// (messages lost: the window would never open again).
const stallTimeout = 3 * time.Second

// run publishes measured messages until the clock reaches until: as fast
// as the window allows when rate is 0, else paced at rate messages/s.
func (p *publisher) run(until int64, rate float64) {
	p.timer = time.NewTimer(time.Hour)
	defer p.timer.Stop()
	start := clock()
	var interval int64
	if rate > 0 {
		interval = int64(float64(time.Second) / rate)
	}
	lastMin, lastProgress := int64(-1), start
	for {
		now := clock()
		if now >= until {
			return
		}
		k := maxBatch
		var m int64
		if p.window > 0 {
			m = p.minCount()
			if m != lastMin {
				lastMin, lastProgress = m, now
			}
			k = min(k, int(int64(p.window)-(p.sent-m)))
		}
		if interval > 0 {
			due := (now-start)/interval + 1 - p.sent
			if due <= 0 {
				next := start + p.sent*interval
				time.Sleep(time.Duration(min(next, until) - now))
				continue
			}
			k = min(k, int(due))
		}
		if k <= 0 {
			if time.Duration(now-lastProgress) > stallTimeout {
				p.stalled = true
				return
			}
			p.waitWindow(m)
			continue
		}
		if err := p.send(runMeasured, k); err != nil {
			p.err = err
			return
		}
	}
}

// waitWindow blocks until a receiver reports progress or 5 ms pass.
func (p *publisher) waitWindow(m int64) {
	p.waiting.Store(true)
	if p.minCount() == m {
		p.timer.Reset(5 * time.Millisecond)
		select {
		case <-p.wake:
		case <-p.timer.C:
		}
		p.timer.Stop()
	}
	p.waiting.Store(false)
}

// dialAll dials n connections with limited parallelism.
func dialAll(n, parallel int, dial func(i int) (*conn, error)) ([]*conn, error) {
	out := make([]*conn, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(parallel, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				out[i], errs[i] = dial(i)
				if errs[i] != nil {
					next.Store(int64(n)) // stop the others early
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range out {
			if c != nil {
				c.ws.c.Close()
			}
		}
		return nil, err
	}
	return out, nil
}
