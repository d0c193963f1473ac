package transport

import (
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/wsframe"

	"github.com/gorilla/websocket"
)

// BenchmarkFanout measures broadcast delivery on loopback: one sender, 100
// receivers, b.N messages of 256 bytes, each encoded once with NewFrame and
// sent to every receiver. The sender keeps at most two windows of messages
// in flight, so no receiver becomes a slow consumer.
//
//	go test -run - -bench Fanout -benchtime 20000x ./transport/
func BenchmarkFanout(b *testing.B) {
	const receivers, size, window = 100, 256, 256

	rec := newRecorder(b)
	rec.noCopy = true
	var mu sync.Mutex
	var targets []*Conn
	rec.onOpen = func(c *Conn) {
		if c.Query("node_id") == "receiver" {
			mu.Lock()
			targets = append(targets, c)
			mu.Unlock()
		}
	}
	rec.onFrame = func(_ *Conn, data []byte) {
		f := wsframe.NewText(data)
		mu.Lock()
		ts := targets
		mu.Unlock()
		for _, c := range ts {
			if c.Send(f) != nil {
				b.Error("Send refused")
			}
		}
	}
	cfg := testConfig()
	cfg.MaxConnsPerIP = 2 * receivers
	s := startServer(b, cfg, rec)

	// Each receiver reports every window-th message on progress.
	progress := make(chan int, 4*receivers)
	var done sync.WaitGroup
	for range receivers {
		ws := dial(b, s, "/?node_id=receiver")
		rec.waitOpen(b)
		done.Go(func() {
			ws.SetReadDeadline(time.Now().Add(5 * time.Minute))
			for n := 1; n <= b.N; n++ {
				_, r, err := ws.NextReader()
				if err == nil {
					_, err = io.Copy(io.Discard, r)
				}
				if err != nil {
					b.Errorf("receiver: %v after %d", err, n-1)
					return
				}
				if n%window == 0 {
					progress <- n
				}
			}
		})
	}
	sender := dial(b, s, "/?node_id=sender")
	rec.waitOpen(b)
	msg := []byte(strings.Repeat("m", size))

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		k := min(window, b.N-sent)
		for range k {
			if err := sender.WriteMessage(websocket.TextMessage, msg); err != nil {
				b.Fatal(err)
			}
		}
		sent += k
		// Wait until every receiver has the window before this one.
		if w := sent/window - 1; w >= 1 && k == window {
			for range receivers {
				select {
				case <-progress:
				case <-time.After(30 * time.Second):
					b.Fatal("receivers stalled")
				}
			}
		}
	}
	done.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)*receivers/elapsed.Seconds(), "deliveries/s")
}
