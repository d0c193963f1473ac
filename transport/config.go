package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/gsio-net/gsio-relay/internal/clientip"
)

// Defaults of Config, as documented on its fields.
const (
	DefaultListen            = "0.0.0.0:8787"
	DefaultMaxMessageSize    = 1 << 20
	DefaultMaxConns          = 10000
	DefaultMaxConnsPerIP     = 100
	DefaultSendQueueFrames   = 4096
	DefaultSendQueueBytes    = 8 << 20
	DefaultPingInterval      = 25 * time.Second
	DefaultPongTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultReadBufferSize    = 1024

	DefaultLargeMessageThreshold = 1 << 20
	DefaultLargeMessageBudget    = 256 << 20
)

// DefaultConfig returns the operator defaults, each as documented in Config.
func DefaultConfig() Config {
	return Config{
		Listen:            DefaultListen,
		MaxMessageSize:    DefaultMaxMessageSize,
		MaxConns:          DefaultMaxConns,
		MaxConnsPerIP:     DefaultMaxConnsPerIP,
		SendQueueFrames:   DefaultSendQueueFrames,
		SendQueueBytes:    DefaultSendQueueBytes,
		PingInterval:      DefaultPingInterval,
		PongTimeout:       DefaultPongTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		HandshakeTimeout:  DefaultHandshakeTimeout,
		ReadBufferSize:    DefaultReadBufferSize,

		LargeMessageThreshold: DefaultLargeMessageThreshold,
		LargeMessageBudget:    DefaultLargeMessageBudget,
	}
}

// Option configures what a programmer injects into a Server.
type Option func(*options)

type options struct {
	log     *slog.Logger
	metrics *Metrics
	tlsPoll time.Duration // how often the TLS files are checked; tests shorten it
}

// tlsPollInterval is how often the TLS certificate and key files are
// checked for a change.
const tlsPollInterval = 2 * time.Second

// withTLSPoll sets how often the TLS files are checked (tests).
func withTLSPoll(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.tlsPoll = d
		}
	}
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	d := DefaultConfig()
	if cfg.Listen == "" {
		cfg.Listen = d.Listen
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = d.MaxMessageSize
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = d.MaxConns
	}
	if cfg.MaxConnsPerIP == 0 {
		cfg.MaxConnsPerIP = d.MaxConnsPerIP
	}
	if cfg.SendQueueFrames == 0 {
		cfg.SendQueueFrames = d.SendQueueFrames
	}
	if cfg.SendQueueBytes == 0 {
		cfg.SendQueueBytes = d.SendQueueBytes
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = d.PingInterval
	}
	if cfg.PongTimeout == 0 {
		cfg.PongTimeout = d.PongTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = d.WriteTimeout
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = d.HandshakeTimeout
	}
	if cfg.ReadBufferSize == 0 {
		cfg.ReadBufferSize = d.ReadBufferSize
	}
	if cfg.LargeMessageThreshold == 0 {
		cfg.LargeMessageThreshold = d.LargeMessageThreshold
	}
	if cfg.LargeMessageBudget == 0 {
		cfg.LargeMessageBudget = d.LargeMessageBudget
	}
	return cfg
}

// validate checks a Config that has its defaults filled in. Its errors
// name the fields by their `gsio-relay run` flags (Config's comments name
// each).
func (cfg *Config) validate() error {
	var errs []error
	neg := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative (got %d)", name, v))
		}
	}
	neg("--max-direct-size (the read limit)", cfg.MaxMessageSize)
	neg("--max-conns", int64(cfg.MaxConns))
	neg("--max-conns-per-ip", int64(cfg.MaxConnsPerIP))
	neg("--send-queue", int64(cfg.SendQueueFrames))
	neg("--send-queue-bytes", int64(cfg.SendQueueBytes))
	neg("read buffer size", int64(cfg.ReadBufferSize))
	neg("--max-message-size (the large-message threshold)", cfg.LargeMessageThreshold)
	neg("--large-message-budget", cfg.LargeMessageBudget)
	negDur := func(name string, v time.Duration) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative (got %s)", name, v))
		}
	}
	negDur("--ping-interval", cfg.PingInterval)
	negDur("--pong-timeout", cfg.PongTimeout)
	negDur("--write-timeout", cfg.WriteTimeout)
	negDur("--read-header-timeout", cfg.ReadHeaderTimeout)
	negDur("handshake timeout", cfg.HandshakeTimeout)
	if cfg.PingInterval > 0 && cfg.PongTimeout > 0 && cfg.PongTimeout <= cfg.PingInterval {
		errs = append(errs, fmt.Errorf("--pong-timeout (%s) must be longer than --ping-interval (%s)", cfg.PongTimeout, cfg.PingInterval))
	}
	if cfg.MaxMessageSize > 0 && cfg.SendQueueBytes > 0 && int64(cfg.SendQueueBytes) < cfg.MaxMessageSize {
		errs = append(errs, fmt.Errorf("--send-queue-bytes (%d) must be at least the largest message (%d, --max-direct-size), or one large frame makes a slow consumer", cfg.SendQueueBytes, cfg.MaxMessageSize))
	}
	if cfg.MaxConns > 0 && cfg.MaxConnsPerIP > cfg.MaxConns {
		errs = append(errs, fmt.Errorf("--max-conns-per-ip (%d) must not exceed --max-conns (%d)", cfg.MaxConnsPerIP, cfg.MaxConns))
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		errs = append(errs, errors.New("--ws-tls-cert and --ws-tls-key must be set together"))
	}
	for _, o := range cfg.AllowedOrigins {
		if _, err := normalizeOrigin(o); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := clientip.New(cfg.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transport: invalid config: %w", err)
	}
	return nil
}

// normalizeOrigin checks an AllowedOrigins entry and returns it in the form
// compared with the Origin header: "*" or scheme://host[:port].
func normalizeOrigin(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	o = strings.TrimSuffix(strings.TrimSpace(o), "/")
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("allowed origin %q: want \"*\" or scheme://host[:port]", o)
	}
	return o, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
