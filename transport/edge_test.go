package transport

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/internal/testutil"
)

func TestLimitKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:5000", "127.0.0.1"},
		{"203.0.113.7:1", "203.0.113.7"},
		{"[::ffff:203.0.113.7]:1", "203.0.113.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"}, // same /64, same key
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		// Bare addresses: clients named by X-Forwarded-For.
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"not-an-address", "not-an-address"},
	} {
		if got := limitKey(tc.addr); got != tc.want {
			t.Errorf("limitKey(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// A client that starts a message and never finishes it, while answering
// pings and pinging itself, is dropped PongTimeout after the message
// started: a half-sent message does not pin its buffer for ever.
func TestStalledFragmentedMessageIsDropped(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.PingInterval = 100 * time.Millisecond
	cfg.PongTimeout = 600 * time.Millisecond
	s := startServer(t, cfg, rec)
	d := testDialer
	d.WriteBufferSize = 1024
	ws := dialWith(t, &d, wsURL(s, "/"), nil)
	c := rec.waitOpen(t)
	w, err := ws.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	// More than the write buffer: gorilla sends a first, non-final
	// fragment and holds the rest.
	if _, err := w.Write(bytes.Repeat([]byte("x"), 4096)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if ws.WriteControl(websocket.PingMessage, []byte("alive"), time.Now().Add(time.Second)) != nil {
					return
				}
			}
		}
	}()
	rec.waitClosed(t, c, 5*time.Second)
	close(stop)
	<-done
	if el := time.Since(start); el > 3*cfg.PongTimeout {
		t.Fatalf("stalled message dropped after %v, want about PongTimeout %v", el, cfg.PongTimeout)
	}
	if got := rec.framesOf(c); len(got) != 0 {
		t.Fatalf("a message that never ended was delivered: %d frames", len(got))
	}
}

// A long message sent in fragments that keeps arriving is read whole.
func TestSlowFragmentedMessageWithinDeadline(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.PingInterval, cfg.PongTimeout = time.Second, 2*time.Second
	s := startServer(t, cfg, rec)
	d := testDialer
	d.WriteBufferSize = 1024
	ws := dialWith(t, &d, wsURL(s, "/"), nil)
	c := rec.waitOpen(t)
	w, _ := ws.NextWriter(websocket.TextMessage)
	for range 5 {
		w.Write(bytes.Repeat([]byte("y"), 2048))
		time.Sleep(20 * time.Millisecond) // a slow sender, well within the deadline
	}
	w.Close()
	want := strings.Repeat("y", 5*2048)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(rec.framesOf(c)) == 1 }, "fragmented message delivered")
	if got := rec.framesOf(c)[0]; got != want {
		t.Fatalf("got a %d-byte message, want %d bytes", len(got), len(want))
	}
}

// Large messages take from a relay-wide budget while they are read: one
// over it closes its connection with 1013; the budget is returned after
// each message.
func TestLargeMessageBudget(t *testing.T) {
	rec := newRecorder(t)
	cfg := testConfig()
	cfg.MaxMessageSize = 64 << 10
	cfg.LargeMessageThreshold = 1 << 10
	cfg.LargeMessageBudget = 8 << 10
	s := startServer(t, cfg, rec)
	ws := dial(t, s, "/")
	c := rec.waitOpen(t)
	for i := range 5 { // 6 KiB each, one at a time: within the budget every time
		if err := ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte{'a' + byte(i)}, 6<<10)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(rec.framesOf(c)) == 5 }, "5 messages of 6 KiB read")
	if s.large.Load() != 0 {
		t.Fatalf("budget not returned: %d bytes held", s.large.Load())
	}
	ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte{'z'}, 16<<10))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := ws.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != closeTryAgainLater {
		t.Fatalf("a message over the budget ended with %v, want close 1013", err)
	}
	if got := rec.framesOf(c); len(got) != 5 {
		t.Fatalf("%d messages delivered, want the 5 within budget", len(got))
	}
}
