package history

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Config is the operator's view of the store.
type Config struct {
	// Dir holds the store (created if missing). No default: required.
	Dir string
	// Retention is how long a broadcast is kept, by its ts. Default 24h.
	Retention time.Duration
	// MaxBytes bounds the logical size (keys + values); past it the oldest
	// entries are dropped first, down to 98% of it. The files on disk are
	// usually smaller (compressed) but can exceed it for a while by the
	// WAL, memtables and not yet compacted deletions. Default 1 GiB.
	MaxBytes int64
	// BatchSize is the most broadcasts committed in one batch. Default 1000.
	BatchSize int
	// FlushInterval is how long the first broadcast of a batch waits for
	// others before the batch is committed. Default 10ms.
	FlushInterval time.Duration
	// QueueLen is how many broadcasts may wait for the writer; past it
	// Append drops and records a gap. Default 65,536.
	QueueLen int
	// QueueMaxBytes bounds the frame bytes waiting for the writer, the
	// same way. Default 64 MiB.
	QueueMaxBytes int64
	// RangeMaxBytes bounds the frame bytes of one Range answer (at least
	// one ts group is always answered). Default 16 MiB.
	RangeMaxBytes int64
	// GapMargin widens the downtime gap recorded at Open back from the last
	// heartbeat, for broadcasts that were in flight or queued when the
	// relay stopped. Default 10s.
	GapMargin time.Duration
	// MinFreeDisk: below this many free bytes on Dir's filesystem the
	// writer stops writing (drops and records gaps) until twice as much is
	// free again, so that the engine never meets a full disk. Default 256 MiB.
	MinFreeDisk int64
	// JanitorInterval is how often retention, the heartbeat, gap
	// persistence and the free-space check run. Default 1s.
	JanitorInterval time.Duration
	// CloseTimeout bounds how long Close spends committing what is still
	// queued; the rest is dropped. Default 5s.
	CloseTimeout time.Duration
}

// DefaultConfig returns the defaults, with Dir unset.
func DefaultConfig() Config {
	return Config{
		Retention:       24 * time.Hour,
		MaxBytes:        1 << 30,
		BatchSize:       1000,
		FlushInterval:   10 * time.Millisecond,
		QueueLen:        1 << 16,
		QueueMaxBytes:   64 << 20,
		RangeMaxBytes:   16 << 20,
		GapMargin:       10 * time.Second,
		MinFreeDisk:     256 << 20,
		JanitorInterval: time.Second,
		CloseTimeout:    5 * time.Second,
	}
}

func (c Config) validate() error {
	var errs []error
	check := func(ok bool, field string, v any) {
		if !ok {
			errs = append(errs, fmt.Errorf("history: %s must be positive, got %v", field, v))
		}
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("history: Dir is required"))
	}
	check(c.Retention > 0, "--history-retention", c.Retention)
	check(c.MaxBytes > 0, "--history-max-bytes", c.MaxBytes)
	check(c.BatchSize > 0, "BatchSize", c.BatchSize)
	check(c.FlushInterval > 0, "FlushInterval", c.FlushInterval)
	check(c.QueueLen > 0, "QueueLen", c.QueueLen)
	check(c.QueueMaxBytes > 0, "QueueMaxBytes", c.QueueMaxBytes)
	check(c.RangeMaxBytes > 0, "RangeMaxBytes", c.RangeMaxBytes)
	check(c.GapMargin >= 0, "GapMargin", c.GapMargin)
	check(c.MinFreeDisk >= 0, "MinFreeDisk", c.MinFreeDisk)
	check(c.JanitorInterval > 0, "JanitorInterval", c.JanitorInterval)
	check(c.CloseTimeout > 0, "CloseTimeout", c.CloseTimeout)
	return errors.Join(errs...)
}

// Option injects what the programmer supplies.
type Option func(*options)

type options struct {
	logger *slog.Logger
	clock  func() time.Time
	fs     vfs.FS // tests inject failing file systems
	// beforeCommit, if set, runs on the writer before each data commit
	// (tests hold the writer with it).
	beforeCommit func()
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock sets the clock used for retention, heartbeats and gaps
// (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

func withFS(fs vfs.FS) Option { return func(o *options) { o.fs = fs } }

func withBeforeCommit(f func()) Option { return func(o *options) { o.beforeCommit = f } }
