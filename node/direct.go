package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/gsio-net/gsio-relay/message"
)

// Direct routing. Outbound: Direct picks a relay holding the recipient and
// queues the message on that relay's sender; one sender goroutine per
// destination relay (started on demand, tracked in wg, ended by
// DirectIdleTimeout or Close) owns one outbound stream and writes frames.
// Inbound: handleDirect (run by libp2p, tracked in inWG) reads frames,
// validates, and delivers or answers with a NACK through the sender back to
// the origin. Failures reach Receiver.Undeliverable through
// undeliverableLoop, never synchronously from Direct.

// undeliverable is one report for Receiver.Undeliverable.
type undeliverable struct{ sender, messageID, recipient string }

// NACK is the body of a NACK frame: the recipient of a direct message is
// not (or no longer) connected to the relay it was sent to.
type NACK struct {
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

// Direct sends env toward a relay that holds env.Recipient. It reports
// false when no other relay is known to hold it. It never blocks on the
// network; a failure later is reported through Receiver.Undeliverable.
func (n *Node) Direct(env *message.Envelope) bool {
	if env == nil || env.Recipient == "" || n.ctx.Err() != nil {
		return false
	}
	holders := n.dir.holdersOf(env.Recipient)
	if len(holders) == 0 {
		return false
	}
	target := n.pickHolder(holders)
	u := undeliverable{env.Sender, env.ID, env.Recipient}
	if env.ID == "" || len(env.Raw) > n.cfg.MaxMessageSize {
		n.m.directFailed.WithLabelValues("invalid").Inc()
		n.reportUndeliverable(u)
		return true
	}
	n.sentLog.add(sentKey(target, env.Sender, env.ID), time.Now())
	if !n.enqueue(target, outFrame{kind: frameMessage, body: env.Raw, u: u, enq: time.Now()}) {
		n.m.directFailed.WithLabelValues("queue_full").Inc()
		n.tracer.drop("direct_queue_full", 1)
		n.reportUndeliverable(u)
	}
	return true
}

func sentKey(p peer.ID, sender, id string) string {
	return string(p) + "\x00" + EnvelopeID(sender, id)
}

// pickHolder prefers a connected relay, then the one heard from last.
func (n *Node) pickHolder(holders []peer.ID) peer.ID {
	best, bestConn, bestSeen := holders[0], false, time.Time{}
	for _, r := range holders {
		conn := n.host.Network().Connectedness(r) == network.Connected
		seen := n.dir.lastSeen(r)
		if (conn && !bestConn) || (conn == bestConn && seen.After(bestSeen)) {
			best, bestConn, bestSeen = r, conn, seen
		}
	}
	return best
}

// enqueue puts f on the sender of p, starting it if needed. It reports
// false when the queue is full or the node is closing.
func (n *Node) enqueue(p peer.ID, f outFrame) bool {
	n.sendersMu.Lock()
	defer n.sendersMu.Unlock()
	if n.sendersClosed {
		return false
	}
	s := n.senders[p]
	if s == nil {
		s = &sender{peer: p, q: make(chan outFrame, n.cfg.DirectQueueSize)}
		n.senders[p] = s
		n.host.ConnManager().Protect(p, directProtectTag)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.senderLoop(s)
		}()
	}
	select {
	case s.q <- f:
		return true
	default:
		return false
	}
}

func (n *Node) senderLoop(s *sender) {
	var st network.Stream
	defer func() {
		if st != nil {
			_ = st.Reset()
		}
	}()
	idle := time.NewTimer(n.cfg.DirectIdleTimeout)
	defer idle.Stop()
	var batch []outFrame
	for {
		select {
		case <-n.ctx.Done():
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
			st = n.sendBatch(s, st, batch)
			clear(batch)
			idle.Reset(n.cfg.DirectIdleTimeout)
		case <-idle.C:
			n.sendersMu.Lock()
			if len(s.q) > 0 {
				n.sendersMu.Unlock()
				idle.Reset(n.cfg.DirectIdleTimeout)
				continue
			}
			delete(n.senders, s.peer)
			n.host.ConnManager().Unprotect(s.peer, directProtectTag)
			n.sendersMu.Unlock()
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
func (n *Node) sendBatch(s *sender, st network.Stream, batch []outFrame) network.Stream {
	p := s.peer
	buf := make([]byte, 0, 64)
	for _, f := range batch {
		buf = appendFrame(buf, f.kind, f.body)
	}
	reason := ""
	for attempt := 0; attempt < 2; attempt++ {
		if st == nil {
			var err error
			st, reason, err = n.openDirect(p)
			s.setStream(st)
			if err != nil {
				if n.ctx.Err() == nil {
					n.log.Debug("direct stream", "remote", p.String(), "err", err)
				}
				break
			}
		}
		_ = st.SetWriteDeadline(time.Now().Add(n.cfg.DirectWriteTimeout))
		if _, err := st.Write(buf); err != nil {
			n.log.Debug("direct write", "remote", p.String(), "err", err)
			_ = st.Reset()
			st, reason = nil, "write"
			s.setStream(nil)
			continue
		}
		now := time.Now()
		for _, f := range batch {
			if f.kind == frameMessage {
				n.m.directSent.Inc()
				n.m.directLatency.Observe(now.Sub(f.enq).Seconds())
			}
		}
		return st
	}
	if n.ctx.Err() != nil {
		reason = "closed"
	}
	for _, f := range batch {
		if f.kind == frameMessage {
			n.m.directFailed.WithLabelValues(reason).Inc()
			n.sentLog.remove(sentKey(p, f.u.sender, f.u.messageID))
			n.reportUndeliverable(f.u)
		}
	}
	return nil
}

// openDirect connects to p (by its presence addresses when not connected)
// and opens a direct stream. A limited (relayed) connection does not
// count: the federation never runs over one, so the dial is forced direct.
func (n *Node) openDirect(p peer.ID) (network.Stream, string, error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.DirectDialTimeout)
	defer cancel()
	if n.host.Network().Connectedness(p) != network.Connected {
		addrs := n.dir.addrsOf(p)
		if len(addrs) > 0 {
			n.host.Peerstore().AddAddrs(p, addrs, peerstore.TempAddrTTL)
		}
		if err := n.host.Connect(network.WithForceDirectDial(ctx, "gsio direct"), peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
			return nil, "dial", fmt.Errorf("dial %s: %w", p, err)
		}
	}
	st, err := n.host.NewStream(ctx, p, DirectProtocol)
	if err != nil {
		return nil, "stream", fmt.Errorf("open %s stream to %s: %w", DirectProtocol, p, err)
	}
	_ = st.CloseRead() // the remote never writes on our stream
	return st, "", nil
}

// handleDirect reads one inbound direct stream until it ends.
func (n *Node) handleDirect(s network.Stream) {
	if !n.allow.allowed(s.Conn().RemotePeer()) {
		_ = s.Reset() // a relay-service client of a private federation
		return
	}
	n.inMu.Lock()
	if n.inClosed {
		n.inMu.Unlock()
		_ = s.Reset()
		return
	}
	n.inStreams[s] = struct{}{}
	n.inWG.Add(1)
	n.inMu.Unlock()
	defer func() {
		n.inMu.Lock()
		delete(n.inStreams, s)
		n.inMu.Unlock()
		n.inWG.Done()
	}()

	from := s.Conn().RemotePeer()
	r := bufio.NewReader(s)
	for {
		// An idle or stalled stream is dropped: it holds a goroutine and
		// a partly read frame.
		_ = s.SetReadDeadline(time.Now().Add(n.cfg.DirectIdleTimeout))
		kind, body, err := readFrame(r, n.cfg.MaxMessageSize)
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = s.Close()
				return
			}
			if n.ctx.Err() == nil {
				n.log.Debug("direct stream ended", "remote", from.String(), "err", err)
			}
			if errors.Is(err, errFrameTooLarge) {
				n.countValidation("direct", pubsub.ValidationReject, "too_large")
			}
			_ = s.Reset()
			return
		}
		switch kind {
		case frameMessage:
			n.m.directRecv.WithLabelValues("message").Inc()
			n.onDirectMessage(from, body)
		case frameNACK:
			n.m.directRecv.WithLabelValues("nack").Inc()
			n.onNACK(from, body)
		}
	}
}

func (n *Node) onDirectMessage(from peer.ID, body []byte) {
	env, reason := n.checkEnvelope(body, true)
	if reason != "" {
		n.countValidation("direct", pubsub.ValidationReject, reason)
		n.log.Debug("direct message rejected", "remote", from.String(), "reason", reason)
		return
	}
	if r, reason := n.speakFor(n.ctx, from, env.Sender, time.Now().Add(n.cfg.SpeakForWait)); r != pubsub.ValidationAccept {
		n.countValidation("direct", r, reason)
		n.log.Debug("direct message refused", "remote", from.String(), "node", env.Sender, "reason", reason)
		return
	}
	if !n.isLocal(env.Recipient) {
		n.countValidation("direct", pubsub.ValidationIgnore, "recipient_unknown")
		nack, _ := json.Marshal(NACK{Sender: env.Sender, MessageID: env.ID, Recipient: env.Recipient, Reason: message.CodeRecipientUnknown})
		if !n.enqueue(from, outFrame{kind: frameNACK, body: nack, enq: time.Now()}) {
			n.tracer.drop("direct_queue_full", 1)
		}
		return
	}
	if !n.seenDirect.add(EnvelopeID(env.Sender, env.ID), time.Now()) {
		n.countValidation("direct", pubsub.ValidationIgnore, "duplicate")
		return
	}
	n.countValidation("direct", pubsub.ValidationAccept, "")
	n.startMu.Lock()
	r := n.recv
	n.startMu.Unlock()
	if r == nil {
		return
	}
	n.m.delivered.WithLabelValues("direct").Inc()
	r.Deliver(&env)
}

func (n *Node) onNACK(from peer.ID, body []byte) {
	var k NACK
	if err := json.Unmarshal(body, &k); err != nil || k.Sender == "" || k.MessageID == "" {
		n.log.Debug("bad NACK", "remote", from.String())
		return
	}
	key := sentKey(from, k.Sender, k.MessageID)
	if !n.sentLog.has(key, time.Now()) {
		n.log.Debug("NACK for a message not sent there", "remote", from.String(), "node", k.Sender)
		return
	}
	n.sentLog.remove(key)
	n.m.directFailed.WithLabelValues("nack").Inc()
	n.reportUndeliverable(undeliverable{k.Sender, k.MessageID, k.Recipient})
}

func (n *Node) reportUndeliverable(u undeliverable) {
	select {
	case n.undeliv <- u:
	default:
		n.tracer.drop("undeliverable_queue_full", 1)
	}
}

// undeliverableLoop is the one goroutine calling Receiver.Undeliverable.
func (n *Node) undeliverableLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case u := <-n.undeliv:
			n.recv.Undeliverable(u.sender, u.messageID, u.recipient)
		}
	}
}
