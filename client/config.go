package client

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// MaxURLs bounds the relay URL list, including URLs learned from
// RelayDraining messages.
const MaxURLs = 64

// Config holds what an operator of a gsio-node chooses. Start from
// DefaultConfig: Dial refuses zero durations and sizes.
type Config struct {
	// URLs are the relays' WebSocket URLs (ws:// or wss://), tried in
	// order with failover. Required; URLs from RelayDraining are added.
	URLs []string

	// NodeID is the node id to bind. With NodeKey it may be empty and
	// becomes the key id of NodeKey; with a token it may be empty and
	// becomes the token's sub. Default "".
	NodeID string
	// NodeKey, when set, proves NodeID as a key id by challenge and answer
	// (SPEC section 6). Default none.
	NodeKey ed25519.PrivateKey
	// Token is a node JWT sent as ?jwt= at connect. Default "". See also
	// WithTokenSource.
	Token string
	// TokenRenewBefore: with a token source, a fresh token is fetched and
	// sent as NodeAuth this long before the current one expires. Default 30s.
	TokenRenewBefore time.Duration
	// AuthToken is the relays' --auth-token, sent as "Authorization:
	// Bearer". Default "".
	AuthToken string

	// Resume asks each reconnection to replay what was missed: ?since_ms=
	// the last time this client heard from the federation minus
	// ResumeMargin (SPEC section 7). Default false.
	Resume bool
	// Since, with Resume, is where the first connection's replay starts
	// (a node restarting from saved state). Default zero: live only.
	Since time.Time
	// ResumeMargin is subtracted from the last time heard. It covers the
	// clock skew between this node and the relays and the spread of gossip
	// delays; the duplicates it brings are dropped. Default 30s.
	ResumeMargin time.Duration
	// FailoverMargin replaces ResumeMargin when the client reconnects to
	// another relay than the one it last heard from. The relay it left
	// may have been cut off from part of the federation (a partition)
	// for a while before it went away; the broadcasts of the other side
	// from that time are older than "last heard - ResumeMargin" at the
	// new relay, and reconciliation later gives them to the old relay,
	// not to this client. A partition longer than FailoverMargin can
	// still cost a client that fails over across it what the other side
	// said before it; the duplicates it brings are dropped (DedupTTL must
	// be longer). Default 5m.
	FailoverMargin time.Duration

	// BackoffMin and BackoffMax bound the delay between connection
	// attempts: it doubles from BackoffMin after each consecutive failure
	// up to BackoffMax, each delay drawn uniformly from [d/2, d].
	// Defaults 250ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// HandshakeTimeout bounds the WebSocket upgrade and authentication of
	// one connection. Default 10s.
	HandshakeTimeout time.Duration
	// PingInterval is how often the client pings its relay. Default 20s.
	PingInterval time.Duration
	// ReadTimeout: a connection that receives nothing (frames, pings or
	// pongs) this long is dropped. Default 60s, more than PingInterval.
	ReadTimeout time.Duration
	// WriteTimeout bounds one write. Default 10s.
	WriteTimeout time.Duration

	// Buffer is the capacity of Messages(). When it is full the client
	// drops its connection and reconnects once the reader has caught up
	// (see the package doc). Default 1024.
	Buffer int
	// MaxMessageSize is the largest frame accepted from a relay. Default
	// 16 MiB (the SPEC's --max-direct-size).
	MaxMessageSize int64
	// DedupSize and DedupTTL bound the set of (sender_id, message_id)
	// pairs remembered to drop duplicates: at most DedupSize pairs, each
	// kept at least min(DedupTTL, the time DedupSize/2 messages take).
	// Defaults 65536 and 10m.
	DedupSize int
	DedupTTL  time.Duration
}

// DefaultConfig returns the defaults documented on Config, without URLs.
func DefaultConfig() Config {
	return Config{
		TokenRenewBefore: 30 * time.Second,
		ResumeMargin:     30 * time.Second,
		FailoverMargin:   5 * time.Minute,
		BackoffMin:       250 * time.Millisecond,
		BackoffMax:       30 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		PingInterval:     20 * time.Second,
		ReadTimeout:      60 * time.Second,
		WriteTimeout:     10 * time.Second,
		Buffer:           1024,
		MaxMessageSize:   16 << 20,
		DedupSize:        1 << 16,
		DedupTTL:         10 * time.Minute,
	}
}

// validate checks cfg and returns the node id to bind ("" when a token
// names it).
func (cfg *Config) validate(hasTokenSource bool) (string, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(cfg.URLs) == 0 {
		bad("no relay URL")
	}
	if len(cfg.URLs) > MaxURLs {
		bad("%d relay URLs, at most %d", len(cfg.URLs), MaxURLs)
	}
	for _, u := range cfg.URLs {
		if err := checkURL(u); err != nil {
			bad("%w", err)
		}
	}
	id := cfg.NodeID
	tokens := cfg.Token != "" || hasTokenSource
	switch {
	case cfg.NodeKey != nil && tokens:
		bad("NodeKey and a token are exclusive: choose one proof")
	case cfg.NodeKey != nil:
		if len(cfg.NodeKey) != ed25519.PrivateKeySize {
			bad("NodeKey of %d bytes, want %d", len(cfg.NodeKey), ed25519.PrivateKeySize)
			break
		}
		key := nodeauth.KeyID(cfg.NodeKey.Public().(ed25519.PublicKey))
		if id != "" && id != key {
			bad("NodeID %q is not the key id of NodeKey (%s)", id, key)
		}
		id = key
	case tokens:
	case id == "":
		bad("no NodeID, NodeKey or token")
	case nodeauth.IsKeyID(id):
		bad("NodeID %s is a key id: it binds only with its NodeKey (or a token)", id)
	}
	if id == message.RelayNodeID {
		bad("the node id %q is reserved", id)
	}
	if len(id) > message.MaxIDLen {
		bad("NodeID over %d bytes", message.MaxIDLen)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"TokenRenewBefore", cfg.TokenRenewBefore}, {"ResumeMargin", cfg.ResumeMargin}, {"FailoverMargin", cfg.FailoverMargin},
		{"BackoffMin", cfg.BackoffMin}, {"BackoffMax", cfg.BackoffMax},
		{"HandshakeTimeout", cfg.HandshakeTimeout}, {"PingInterval", cfg.PingInterval},
		{"ReadTimeout", cfg.ReadTimeout}, {"WriteTimeout", cfg.WriteTimeout}, {"DedupTTL", cfg.DedupTTL},
	} {
		if d.v <= 0 {
			bad("%s must be positive (start from DefaultConfig)", d.name)
		}
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		bad("BackoffMax (%v) is less than BackoffMin (%v)", cfg.BackoffMax, cfg.BackoffMin)
	}
	if cfg.ReadTimeout <= cfg.PingInterval {
		bad("ReadTimeout (%v) must be more than PingInterval (%v)", cfg.ReadTimeout, cfg.PingInterval)
	}
	if cfg.Buffer < 2 {
		bad("Buffer must be at least 2")
	}
	if cfg.MaxMessageSize < 1024 {
		bad("MaxMessageSize must be at least 1 KiB")
	}
	if cfg.DedupSize < 2 {
		bad("DedupSize must be at least 2")
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("client config: %w", err)
	}
	return id, nil
}

// checkURL accepts ws:// and wss:// URLs with a host.
func checkURL(s string) error {
	if len(s) > 2048 {
		return fmt.Errorf("relay URL over 2048 bytes")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("relay URL %q: %w", s, err)
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("relay URL %q: want ws://host[:port][/path] or wss://…", s)
	}
	return nil
}

// Option sets what a programmer injects.
type Option func(*options)

type options struct {
	log    *slog.Logger
	tokens TokenSource
	hook   func(State)
	tls    *tls.Config
}

// TokenSource returns a fresh node token. The client calls it before
// connecting when it has no token or its token expires within
// TokenRenewBefore, to renew the token of a live connection (NodeAuth)
// before it expires, and after a close 4002 (token expired). An error is
// logged and retried with backoff, like a failed connection.
type TokenSource func(ctx context.Context) (string, error)

// WithLogger sets the logger (default: discard). Per-frame events are at
// Debug.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithTokenSource makes the client fetch node tokens from f (default none:
// Config.Token is used until it expires, then the client stops).
func WithTokenSource(f TokenSource) Option { return func(o *options) { o.tokens = f } }

// WithStateHook calls f on every change of connection state, from the
// client's connection goroutine: f must return quickly and must not call
// Close.
func WithStateHook(f func(State)) Option { return func(o *options) { o.hook = f } }

// WithTLSConfig sets the TLS configuration of wss:// connections (default:
// the system roots).
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// State is a change of connection state, for WithStateHook.
type State struct {
	URL       string // the relay
	Connected bool   // true: connected and bound; false: a connection ended or failed
	Err       error  // why it ended or failed (nil when Connected)
}
