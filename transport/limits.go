package transport

import (
	"errors"
	"fmt"
)

// Limits are the settings of a Server that can change while it runs
// (SetLimits; cmd/gsio-relay applies them on SIGHUP). Each takes effect
// as documented on its field; the rest of Config needs a restart.
type Limits struct {
	MaxConns      int // Config.MaxConns: checked at every new connection
	MaxConnsPerIP int // Config.MaxConnsPerIP: likewise; open connections stay
	// SendQueueFrames and SendQueueBytes: checked at every send, on every
	// connection.
	SendQueueFrames int
	SendQueueBytes  int
	// MaxMessageSize: the read limit of new connections (open ones keep
	// theirs).
	MaxMessageSize int64
	// LargeMessageBudget: checked at every large message read.
	LargeMessageBudget int64
}

// limitsOf picks the Limits of a Config (with its defaults).
func limitsOf(c Config) Limits {
	return Limits{MaxConns: c.MaxConns, MaxConnsPerIP: c.MaxConnsPerIP, SendQueueFrames: c.SendQueueFrames,
		SendQueueBytes: c.SendQueueBytes, MaxMessageSize: c.MaxMessageSize, LargeMessageBudget: c.LargeMessageBudget}
}

func (l Limits) validate() error {
	var errs []error
	for _, v := range []struct {
		flag string
		v    int64
	}{
		{"--max-conns", int64(l.MaxConns)}, {"--max-conns-per-ip", int64(l.MaxConnsPerIP)},
		{"--send-queue", int64(l.SendQueueFrames)}, {"--send-queue-bytes", int64(l.SendQueueBytes)},
		{"--max-direct-size (the read limit)", l.MaxMessageSize}, {"--large-message-budget", l.LargeMessageBudget},
	} {
		if v.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive (got %d)", v.flag, v.v))
		}
	}
	if l.MaxConnsPerIP > l.MaxConns {
		errs = append(errs, fmt.Errorf("--max-conns-per-ip (%d) must not exceed --max-conns (%d)", l.MaxConnsPerIP, l.MaxConns))
	}
	if int64(l.SendQueueBytes) < l.MaxMessageSize {
		errs = append(errs, fmt.Errorf("--send-queue-bytes (%d) must be at least the largest message (%d, --max-direct-size)", l.SendQueueBytes, l.MaxMessageSize))
	}
	return errors.Join(errs...)
}

// Limits returns the limits in force.
func (s *Server) Limits() Limits { return *s.limits.Load() }

// SetLimits replaces the limits in force; an invalid set changes nothing.
// Open connections over a new connection limit stay open.
func (s *Server) SetLimits(l Limits) error {
	if err := l.validate(); err != nil {
		return fmt.Errorf("transport limits: %w", err)
	}
	s.limits.Store(&l)
	return nil
}
