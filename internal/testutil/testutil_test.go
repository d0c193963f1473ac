package testutil

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTB records Fatalf instead of stopping the test, so that the failure
// paths of the helpers can be checked.
type fakeTB struct {
	testing.TB
	failed atomic.Bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Fatalf(string, ...any) { f.failed.Store(true); panic(errStop) }
func (f *fakeTB) Fatal(...any)          { f.failed.Store(true); panic(errStop) }

var errStop = errors.New("stop")

func run(f func(t testing.TB)) (failed bool) {
	tb := &fakeTB{}
	defer func() {
		if r := recover(); r != nil && r != errStop {
			panic(r)
		}
		failed = tb.failed.Load()
	}()
	f(tb)
	return false
}

func TestCheckFor(t *testing.T) {
	n := 0
	if run(func(tb testing.TB) {
		CheckFor(tb, time.Second, func() error {
			n++
			if n < 3 {
				return errors.New("not yet")
			}
			return nil
		})
	}) {
		t.Fatal("CheckFor failed although the condition came true")
	}
	if n != 3 {
		t.Fatalf("condition called %d times, want 3", n)
	}
	if !run(func(tb testing.TB) {
		CheckFor(tb, 20*time.Millisecond, func() error { return errors.New("never") })
	}) {
		t.Fatal("CheckFor did not fail on a condition that never holds")
	}
}

func TestEventuallyAndStays(t *testing.T) {
	if !run(func(tb testing.TB) { Eventually(tb, 10*time.Millisecond, func() bool { return false }, "x") }) {
		t.Fatal("Eventually did not fail")
	}
	if run(func(tb testing.TB) { Stays(tb, 30*time.Millisecond, func() error { return nil }) }) {
		t.Fatal("Stays failed on a condition that holds")
	}
	if !run(func(tb testing.TB) {
		Stays(tb, time.Second, func() error { return errors.New("broke") })
	}) {
		t.Fatal("Stays did not fail")
	}
}
