package relay

import (
	"errors"
	"fmt"
	"time"
)

// Limits are the settings of a Router that can change while it runs
// (SetLimits; cmd/gsio-relay applies them on SIGHUP). The rest of Config
// needs a restart.
type Limits struct {
	// RateLimit and RateBurst: the token bucket of new connections (open
	// ones keep theirs); RateLimit is also the flood threshold of all.
	RateLimit float64
	RateBurst int
	// MaxBroadcastSize: checked at every broadcast; at most the
	// Config.MaxDirectSize the router started with (the transport reads
	// frames up to that, and the federation was sized for it).
	MaxBroadcastSize int
	// MailboxMax and MailboxTTL: checked at every message kept, and by
	// the expiry of kept ones. A router started with MailboxMax 0 and a
	// federation runs no mailbox watcher: turning mailboxes on needs a
	// restart.
	MailboxMax int
	MailboxTTL time.Duration
}

// limitsOf picks the Limits of a Config.
func limitsOf(c Config) Limits {
	return Limits{RateLimit: c.RateLimit, RateBurst: c.RateBurst, MaxBroadcastSize: c.MaxBroadcastSize,
		MailboxMax: c.MailboxMax, MailboxTTL: c.MailboxTTL}
}

// Limits returns the limits in force.
func (r *Router) Limits() Limits { return *r.limits.Load() }

// SetLimits replaces the limits in force; an invalid set changes nothing.
func (r *Router) SetLimits(l Limits) error {
	var errs []error
	switch {
	case l.RateLimit <= 0:
		errs = append(errs, errors.New("--rate-limit must be positive"))
	case l.RateBurst < 1:
		errs = append(errs, errors.New("--rate-burst must be at least 1"))
	case l.MaxBroadcastSize < 1024:
		errs = append(errs, errors.New("--max-message-size must be at least 1024"))
	case l.MaxBroadcastSize > r.cfg.MaxDirectSize:
		errs = append(errs, fmt.Errorf("--max-message-size %d: more than the relay started with (%d) needs a restart", l.MaxBroadcastSize, r.cfg.MaxDirectSize))
	case l.MailboxMax < 0:
		errs = append(errs, errors.New("--mailbox-max must not be negative"))
	case l.MailboxMax > 0 && r.mesh != nil && !r.mail.running:
		errs = append(errs, errors.New("--mailbox-max: turning mailboxes on needs a restart"))
	case l.MailboxTTL <= 0:
		errs = append(errs, errors.New("--mailbox-ttl must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("routing limits: %w", err)
	}
	r.limits.Store(&l)
	return nil
}
