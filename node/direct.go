package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/gsio-net/gsio-relay/internal/ttlset"
	"github.com/gsio-net/gsio-relay/message"
)

// DirectProtocol is the stream protocol for relay-to-relay direct messages
// and their NACKs (docs/PROTOCOL.md "Direct streams").
const DirectProtocol = "/gsio/direct/1.0.0"

// direct owns direct routing over DirectProtocol. Outbound: send picks a
// relay holding the recipient and queues the message on that relay's
// sender; one senderLoop per destination relay (started on demand, ended
// after Direct.IdleTimeout or by close) owns one outbound stream and
// writes frames. Inbound: handleStream (run by libp2p, tracked by inWG)
// reads frames, validates, and delivers or answers with a NACK through the
// sender back to the origin. Failures reach Receiver.Undeliverable through
// undeliverableLoop, never synchronously from send.
type direct struct {
	core
	routines
	dir     *directory
	isLocal func(node string) bool
	speak   *speakFor
	allow   *allowList
	recv    atomic.Pointer[Receiver] // set by start; nil before
	undeliv chan undeliverable
	seen    *ttlset.Set[string] // envelope ids delivered (dedup)
	sent    *ttlset.Set[string] // (relay, envelope id) sent, that a NACK must match

	sendersMu     sync.Mutex
	senders       map[peer.ID]*sender
	sendersClosed bool // no sender starts after close began

	inMu      sync.Mutex
	inClosed  bool
	inStreams map[network.Stream]struct{}
	inWG      sync.WaitGroup
}

// directSeenSize bounds each of direct's two seen sets.
const directSeenSize = 1 << 17

func newDirect(parent context.Context, c core, dir *directory, isLocal func(string) bool, speak *speakFor, allow *allowList) *direct {
	d := &direct{
		core:      c,
		routines:  newRoutines(parent),
		dir:       dir,
		isLocal:   isLocal,
		speak:     speak,
		allow:     allow,
		undeliv:   make(chan undeliverable, 4096),
		seen:      ttlset.New[string](directSeenSize, c.cfg.SeenMessagesTTL, nil),
		sent:      ttlset.New[string](directSeenSize, c.cfg.SeenMessagesTTL, nil),
		senders:   map[peer.ID]*sender{},
		inStreams: map[network.Stream]struct{}{},
	}
	c.host.SetStreamHandler(DirectProtocol, d.handleStream)
	return d
}

// start sets the Receiver and starts undeliverableLoop.
func (d *direct) start(r Receiver) {
	d.recv.Store(&r)
	d.spawn(d.undeliverableLoop)
}

// close ends the senders (resetting a write in progress) and
// undeliverableLoop, then resets the inbound streams and waits for their
// handlers; an inbound stream that arrives later is reset at once.
func (d *direct) close() {
	d.cancel()
	d.sendersMu.Lock()
	d.sendersClosed = true
	for _, s := range d.senders {
		s.reset()
	}
	d.sendersMu.Unlock()
	d.wg.Wait()

	d.inMu.Lock()
	d.inClosed = true
	for s := range d.inStreams {
		_ = s.Reset()
	}
	d.inMu.Unlock()
	d.inWG.Wait()
}

// undeliverable is one report for Receiver.Undeliverable.
type undeliverable struct{ sender, messageID, recipient string }

// nackBody is the body of a NACK frame: the recipient of a direct message is
// not (or no longer) connected to the relay it was sent to.
type nackBody struct {
	Sender    string `json:"sender_id"`
	MessageID string `json:"message_id"`
	Recipient string `json:"recipient_id"`
	Reason    string `json:"reason,omitempty"` // "recipient_unknown"
}

type outFrame struct {
	kind byte
	body []byte
	u    undeliverable // kind frameMessage: what to report on failure
	enq  time.Time
}

// sender owns the outbound direct stream to one relay. Its goroutine is
// the only writer; mu guards st only so that Close can reset it.
type sender struct {
	peer peer.ID
	q    chan outFrame

	mu sync.Mutex
	st network.Stream
}

func (s *sender) setStream(st network.Stream) {
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
}

func (s *sender) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		_ = s.st.Reset()
	}
}

const (
	directProtectTag = "gsio-direct"
	maxBatchBytes    = 256 << 10
)

// send queues env toward a relay that holds env.Recipient (Node.Direct).
func (d *direct) send(env *message.Envelope) bool {
	if env == nil || env.Recipient == "" || d.ctx.Err() != nil {
		return false
	}
	holders := d.dir.holdersOf(env.Recipient)
	if len(holders) == 0 {
		return false
	}
	target := d.pickHolder(holders)
	u := undeliverable{env.Sender, env.ID, env.Recipient}
	if env.ID == "" || len(env.Raw) > d.cfg.MaxDirectSize {
		d.m.directFailed.WithLabelValues("invalid").Inc()
		d.reportUndeliverable(u)
		return true
	}
	d.sent.Add(sentKey(target, env.Sender, env.ID))
	if !d.enqueue(target, outFrame{kind: frameMessage, body: env.Raw, u: u, enq: time.Now()}) {
		d.m.directFailed.WithLabelValues("queue_full").Inc()
		d.tracer.drop("direct_queue_full", 1)
		d.reportUndeliverable(u)
	}
	return true
}

func sentKey(p peer.ID, sender, id string) string {
	return string(p) + "\x00" + envelopeID(sender, id)
}

// pickHolder prefers a connected relay, then the one heard from last.
func (d *direct) pickHolder(holders []peer.ID) peer.ID {
	best, bestConn, bestSeen := holders[0], false, time.Time{}
	for _, r := range holders {
		conn := d.host.Network().Connectedness(r) == network.Connected
		seen := d.dir.lastSeen(r)
		if (conn && !bestConn) || (conn == bestConn && seen.After(bestSeen)) {
			best, bestConn, bestSeen = r, conn, seen
		}
	}
	return best
}

// enqueue puts f on the sender of p, starting it if needed. It reports
// false when the queue is full or the node is closing.
func (d *direct) enqueue(p peer.ID, f outFrame) bool {
	d.sendersMu.Lock()
	defer d.sendersMu.Unlock()
	if d.sendersClosed {
		return false
	}
	s := d.senders[p]
	if s == nil {
		s = &sender{peer: p, q: make(chan outFrame, d.cfg.Direct.QueueSize)}
		d.senders[p] = s
		d.host.ConnManager().Protect(p, directProtectTag)
		d.spawn(func() { d.senderLoop(s) })
	}
	select {
	case s.q <- f:
		return true
	default:
		return false
	}
}

func (d *direct) senderLoop(s *sender) {
	var st network.Stream
	defer func() {
		if st != nil {
			_ = st.Reset()
		}
	}()
	idle := time.NewTimer(d.cfg.Direct.IdleTimeout)
	defer idle.Stop()
	var batch []outFrame
	for {
		select {
		case <-d.ctx.Done():
			return
		case f := <-s.q:
			batch = append(batch[:0], f)
			size := len(f.body)
		drain:
			for size < maxBatchBytes {
				select {
				case f := <-s.q:
					batch = append(batch, f)
					size += len(f.body)
				default:
					break drain
				}
			}
			st = d.sendBatch(s, st, batch)
			clear(batch)
			idle.Reset(d.cfg.Direct.IdleTimeout)
		case <-idle.C:
			d.sendersMu.Lock()
			if len(s.q) > 0 {
				d.sendersMu.Unlock()
				idle.Reset(d.cfg.Direct.IdleTimeout)
				continue
			}
			delete(d.senders, s.peer)
			d.host.ConnManager().Unprotect(s.peer, directProtectTag)
			d.sendersMu.Unlock()
			if st != nil {
				_ = st.Close()
				st = nil
			}
			return
		}
	}
}

// sendBatch writes frames on st (opening a stream if st is nil), retrying
// once on a fresh stream. It returns the stream to keep (nil after a
// failure).
func (d *direct) sendBatch(s *sender, st network.Stream, batch []outFrame) network.Stream {
	p := s.peer
	buf := make([]byte, 0, 64)
	for _, f := range batch {
		buf = appendFrame(buf, f.kind, f.body)
	}
	reason := ""
	for attempt := 0; attempt < 2; attempt++ {
		if st == nil {
			var err error
			st, reason, err = d.openDirect(p)
			s.setStream(st)
			if err != nil {
				if d.ctx.Err() == nil {
					d.log.Debug("direct stream", "remote", p.String(), "err", err)
				}
				break
			}
		}
		_ = st.SetWriteDeadline(time.Now().Add(d.cfg.Direct.WriteTimeout))
		if _, err := st.Write(buf); err != nil {
			d.log.Debug("direct write", "remote", p.String(), "err", err)
			_ = st.Reset()
			st, reason = nil, "write"
			s.setStream(nil)
			continue
		}
		now := time.Now()
		for _, f := range batch {
			if f.kind == frameMessage {
				d.m.directSent.Inc()
				d.m.directLatency.Observe(now.Sub(f.enq).Seconds())
			}
		}
		return st
	}
	if d.ctx.Err() != nil {
		reason = "closed"
	}
	for _, f := range batch {
		if f.kind == frameMessage {
			d.m.directFailed.WithLabelValues(reason).Inc()
			d.sent.Remove(sentKey(p, f.u.sender, f.u.messageID))
			d.reportUndeliverable(f.u)
		}
	}
	return nil
}

// openDirect connects to p (by its presence addresses when not connected)
// and opens a direct stream. A limited (relayed) connection does not
// count: the federation never runs over one, so the dial is forced direct.
func (d *direct) openDirect(p peer.ID) (network.Stream, string, error) {
	ctx, cancel := context.WithTimeout(d.ctx, d.cfg.Direct.DialTimeout)
	defer cancel()
	if _, err := connectRelay(ctx, d.host, d.dir, p, "gsio direct"); err != nil {
		return nil, "dial", err
	}
	st, err := d.host.NewStream(ctx, p, DirectProtocol)
	if err != nil {
		return nil, "stream", fmt.Errorf("open %s stream to %s: %w", DirectProtocol, p, err)
	}
	_ = st.CloseRead() // the remote never writes on our stream
	return st, "", nil
}

// connectRelay connects to relay p, by the addresses of its presence when
// it is not connected, directly (never over a limited connection: the
// federation does not run over one). It reports whether it dialled.
func connectRelay(ctx context.Context, h host.Host, dir *directory, p peer.ID, reason string) (bool, error) {
	if h.Network().Connectedness(p) == network.Connected {
		return false, nil
	}
	addrs := dir.addrsOf(p)
	if len(addrs) > 0 {
		h.Peerstore().AddAddrs(p, addrs, peerstore.TempAddrTTL)
	}
	if err := h.Connect(network.WithForceDirectDial(ctx, reason), peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
		return true, fmt.Errorf("dial %s: %w", p, err)
	}
	return true, nil
}

// handleStream reads one inbound direct stream until it ends.
func (d *direct) handleStream(s network.Stream) {
	if !d.allow.allowed(s.Conn().RemotePeer()) {
		_ = s.Reset() // a relay-service client of a private federation
		return
	}
	d.inMu.Lock()
	if d.inClosed {
		d.inMu.Unlock()
		_ = s.Reset()
		return
	}
	d.inStreams[s] = struct{}{}
	d.inWG.Add(1)
	d.inMu.Unlock()
	defer func() {
		d.inMu.Lock()
		delete(d.inStreams, s)
		d.inMu.Unlock()
		d.inWG.Done()
	}()

	from := s.Conn().RemotePeer()
	r := bufio.NewReader(s)
	for {
		// An idle or stalled stream is dropped: it holds a goroutine and
		// a partly read frame.
		_ = s.SetReadDeadline(time.Now().Add(d.cfg.Direct.IdleTimeout))
		kind, body, err := readFrame(r, d.cfg.MaxDirectSize)
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = s.Close()
				return
			}
			if d.ctx.Err() == nil {
				d.log.Debug("direct stream ended", "remote", from.String(), "err", err)
			}
			if errors.Is(err, errFrameTooLarge) {
				d.m.validated("direct", pubsub.ValidationReject, "too_large")
			}
			_ = s.Reset()
			return
		}
		switch kind {
		case frameMessage:
			d.m.directRecv.WithLabelValues("message").Inc()
			d.onMessage(from, body)
		case frameNACK:
			d.m.directRecv.WithLabelValues("nack").Inc()
			d.onNACK(from, body)
		}
	}
}

func (d *direct) onMessage(from peer.ID, body []byte) {
	env, reason := checkEnvelope(body, d.cfg.MaxDirectSize, true)
	if reason != "" {
		d.m.validated("direct", pubsub.ValidationReject, reason)
		d.log.Debug("direct message rejected", "remote", from.String(), "reason", reason)
		return
	}
	if r, reason := d.speak.check(d.ctx, from, from, env.Sender, time.Now().Add(d.cfg.Presence.SpeakForWait)); r != pubsub.ValidationAccept {
		d.m.validated("direct", r, reason)
		d.log.Debug("direct message refused", "remote", from.String(), "node", env.Sender, "reason", reason)
		return
	}
	if !d.isLocal(env.Recipient) {
		d.m.validated("direct", pubsub.ValidationIgnore, "recipient_unknown")
		if d.dir.lastSeen(from).IsZero() {
			// Not a relay of the directory: it can route nothing, and a
			// NACK would cost a sender (goroutine, queue, protected
			// connection, dial back) per throwaway peer.
			d.tracer.drop("nack_not_relay", 1)
			return
		}
		nack, _ := json.Marshal(nackBody{Sender: env.Sender, MessageID: env.ID, Recipient: env.Recipient, Reason: message.CodeRecipientUnknown})
		if !d.enqueue(from, outFrame{kind: frameNACK, body: nack, enq: time.Now()}) {
			d.tracer.drop("direct_queue_full", 1)
		}
		return
	}
	if !d.seen.Add(envelopeID(env.Sender, env.ID)) {
		d.m.validated("direct", pubsub.ValidationIgnore, "duplicate")
		return
	}
	d.m.validated("direct", pubsub.ValidationAccept, "")
	r := d.recv.Load()
	if r == nil {
		return
	}
	d.m.delivered.WithLabelValues("direct").Inc()
	(*r).Deliver(&env)
}

func (d *direct) onNACK(from peer.ID, body []byte) {
	var k nackBody
	if err := json.Unmarshal(body, &k); err != nil || k.Sender == "" || k.MessageID == "" {
		d.log.Debug("bad NACK", "remote", from.String())
		return
	}
	key := sentKey(from, k.Sender, k.MessageID)
	if !d.sent.Has(key) {
		d.log.Debug("NACK for a message not sent there", "remote", from.String(), "node", k.Sender)
		return
	}
	d.sent.Remove(key)
	d.m.directFailed.WithLabelValues("nack").Inc()
	d.reportUndeliverable(undeliverable{k.Sender, k.MessageID, k.Recipient})
}

func (d *direct) reportUndeliverable(u undeliverable) {
	select {
	case d.undeliv <- u:
	default:
		d.tracer.drop("undeliverable_queue_full", 1)
	}
}

// undeliverableLoop is the one goroutine calling Receiver.Undeliverable.
func (d *direct) undeliverableLoop() {
	for {
		select {
		case <-d.ctx.Done():
			return
		case u := <-d.undeliv:
			(*d.recv.Load()).Undeliverable(u.sender, u.messageID, u.recipient)
		}
	}
}
