package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/internal/testutil"
)

// fakeRelay runs script for the n-th connection (1-based) with the
// since_ms it asked (0: none).
type fakeRelay struct {
	srv   *httptest.Server
	n     atomic.Int32
	mu    sync.Mutex
	since []int64
}

func newFake(t *testing.T, script func(n int, since int64, ws *websocket.Conn)) *fakeRelay {
	f := &fakeRelay{}
	up := websocket.Upgrader{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		since, _ := strconv.ParseInt(r.URL.Query().Get("since_ms"), 10, 64)
		f.mu.Lock()
		f.since = append(f.since, since)
		f.mu.Unlock()
		script(int(f.n.Add(1)), since, ws)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRelay) url() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws" }

func bcast(id string, ts int64) []byte { return frameTS(TypeEntryAnnounce, id, "peer", "", "{}", ts) }

func now() int64 { return time.Now().UnixMilli() }

// TestFailedHistoryHandsBackLiveBroadcasts: live broadcasts taken into a
// History call's answer reach Messages() when the call fails (here its
// context ends, then the connection is lost). Before, they were marked
// delivered and a resumed replay dropped them as duplicates.
func TestFailedHistoryHandsBackLiveBroadcasts(t *testing.T) {
	drop := make(chan struct{})
	var liveTS int64
	f := newFake(t, func(n int, since int64, ws *websocket.Conn) {
		switch n {
		case 1:
			_ = ws.WriteMessage(websocket.TextMessage, bcast("hello", now()))
			for { // answer nothing but a live broadcast in the window
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if strings.Contains(string(data), TypeHistoryRequest) {
					liveTS = now()
					_ = ws.WriteMessage(websocket.TextMessage, bcast("live-1", liveTS))
					<-drop
					return // connection lost
				}
			}
		default: // resume: replay what is kept since since_ms, then live
			if since > 0 && liveTS >= since {
				_ = ws.WriteMessage(websocket.TextMessage, bcast("live-1", liveTS))
			}
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"message_type":"RelayHistoryEnd","message_id":"e","sender_id":"relay","recipient_id":"node-a","payload":{"ref":"","count":1,"complete":true,"oldest_ms":1}}`))
			_ = ws.WriteMessage(websocket.TextMessage, bcast("after", now()))
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}
	})
	cfg := testConfig("node-a", f.url())
	cfg.Resume = true
	c := dial(t, cfg)
	expect(t, c, TypeEntryAnnounce, "hello")
	hctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.History(hctx, time.Now().Add(-time.Hour), time.Time{}, 0)
	cancel()
	if err == nil {
		t.Fatal("History answered by a relay that does not answer")
	}
	close(drop)
	m := next(t, c)
	if m.ID != "live-1" {
		t.Fatalf("live-1 was never delivered (History failed, replay dropped it as a duplicate): got %s first, duplicates=%d", m.ID, c.Stats().Duplicates)
	}
}

// TestResumeAfterReplayKeepsHeldBacklog: after a replay's RelayHistoryEnd
// the relay still sends the live broadcasts it held meanwhile; a
// connection lost among them resumes from before them. Before, the end
// counted as "heard until now" and a replay longer than ResumeMargin lost
// the rest (the margin is scaled down here).
func TestResumeAfterReplayKeepsHeldBacklog(t *testing.T) {
	var mu sync.Mutex
	var store [][2]any // id, ts
	keep := func(id string, ts int64) { mu.Lock(); store = append(store, [2]any{id, ts}); mu.Unlock() }
	end := []byte(`{"message_type":"RelayHistoryEnd","message_id":"e","sender_id":"relay","recipient_id":"node-a","payload":{"ref":"","count":0,"complete":true,"oldest_ms":1}}`)
	f := newFake(t, func(n int, since int64, ws *websocket.Conn) {
		go func() {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
		switch n {
		case 1:
			ts := now()
			keep("a", ts)
			_ = ws.WriteMessage(websocket.TextMessage, bcast("a", ts))
			time.Sleep(50 * time.Millisecond)
			return
		case 2: // a replay that takes 400 ms; live traffic is held meanwhile
			_ = ws.WriteMessage(websocket.TextMessage, bcast("a", store[0][1].(int64)))
			var held [][]byte
			for i := 1; i <= 3; i++ {
				time.Sleep(100 * time.Millisecond)
				id, ts := "h"+strconv.Itoa(i), now()
				keep(id, ts)
				held = append(held, bcast(id, ts))
			}
			time.Sleep(100 * time.Millisecond)
			_ = ws.WriteMessage(websocket.TextMessage, end)
			_ = ws.WriteMessage(websocket.TextMessage, held[0])
			time.Sleep(20 * time.Millisecond)
			return // connection lost before h2, h3 were sent
		default: // a relay replays ts >= since
			mu.Lock()
			for _, e := range store {
				if e[1].(int64) >= since {
					_ = ws.WriteMessage(websocket.TextMessage, bcast(e[0].(string), e[1].(int64)))
				}
			}
			mu.Unlock()
			_ = ws.WriteMessage(websocket.TextMessage, end)
			_ = ws.WriteMessage(websocket.TextMessage, bcast("marker", now()))
			time.Sleep(2 * time.Second)
		}
	})
	cfg := testConfig("node-a", f.url())
	cfg.Resume = true
	cfg.ResumeMargin = 150 * time.Millisecond // scaled: stands for 30 s against a replay > 30 s
	c := dial(t, cfg)
	var got []string
	for {
		m := next(t, c)
		got = append(got, m.ID)
		if m.ID == "marker" {
			break
		}
	}
	for _, id := range []string{"h2", "h3"} {
		if !strings.Contains(strings.Join(got, ","), id) {
			t.Fatalf("%s lost; delivered %v", id, got)
		}
	}
}

// TestDrainedAtOnceBacksOff: a relay that sends RelayDraining right after
// every bind gets reconnections at a growing backoff, not one every
// BackoffMin forever (27 in 5 s before).
func TestDrainedAtOnceBacksOff(t *testing.T) {
	f := newFake(t, func(n int, since int64, ws *websocket.Conn) {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"message_type":"RelayDraining","message_id":"d","sender_id":"relay","recipient_id":"node-a","payload":{"urls":[],"deadline_ms":1}}`))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
	cfg := testConfig("node-a", f.url())
	cfg.BackoffMin = 250 * time.Millisecond
	cfg.BackoffMax = 30 * time.Second
	c := dial(t, cfg)
	time.Sleep(3 * time.Second) // the window the reconnections are counted in
	// 250 ms doubling: connections at about 0, 0.25, 0.75, 1.75 s.
	if n := c.Stats().Connections; n > 6 {
		t.Fatalf("%d connections in 3 s to a relay that drains every node at once", n)
	}
}

// TestFutureTSDoesNotMoveTheResumePoint: one broadcast stamped an hour
// ahead (a relay with a fast clock) does not move later resume points
// past what was missed.
func TestFutureTSDoesNotMoveTheResumePoint(t *testing.T) {
	f := newFake(t, func(n int, since int64, ws *websocket.Conn) {
		if n == 1 {
			_ = ws.WriteMessage(websocket.TextMessage, bcast("skewed", now()+3600_000))
			time.Sleep(50 * time.Millisecond)
			return
		}
		time.Sleep(2 * time.Second)
	})
	cfg := testConfig("node-a", f.url())
	cfg.Resume = true
	c := dial(t, cfg)
	next(t, c)
	since := f.nth(t, 2)
	if since == 0 || since > now() {
		t.Fatalf("resumed with since_ms %d, now %d", since, now())
	}
}

// nth waits for the n-th connection and returns its since_ms.
func (f *fakeRelay) nth(t *testing.T, n int) int64 {
	t.Helper()
	var since int64
	testutil.Eventually(t, 10*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.since) < n {
			return false
		}
		since = f.since[n-1]
		return true
	}, "connection %d", n)
	return since
}

// TestQuietConnectionResumes: with Resume, a connection that heard
// nothing before it dropped (a quiet federation) resumes from its bind.
// Before, it reconnected with no since_ms, and what was sent meanwhile was
// lost.
func TestQuietConnectionResumes(t *testing.T) {
	f := newFake(t, func(n int, since int64, ws *websocket.Conn) {
		if n == 1 {
			time.Sleep(200 * time.Millisecond)
			return
		}
		time.Sleep(time.Second)
	})
	cfg := testConfig("node-a", f.url())
	cfg.Resume = true
	start := now()
	dial(t, cfg)
	if since := f.nth(t, 2); since == 0 || since > start {
		t.Fatalf("resumed with since_ms %d (bound at about %d)", since, start)
	}
}
