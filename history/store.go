package history

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

var (
	// ErrClosed is returned by reads and Flush on a closed store.
	ErrClosed = errors.New("history: store closed")
	// ErrFailed is returned by Flush once the engine has failed: the store
	// drops every broadcast (recording gaps) until the relay restarts.
	ErrFailed = errors.New("history: engine failed")
	// ErrNotFound is returned by Get for an entry the store does not hold.
	ErrNotFound = errors.New("history: not found")
)

// CorruptError is returned by Open when the store in Dir cannot be read
// back. The relay's policy: log it at Error with the path, MoveAside the
// directory and Open an empty store in its place (reconciliation with
// other relays refills it within retention); it never deletes the old one.
// Errors of the environment (permission, a store locked by another
// process, a full or read-only disk, I/O errors) are not CorruptError:
// moving the store aside would not help and could lose a healthy store.
type CorruptError struct {
	Dir string
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("history: store %s is corrupt: %v", e.Dir, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Stats is a snapshot of the store's counters.
type Stats struct {
	Count    int64 // entries stored
	Bytes    int64 // their logical size: keys + values
	OldestTS int64 // 0 when empty
	NewestTS int64 // 0 when empty
	// Since Open:
	Writes     int64 // entries newly stored
	Dropped    int64 // broadcasts not stored: queue full, disk low or failing, closed
	Duplicates int64 // appends of an entry already stored
	Stale      int64 // appends older than what retention already dropped, or malformed
	Queued     int   // broadcasts waiting for the writer
	Gaps       int   // recorded gaps
	LowDisk    bool  // writing paused for lack of free disk
	Failed     bool  // the engine failed: dropping until restart
}

// item is one queued broadcast, or (flush != nil) a Flush marker.
type item struct {
	ts     int64
	key    [16]byte
	sender string
	frame  []byte
	flush  chan struct{}
}

// blockCacheSize is the engine's block cache (filled by reads: duplicate
// checks, replays). With two 4 MiB memtables it makes the store's memory
// at most about 40 MiB beyond what is queued. The memtables were 8 MiB:
// halving them took 8 MB off a relay's live heap under S2 (16 MB of
// heap goal) at no measured cost in throughput (docs/BENCHMARKS.md).
const blockCacheSize = 32 << 20

// itemOverhead is what an item costs beyond its bytes, for QueueMaxBytes.
const itemOverhead = 64

// Store is the on-disk history. Its methods are safe for concurrent use.
type Store struct {
	cfg  Config
	opts options
	log  *slog.Logger
	db   *pebble.DB

	queue       chan item
	queuedBytes atomic.Int64
	closed      atomic.Bool
	failed      atomic.Bool
	lowDisk     atomic.Bool
	evictedA    atomic.Int64 // mirrors evicted for Append's lock-free check

	writes, dropped, dups, stale atomic.Int64

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	done      chan struct{} // closed when the writer has exited
	closeOnce sync.Once
	closeErr  error
	release   func() // frees Dir for another Open in this process

	// readMu keeps db open while a read runs: reads hold it shared, Close
	// exclusively. Lock order: readMu before mu.
	readMu   sync.RWMutex
	dbClosed bool

	// mu guards the fields below: the in-memory mirror of the store's
	// summary that reads and Stats consult. The writer is their only
	// writer, except gaps (MarkGap, ClearGaps, Append's drops).
	mu        sync.Mutex
	gaps      gapSet
	gapsDirty bool
	evicted   int64 // every entry with ts < evicted may have been deleted
	count     int64
	bytes     int64
	oldest    int64
	newest    int64

	w writerState // owned by the writer goroutine
}

// Open opens (creating if need be) the store in cfg.Dir and starts its
// writer. A store that cannot be read back gives a *CorruptError.
func Open(cfg Config, opts ...Option) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := options{logger: slog.Default(), clock: time.Now, fs: vfs.Default}
	for _, f := range opts {
		f(&o)
	}
	if err := o.fs.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("history: create %s: %w", cfg.Dir, err)
	}
	release, err := claimDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:   cfg,
		opts:  o,
		log:   o.logger,
		queue: make(chan item, cfg.QueueLen),
		done:  make(chan struct{}),
	}
	var db *pebble.DB
	err = guard(func() (err error) {
		po := s.engineOptions()
		defer po.Cache.Unref() // the engine holds its own reference
		db, err = pebble.Open(cfg.Dir, po)
		return err
	})
	if err != nil {
		release()
		return nil, classifyOpenError(cfg.Dir, err)
	}
	s.db = db
	if err := guard(s.load); err != nil {
		_ = guard(db.Close)
		release()
		return nil, err
	}
	s.release = release
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return s, nil
}

func (s *Store) engineOptions() *pebble.Options {
	po := &pebble.Options{
		FS:                 s.opts.fs,
		Logger:             engineLogger{s.log},
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       4 << 20,
		// An explicit block cache: the engine's default (8 MiB, split in
		// 4 shards per core) caches nothing on small machines, and every
		// duplicate check then reads its blocks from the file.
		Cache: pebble.NewCache(blockCacheSize),
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				s.log.Warn("history: engine background error", "err", err)
			},
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				s.log.Error("history: engine found corrupt data", "err", info.Details, "path", info.Path)
			},
		},
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return po
}

// openDirs are the directories of the stores open in this process. The
// engine's file lock stops a second process; this stops a second Open in
// the same one with a plain error (the engine's own says nothing a caller
// could tell from corruption).
var openDirs = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

func claimDir(dir string) (release func(), err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("history: %s: %w", dir, err)
	}
	openDirs.Lock()
	defer openDirs.Unlock()
	if openDirs.m[abs] {
		return nil, fmt.Errorf("history: store %s is already open in this process", dir)
	}
	openDirs.m[abs] = true
	return func() {
		openDirs.Lock()
		delete(openDirs.m, abs)
		openDirs.Unlock()
	}, nil
}

// environmental errors are not the store's fault: Open reports them as
// they are, not as CorruptError.
var environmental = []error{
	fs.ErrPermission, syscall.EAGAIN, syscall.EACCES, syscall.ENOSPC,
	syscall.EROFS, syscall.EMFILE, syscall.ENFILE, syscall.EIO,
	syscall.ENOMEM, syscall.ENOTDIR, syscall.EDQUOT,
}

func classifyOpenError(dir string, err error) error {
	for _, e := range environmental {
		if errors.Is(err, e) {
			return fmt.Errorf("history: open %s: %w", dir, err)
		}
	}
	return &CorruptError{Dir: dir, Err: err}
}

// MoveAside renames a (corrupt) store directory out of the way, to
// dir.corrupt-<UTC time>, and returns the new path. The store must not be
// open.
func MoveAside(dir string) (string, error) {
	dir = filepath.Clean(dir)
	base := dir + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
	path := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			break
		}
		path = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(dir, path); err != nil {
		return "", fmt.Errorf("history: move %s aside: %w", dir, err)
	}
	return path, nil
}

// Append stores a broadcast. It never blocks and never fails: it queues
// the broadcast for the writer, or, when the queue is full (or the store
// is closed), drops it and records a gap at ts. The store keeps frame
// until it is written: the caller must not modify it afterwards.
// Appending an entry already stored (same ts and key) changes nothing.
func (s *Store) Append(ts int64, sender, id string, frame []byte) {
	if s.closed.Load() {
		s.dropped.Add(1)
		return
	}
	if ts < s.evictedA.Load() || ts < 0 || len(sender) > maxSenderLen {
		s.stale.Add(1)
		return
	}
	n := int64(len(frame) + len(sender) + itemOverhead)
	if s.queuedBytes.Add(n) > s.cfg.QueueMaxBytes {
		s.queuedBytes.Add(-n)
		s.drop(ts, ts+1, 1)
		return
	}
	select {
	case s.queue <- item{ts: ts, key: MsgKey(sender, id), sender: sender, frame: frame}:
	default:
		s.queuedBytes.Add(-n)
		s.drop(ts, ts+1, 1)
	}
}

// drop counts n broadcasts not stored and records [from, to) as a gap.
func (s *Store) drop(from, to int64, n int) {
	s.dropped.Add(int64(n))
	s.MarkGap(from, to)
}

// Flush waits until every broadcast appended before the call is written
// (or dropped). The router calls it before a Range that must include what
// it has just appended.
func (s *Store) Flush(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	done := make(chan struct{})
	select {
	case s.queue <- item{flush: done}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		select {
		case <-done:
		default:
			return ErrClosed
		}
	}
	if s.failed.Load() {
		return ErrFailed
	}
	return nil
}

// Stats returns the current counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		Count: s.count, Bytes: s.bytes, OldestTS: s.oldest, NewestTS: s.newest,
		Gaps: len(s.gaps),
	}
	s.mu.Unlock()
	st.Writes = s.writes.Load()
	st.Dropped = s.dropped.Load()
	st.Duplicates = s.dups.Load()
	st.Stale = s.stale.Load()
	st.Queued = len(s.queue)
	st.LowDisk = s.lowDisk.Load()
	st.Failed = s.failed.Load()
	return st
}

// Close commits what is queued (for at most CloseTimeout, dropping the
// rest), stops the writer and closes the engine. It is idempotent; later
// calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.cancel()
		s.wg.Wait()
		s.readMu.Lock()
		s.dbClosed = true
		s.readMu.Unlock()
		if err := guard(s.db.Close); err != nil {
			s.closeErr = fmt.Errorf("history: close: %w", err)
		}
		s.release()
	})
	return s.closeErr
}

// engineFatal is what engineLogger.Fatalf panics with; guard turns it
// back into an error.
type engineFatal struct{ msg string }

func (e engineFatal) Error() string { return "history: engine fatal: " + e.msg }

// guard runs f, turning the engine's Fatalf panic into an error. The
// engine calls Fatalf when it cannot go on (a failed WAL or MANIFEST
// write); by default that exits the process, which a relay must not do
// over its history.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			switch e := r.(type) {
			case engineFatal:
				err = e
			case error:
				// The engine panics with a write error it remembered from
				// an unsynced write (a failing disk): failed mode, not a
				// crash.
				err = fmt.Errorf("history: engine panic: %w", e)
			default:
				panic(r)
			}
		}
	}()
	return f()
}

// engineLogger adapts slog to the engine's logger: Infof at Debug,
// Errorf at Error, Fatalf at Error and then a panic that guard catches.
type engineLogger struct{ log *slog.Logger }

func (l engineLogger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("history: engine: " + fmt.Sprintf(format, args...))
	}
}

func (l engineLogger) Errorf(format string, args ...any) {
	l.log.Error("history: engine: " + fmt.Sprintf(format, args...))
}

func (l engineLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("history: engine fatal", "err", msg)
	panic(engineFatal{msg})
}
