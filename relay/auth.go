package relay

import (
	"encoding/json"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// Who may bind a node id (SPEC section 6, docs/PROTOCOL.md "Node
// identity"): the id "relay" never; a key id only with proof of its key
// (challenge and answer) or a token; any id with a valid token; other ids
// by their first message, unless NodeAuth is AuthRequired. A connection
// that has not bound within BindTimeout is closed with 4001.

// Close codes of node authentication.
const (
	CloseAuthFailed   = 4001 // bad proof or token, reserved id, no bind in time
	CloseTokenExpired = 4002 // the token's exp passed without a fresh NodeAuth
)

// Node authentication policies (--node-auth).
const (
	AuthOpen     = "open"     // key ids need their proof; other ids bind as they come
	AuthRequired = "required" // every connection proves its id by key or token
)

// authState is a session's progress towards a bound node id. Read pump only.
type authState struct {
	challenge *nodeauth.Challenge // the open challenge, for keyID
	keyID     string              // the key id of ?node_id= awaiting its answer
	proof     *nodeauth.Proof     // the key id's proof for this relay, once bound
	bindTimer *time.Timer         // closes the connection if nothing binds in time
	expTimer  *time.Timer         // closes the connection when the token expires
}

// openAuth runs at connect: a token (?jwt=) binds its sub, a key id
// (?node_id=) gets a challenge, another id binds at once unless tokens are
// required. It reports false when the connection is being closed.
func (r *Router) openAuth(s *Session) bool {
	id, token := s.conn.Query("node_id"), s.conn.Query("jwt")
	if id == message.RelayNodeID {
		s.fail(CloseAuthFailed, `the node id "relay" is reserved`)
		return false
	}
	if token != "" {
		return r.bindToken(s, id, token)
	}
	switch {
	case id == "":
	case nodeauth.IsKeyID(id):
		if r.relayPeerID == "" {
			s.fail(CloseAuthFailed, "this relay has no identity to be challenged with")
			return false
		}
		c := nodeauth.NewChallenge(r.relayPeerID)
		s.auth.challenge, s.auth.keyID = &c, id
		p, _ := json.Marshal(c)
		r.sendRelay(s, message.TypeRelayChallenge, id, p)
	case r.cfg.NodeAuth == AuthRequired:
		// The id must be proven by a token in the first message.
	default:
		if !r.bind(s, id) {
			return false
		}
	}
	if s.nodeID == "" {
		s.auth.bindTimer = time.AfterFunc(r.cfg.BindTimeout, s.bindTimedOut)
	}
	return true
}

// bindTimedOut closes a connection that has not bound a node id.
func (s *Session) bindTimedOut() {
	s.r.mu.RLock()
	bound := s.nodeID != ""
	s.r.mu.RUnlock()
	if !bound {
		s.fail(CloseAuthFailed, "no node id bound in time")
	}
}

// fail closes the connection; the counts say why relays close nodes.
func (s *Session) fail(code int, reason string) {
	s.r.metrics.Errors.WithLabelValues("auth_failed").Inc()
	s.r.log.Info("closing connection", "conn", s.conn.ID(), "remote", s.conn.RemoteAddr(), "code", code, "reason", reason)
	s.conn.Close(code, reason)
}

// stopAuth stops the session's timers (Closed).
func (s *Session) stopAuth() {
	if t := s.auth.bindTimer; t != nil {
		t.Stop()
	}
	if t := s.auth.expTimer; t != nil {
		t.Stop()
	}
}

// admitSender decides what a frame of an unbound or bound connection may
// do before it is routed. It binds the sender of an open connection's
// first message, and reports false when the frame goes nowhere.
func (r *Router) admitSender(s *Session, env *message.Envelope) bool {
	if s.nodeID != "" {
		if env.Sender == s.nodeID {
			return true
		}
		if nodeauth.IsKeyID(env.Sender) {
			r.refuse(s, env, DropSenderMismatch, message.CodeAuthRequired,
				"sender_id is a key id this connection has not proven")
			return false
		}
		r.refuse(s, env, DropSenderMismatch, message.CodeSenderMismatch,
			"sender_id differs from the node id bound to this connection")
		return false
	}
	switch {
	case s.auth.challenge != nil:
		r.refuse(s, env, DropUnauthenticated, message.CodeAuthRequired,
			"answer the RelayChallenge with NodeAuth first")
		return false
	case r.cfg.NodeAuth == AuthRequired:
		s.fail(CloseAuthFailed, "authentication required: NodeAuth with a token, or a key id")
		return false
	case env.Sender == message.RelayNodeID:
		s.fail(CloseAuthFailed, `the node id "relay" is reserved`)
		return false
	case nodeauth.IsKeyID(env.Sender):
		r.refuse(s, env, DropUnauthenticated, message.CodeAuthRequired,
			"a key id binds only with proof: connect with ?node_id=<key id> and answer the challenge")
		return false
	}
	return r.bind(s, env.Sender)
}

// refuse drops a frame and tells its sender why.
func (r *Router) refuse(s *Session, env *message.Envelope, drop, code, msg string) {
	r.metrics.drop(drop)
	r.sendError(s, s.nodeID, code, msg, env.ID)
}

// relayRequest handles a message addressed to the relay itself
// (recipient_id "relay"): NodeAuth now; nothing is routed to nodes.
func (r *Router) relayRequest(s *Session, env *message.Envelope) {
	switch env.Type {
	case message.TypeNodeAuth:
		r.nodeAuth(s, env)
	case TypeHistoryRequest:
		switch {
		case s.nodeID == "":
			r.refuse(s, env, DropUnauthenticated, message.CodeAuthRequired, "bind a node id before HistoryRequest")
		case env.Sender != s.nodeID:
			r.refuse(s, env, DropSenderMismatch, message.CodeSenderMismatch,
				"sender_id differs from the node id bound to this connection")
		default:
			r.answerHistory(s, env)
		}
	default:
		r.refuse(s, env, DropInvalid, message.CodeInvalidMessage,
			"the relay does not answer "+quote(env.Type))
	}
}

// nodeAuth checks a NodeAuth: a token binds (or extends) its sub, a key
// proof answers the open challenge. Any failure closes with 4001.
func (r *Router) nodeAuth(s *Session, env *message.Envelope) {
	var p nodeauth.AuthPayload
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		s.fail(CloseAuthFailed, "authentication failed: NodeAuth payload is not an object")
		return
	}
	if p.JWT != "" {
		if env.Sender == message.RelayNodeID {
			s.fail(CloseAuthFailed, `the node id "relay" is reserved`)
			return
		}
		r.bindToken(s, env.Sender, p.JWT)
		return
	}
	c := s.auth.challenge
	if c == nil || env.Sender != s.auth.keyID {
		s.fail(CloseAuthFailed, "authentication failed: no challenge open for "+quote(env.Sender))
		return
	}
	proof := p.Proof()
	if err := c.Verify(s.auth.keyID, proof, r.now()); err != nil {
		r.log.Debug("key proof refused", "node", s.auth.keyID, "conn", s.conn.ID(), "err", err)
		s.fail(CloseAuthFailed, "authentication failed")
		return
	}
	if old := r.local(s.auth.keyID); old != nil && old.auth.proofTS() > proof.TS {
		s.fail(CloseAuthFailed, "authentication failed: a newer proof holds this key id")
		return
	}
	s.auth.challenge = nil
	s.auth.proof = &proof
	if r.bind(s, s.auth.keyID) {
		r.authOK(s)
	}
}

// proofTS is the ts of the bound key proof, or 0.
func (a *authState) proofTS() int64 {
	if a.proof == nil {
		return 0
	}
	return a.proof.TS
}

// bindToken verifies a node token and binds its sub (which must be want
// when want is set), or extends the session of the same id. The session
// is closed with 4002 when the token expires.
func (r *Router) bindToken(s *Session, want, token string) bool {
	if r.jwt == nil {
		s.fail(CloseAuthFailed, "authentication failed: this relay accepts no node tokens")
		return false
	}
	claims, err := r.jwt.Verify(token, r.now())
	if err != nil {
		// An invalid token, an expired one included, is a failed
		// authentication (4001); 4002 is for a bound token running out.
		r.log.Debug("node token refused", "conn", s.conn.ID(), "err", err)
		s.fail(CloseAuthFailed, "authentication failed")
		return false
	}
	switch {
	case claims.Sub == message.RelayNodeID:
		s.fail(CloseAuthFailed, `the node id "relay" is reserved`)
		return false
	case want != "" && claims.Sub != want:
		s.fail(CloseAuthFailed, "authentication failed: the token is for another node id")
		return false
	case s.nodeID != "" && claims.Sub != s.nodeID:
		s.fail(CloseAuthFailed, "authentication failed: the token is for another node id")
		return false
	}
	if s.auth.expTimer != nil {
		s.auth.expTimer.Stop()
	}
	s.auth.expTimer = time.AfterFunc(claims.Exp.Sub(r.now()), func() {
		s.conn.Close(CloseTokenExpired, "token expired")
	})
	s.auth.challenge = nil
	if s.nodeID == "" && !r.bind(s, claims.Sub) {
		return false
	}
	r.authOK(s)
	return true
}

// authOK tells the client its id is bound.
func (r *Router) authOK(s *Session) {
	p := make([]byte, 0, 16+len(s.nodeID))
	p = append(p, `{"node_id":`...)
	p = message.AppendString(p, s.nodeID)
	p = append(p, '}')
	r.sendRelay(s, message.TypeRelayAuthOk, s.nodeID, p)
}

// sendRelay queues a message from the relay itself to the session.
// It runs on s's read pump, in answer to s itself, so it is never held
// behind a resume: RelayAuthOk comes before the replay, RelayHistoryEnd
// right after it, then the live frames held meanwhile.
func (r *Router) sendRelay(s *Session, typ, to string, payload []byte) {
	b := message.Build(typ, message.NewID(), r.cfg.RelayID, to, payload)
	if err := s.conn.Send(wsframe.NewText(b)); err != nil {
		r.metrics.drop(DropSendRefused)
		return
	}
	s.out.Add(1)
	r.metrics.countOut(typ, RouteLocal, len(b), 1)
}
