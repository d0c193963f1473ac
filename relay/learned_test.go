package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/message"
)

// learnedMsgs is n broadcasts from another relay's node, as sync hands
// them over.
func learnedMsgs(t *testing.T, n int) []message.Envelope {
	t.Helper()
	out := make([]message.Envelope, n)
	for i := range out {
		e, err := message.Parse(message.Build("EntryAnnounce", fmt.Sprint("l", i), "far", "", []byte(`{"ts":1}`)))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

// TestRouterLearnedPaced: broadcasts learned by reconciliation wait while
// a local node's send queue is over the replay bound (a heal's burst must
// not close it as a slow consumer), and go on when it has drained.
func TestRouterLearnedPaced(t *testing.T) {
	r := newRouter(t, nil, nil)
	a := open(t, r, "node_id=a")
	a.queued.Store(replayHighFrames) // a reader behind
	msgs := learnedMsgs(t, 3*learnedCheck)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range msgs {
			r.Learned(&msgs[i])
		}
	}()
	n := 0
	testutil.Eventually(t, 10*time.Second, func() bool { n += len(a.take(t)); return n == learnedCheck-1 },
		"the learned broadcasts before the first check")
	testutil.Stays(t, 300*time.Millisecond, func() error {
		if n += len(a.take(t)); n != learnedCheck-1 {
			return fmt.Errorf("%d delivered to a node whose queue is full, want %d", n, learnedCheck-1)
		}
		return nil
	})
	a.queued.Store(0) // it has read
	<-done
	if n += len(a.take(t)); n != len(msgs) {
		t.Fatalf("%d delivered, want %d", n, len(msgs))
	}
}

// TestRouterLearnedNotReading: a node that does not read holds a learned
// burst up at most ReplayTimeout; then delivery goes on (and the
// slow-consumer rule of its connection decides).
func TestRouterLearnedNotReading(t *testing.T) {
	r := newRouter(t, nil, func(c *Config) { c.ReplayTimeout = 200 * time.Millisecond })
	a := open(t, r, "node_id=a")
	a.queued.Store(replayHighFrames)
	msgs := learnedMsgs(t, learnedCheck+1)
	start := time.Now()
	for i := range msgs {
		r.Learned(&msgs[i])
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("delivered in %v, before the replay timeout", took)
	}
	if n := len(a.take(t)); n != len(msgs) {
		t.Fatalf("%d delivered, want %d", n, len(msgs))
	}
	// Left behind: the next checks do not wait for it again.
	more := learnedMsgs(t, 3*learnedCheck)
	start = time.Now()
	for i := range more {
		more[i].ID += "-more"
		r.Learned(&more[i])
	}
	if took := time.Since(start); took >= 200*time.Millisecond {
		t.Fatalf("a node left behind delayed the next learned broadcasts %v", took)
	}
	// Once it has read, it is waited for again.
	a.queued.Store(0)
	caught := learnedMsgs(t, learnedCheck) // at least one check with a under the bounds
	for i := range caught {
		caught[i].ID += "-caught"
		r.Learned(&caught[i])
	}
	a.queued.Store(replayHighFrames)
	last := learnedMsgs(t, learnedCheck)
	start = time.Now()
	for i := range last {
		last[i].ID += "-last"
		r.Learned(&last[i])
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("a node that caught up was not waited for (%v)", took)
	}
}
