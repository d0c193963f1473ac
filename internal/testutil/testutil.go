// Package testutil holds the helpers every package's tests share: waiting on
// a condition instead of sleeping, a logger that is silent unless asked for,
// and GossipSub parameters that form meshes in a few hundred milliseconds.
//
// It is imported only by tests (and by the in-process harness in testnet/).
// It starts no goroutines.
package testutil

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// Logger discards everything unless GSIO_TEST_LOG is set, then logs at
// Debug to stderr.
func Logger() *slog.Logger {
	if os.Getenv("GSIO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// FastGossip are GossipSub parameters for tests: a 100 ms heartbeat, so
// that meshes form in a few hundred milliseconds.
func FastGossip() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.HeartbeatInterval = 100 * time.Millisecond
	p.HeartbeatInitialDelay = 20 * time.Millisecond
	p.IWantFollowupTime = time.Second
	return p
}

// CheckFor calls f until it returns nil, failing the test with f's last
// error once timeout has passed. The poll interval starts at 1 ms and
// backs off to 20 ms.
func CheckFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(wait)
		if wait < 20*time.Millisecond {
			wait *= 2
		}
	}
}

// Eventually waits until cond holds, failing the test after d with the
// formatted description of what was expected.
func Eventually(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	CheckFor(t, d, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("condition not met: %s", fmt.Sprintf(format, args...))
	})
}

// Stays calls f for d and fails as soon as it returns an error: the check
// that something does not happen.
func Stays(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := f(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
