package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gsio-net/gsio-relay/message"
)

// Node tokens (SPEC section 6): sent as ?jwt= at connect, renewed on a live
// connection with NodeAuth {"jwt"} before they expire. The client reads a
// token's exp without checking its signature: that is the relay's job, the
// client only needs to know when to fetch the next one.

// freshToken makes sure the token for the next connection is not about to
// expire: it asks the token source when there is one, and otherwise stops
// the client with ErrTokenExpired for an expired token.
func (c *Client) freshToken(ctx context.Context, u string) error {
	exp := tokenExpiry(c.token)
	stale := c.token == "" || (!exp.IsZero() && time.Until(exp) < c.cfg.TokenRenewBefore)
	switch {
	case c.opts.tokens != nil && stale:
		t, err := c.opts.tokens(ctx)
		if err != nil {
			return fmt.Errorf("token source: %w", err)
		}
		if t == "" {
			return fmt.Errorf("token source: empty token")
		}
		c.token = t
	case c.token != "" && !exp.IsZero() && !time.Now().Before(exp):
		return &AuthError{URL: u, Code: closeTokenExpired, Reason: "token expired before connecting", err: ErrTokenExpired}
	}
	return nil
}

// renewTimer fires when the current token should be renewed; it never
// fires without a token source or an exp.
func (c *Client) renewTimer() *time.Timer {
	exp := tokenExpiry(c.token)
	if c.opts.tokens == nil || exp.IsZero() {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return t
	}
	return time.NewTimer(max(time.Until(exp)-c.cfg.TokenRenewBefore, time.Second))
}

// renew fetches a fresh token and sends it as NodeAuth on s. A failure is
// logged; the next timer tries again, and a close 4002 reconnects.
func (c *Client) renew(s *session) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	t, err := c.opts.tokens(ctx)
	if err != nil || t == "" {
		c.log.Warn("token renewal failed", "node", s.nodeID, "err", err)
		return
	}
	p, _ := json.Marshal(struct {
		JWT string `json:"jwt"`
	}{t})
	if !s.post(message.Build(TypeNodeAuth, message.NewID(), s.nodeID, RelayID, p)) {
		c.log.Warn("token renewal not sent: send queue full", "node", s.nodeID)
		return
	}
	c.token = t
	c.log.Debug("token renewed", "node", s.nodeID, "exp", tokenExpiry(t))
}

// tokenExpiry is the exp claim of a JWT, unverified; zero when there is
// none or the token cannot be read.
func tokenExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp == nil || *claims.Exp <= 0 || *claims.Exp > math.MaxInt64/1e3 {
		return time.Time{}
	}
	return time.UnixMilli(int64(*claims.Exp * 1e3))
}
