package relay

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// Frame routes one text frame of the session's connection: rate limit,
// parse, bind or check the sender, assign a message_id, drop duplicates,
// then deliver locally and hand to the mesh. data is only valid during the
// call.
func (s *Session) Frame(data []byte) {
	r := s.r
	s.in.Add(1)
	defer r.resumeIfBound(s)
	if !r.admit(s, data) {
		return
	}
	env, err := message.Parse(data)
	if err != nil {
		var perr *message.Error
		code, msg := message.CodeInvalidJSON, err.Error()
		if errors.As(err, &perr) {
			code, msg = perr.Code, perr.Msg
		}
		r.metrics.drop(DropInvalid)
		r.sendError(s, s.nodeID, code, msg, env.ID)
		return
	}
	if message.RelayType(env.Type) {
		r.refuse(s, &env, DropInvalid, message.CodeInvalidMessage,
			"message types beginning with \"Relay\" belong to relays")
		return
	}
	if env.Recipient == message.RelayNodeID {
		r.relayRequest(s, &env)
		return
	}
	if !r.admitSender(s, &env) {
		return
	}
	if maxb := r.limits.Load().MaxBroadcastSize; env.Broadcast() && len(data) > maxb {
		// The transport admits frames up to the direct-message size.
		r.refuse(s, &env, DropInvalid, message.CodeTooLarge, fmt.Sprintf(
			"a broadcast may be at most %d bytes; only direct messages may be larger", maxb))
		return
	}
	if env.ID == "" {
		env.SetID(message.NewID())
	}
	if !r.dedup.Add(r.hash(env.Sender, env.ID)) {
		r.metrics.DedupHits.Inc()
		r.log.Debug("duplicate dropped", "node", env.Sender, "id", env.ID)
		return
	}
	if env.Broadcast() {
		// The federation timestamp, set once where the message enters
		// (a client's own top-level "ts" is replaced).
		env.SetTS(r.now().UnixMilli())
	}
	r.metrics.countIn(env.Type, RouteLocal, len(env.Raw))
	// The frame holds the one copy of the message that outlives data (a
	// pooled read buffer): the mesh gets the same bytes.
	f := wsframe.NewText(env.Raw)
	env.Raw = f.Message()
	env.Payload = nil
	if env.Broadcast() {
		r.broadcast(s, &env, f)
	} else {
		r.direct(s, &env, f)
	}
}

// admit applies the per-connection rate limit. A refused message gets one
// RelayError per second; a connection that sends more than its rate in
// refused messages within one second is flooding and is closed with 1008.
func (r *Router) admit(s *Session, data []byte) bool {
	if s.limiter.Allow() {
		return true
	}
	now := time.Now()
	if now.Sub(s.window) >= time.Second {
		s.window, s.refused, s.notified = now, 0, false
	}
	s.refused++
	r.metrics.drop(DropRateLimited)
	if float64(s.refused) > r.limits.Load().RateLimit {
		r.metrics.Errors.WithLabelValues("flooding").Inc()
		r.log.Info("closing flooding connection", "conn", s.conn.ID(), "remote", s.conn.RemoteAddr())
		s.conn.Close(ClosePolicy, "flooding")
		return false
	}
	if !s.notified {
		s.notified = true
		r.sendError(s, s.nodeID, message.CodeRateLimited,
			"over the per-connection message rate; messages are being dropped", refOf(data))
	}
	return false
}

// refOf finds the message_id of a refused frame for the error's ref,
// without failing on bad input.
func refOf(data []byte) string {
	env, _ := message.Parse(data)
	return env.ID
}

// broadcast hands the message to the federation first: when the mesh
// refuses it (publish queue full) nobody gets it, the pair is forgotten and
// the sender is told, so that a retry with the same message_id is a new
// message rather than a silently dropped duplicate.
func (r *Router) broadcast(s *Session, env *message.Envelope, f *wsframe.Frame) {
	if r.mesh != nil {
		if err := r.mesh.Broadcast(env); err != nil {
			r.dedup.Remove(r.hash(env.Sender, env.ID))
			r.metrics.drop(DropPublishFailed)
			r.log.Debug("publish to federation failed", "node", env.Sender, "id", env.ID, "err", err)
			r.sendError(s, s.nodeID, message.CodeRateLimited,
				"the federation is not taking messages now; retry later", env.ID)
			return
		}
		r.metrics.countOut(env.Type, RouteGossip, len(env.Raw), 1)
	}
	r.record(env, f)
	n := r.fanout(f, env.Sender)
	r.metrics.countOut(env.Type, RouteLocal, len(env.Raw), n)
	if env.Type == message.TypeNodeListRequest {
		r.answerNodeList(s, env)
	}
}

func (r *Router) direct(s *Session, env *message.Envelope, f *wsframe.Frame) {
	if code, held := r.queueBehind(env, f); held {
		if code != "" {
			r.notDelivered(s, env.Sender, env.ID, env.Recipient, code)
		}
		return
	}
	if to := r.local(env.Recipient); to != nil {
		if r.send(to, f) {
			r.metrics.countOut(env.Type, RouteLocal, len(env.Raw), 1)
		}
		return
	}
	if r.toMesh(env, f, r.now()) {
		return
	}
	code := r.keep(env, f)
	if code == "" {
		return // kept: no error, delivered when it binds
	}
	if code == message.CodeRecipientUnknown {
		r.metrics.drop(DropRecipientUnknown)
	}
	r.notDelivered(s, env.Sender, env.ID, env.Recipient, code)
}

// toMesh hands a direct message for a recipient held by another relay to
// the mesh. With mailboxes on it is remembered in flight first: a NACK or
// a failed write, which may come back at once, then puts it in the
// recipient's mailbox at its place at (inflight.go). It reports false
// when no relay holds the recipient.
func (r *Router) toMesh(env *message.Envelope, f *wsframe.Frame, at time.Time) bool {
	if r.mesh == nil {
		return false
	}
	now := r.now()
	track := r.limits.Load().MailboxMax > 0
	if track {
		r.inflight.add(env, f, at, now)
	}
	if !r.mesh.Direct(env) {
		if track {
			r.inflight.take(env.Sender, env.ID, now)
		}
		return false
	}
	r.sawNode(env.Recipient, now) // held somewhere: it may get a mailbox later
	r.metrics.countOut(env.Type, RouteDirect, len(env.Raw), 1)
	return true
}

// notDelivered tells s, the session of sender (nil: gone), that its
// direct message id for recipient went nowhere: code is
// message.CodeRecipientUnknown or CodeMailboxFull. The pair is forgotten
// by dedup, so that a retry once the recipient is there is delivered.
func (r *Router) notDelivered(s *Session, sender, id, recipient, code string) {
	r.dedup.Remove(r.hash(sender, id))
	text := "no node " + quote(recipient) + " is connected to the federation"
	if code == CodeMailboxFull {
		r.metrics.drop(DropMailboxFull)
		text = "the mailbox of " + quote(recipient) + " is full; retry later"
	}
	if s != nil {
		r.sendError(s, sender, code, text, id)
	}
}

// quote bounds an id echoed in an error message.
func quote(id string) string {
	if len(id) > 64 {
		id = id[:64] + "…"
	}
	return `"` + id + `"`
}

// nodeListPageBytes bounds the ids of one NodeListResponse page.
const nodeListPageBytes = 64 << 10

// answerNodeList sends the federation's node list, in pages of at most
// 64 KiB of ids and NodeListMaxBytes in all (so that one answer never
// overflows a send queue), at most 20 times a second per connection.
func (r *Router) answerNodeList(s *Session, env *message.Envelope) {
	if !r.allowAnswer(s, env, &s.nodeLists, 20, 20) {
		return
	}
	for _, b := range message.NodeListPages(r.cfg.RelayID, env.Sender, r.Nodes(), nodeListPageBytes, r.cfg.NodeListMaxBytes) {
		if !r.send(s, wsframe.NewText(b)) {
			return
		}
		r.metrics.countOut(message.TypeNodeListResponse, RouteLocal, len(b), 1)
	}
}

// allowAnswer takes a token of *lim, s's limiter of one kind of request
// the relay answers itself (made on first use: perSec, burst); without
// one the request is refused rate_limited. Read pump only.
func (r *Router) allowAnswer(s *Session, env *message.Envelope, lim **rate.Limiter, perSec float64, burst int) bool {
	if *lim == nil {
		*lim = rate.NewLimiter(rate.Limit(perSec), burst)
	}
	if (*lim).AllowN(r.now(), 1) {
		return true
	}
	r.refuse(s, env, DropRateLimited, message.CodeRateLimited,
		fmt.Sprintf("%s is answered at most %g times a second", env.Type, perSec))
	return false
}
