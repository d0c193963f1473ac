package client

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// The reader's frame handling, driven without a socket: what relays do
// not send yet (history, ts, replays) is tested here as the SPEC writes it.

// bare returns a client that does not run and a bound session of it
// without a connection.
func bare(t *testing.T, cfg Config) (*Client, *session) {
	t.Helper()
	c := newClient(cfg, options{}, cfg.NodeID)
	t.Cleanup(c.cancel)
	s := &session{c: c, url: "ws://relay", nodeID: cfg.NodeID, bound: true,
		out: make(chan writeReq, 4), ready: make(chan struct{})}
	return c, s
}

// frameTS is a frame with a top-level ts (0: none).
func frameTS(typ, id, sender, recipient, payload string, ts int64) []byte {
	b := message.Build(typ, id, sender, recipient, []byte(payload))
	if ts == 0 {
		return b
	}
	tail, _ := json.Marshal(ts)
	return append(append(b[:len(b)-1], `,"ts":`...), append(tail, '}')...)
}

func feed(t *testing.T, s *session, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if err := s.frame(f); err != nil {
			t.Fatalf("frame %s: %v", f, err)
		}
	}
}

// drainIDs takes every buffered message's id.
func drainIDs(c *Client) (ids []string) {
	for len(c.msgs) > 0 {
		ids = append(ids, (<-c.msgs).ID)
	}
	return ids
}

func TestHistoryCallTakesItsWindow(t *testing.T) {
	c, s := bare(t, testConfig("node-a", "ws://relay"))
	h := &historyCall{ref: "req", since: 100, until: 200, limit: 2, done: make(chan struct{})}
	s.hist = h
	feed(t, s,
		frameTS(TypeEntryAnnounce, "in1", "b", "", "{}", 150),
		frameTS(TypeEntryAnnounce, "late", "b", "", "{}", 200),
		frameTS(TypeEntryRequest, "direct", "b", "node-a", "{}", 150),
		frameTS(TypeEntryAnnounce, "nots", "b", "", "{}", 0),
		frameTS(TypeEntryAnnounce, "in2", "b", "", "{}", 100),
		frameTS(TypeEntryAnnounce, "over", "b", "", "{}", 120), // over the limit: the relay answers a millisecond whole
		frameTS(TypeRelayHistoryEnd, "e0", RelayID, "node-a", `{"ref":"other","count":9}`, 0),
	)
	select {
	case <-h.done:
		t.Fatal("ended by another request's RelayHistoryEnd")
	default:
	}
	feed(t, s, frameTS(TypeRelayHistoryEnd, "e1", RelayID, "node-a",
		`{"ref":"req","count":3,"complete":false,"next_since_ms":121,"oldest_ms":50}`, 0))
	<-h.done
	if h.err != nil || len(h.msgs) != 3 || h.msgs[0].ID != "in1" || h.msgs[1].ID != "in2" || h.msgs[2].ID != "over" ||
		h.end.Count != 3 || h.end.Complete || h.end.NextSinceMS != 121 || h.end.OldestMS != 50 {
		t.Fatalf("history call %+v", h)
	}
	if got := drainIDs(c); len(got) != 3 || got[0] != "late" || got[1] != "direct" || got[2] != "nots" {
		t.Fatalf("delivered %v", got)
	}
	// What History returned counts as received.
	s.hist = nil
	feed(t, s, frameTS(TypeEntryAnnounce, "in1", "b", "", "{}", 150))
	if got := drainIDs(c); len(got) != 0 || c.Stats().Duplicates != 1 {
		t.Fatalf("delivered %v again, stats %+v", got, c.Stats())
	}
}

func TestHistoryCallEndsWithItsRelayError(t *testing.T) {
	c, s := bare(t, testConfig("node-a", "ws://relay"))
	h := &historyCall{ref: "req", since: 1, limit: 10, done: make(chan struct{})}
	s.hist = h
	feed(t, s,
		message.RelayError(RelayID, "node-a", CodeRecipientUnknown, "x", "other"),
		message.RelayError(RelayID, "node-a", CodeInvalidMessage, "no history", "req"))
	<-h.done
	var re *RelayError
	if !errors.As(h.err, &re) || re.Code != CodeInvalidMessage {
		t.Fatalf("history err %v", h.err)
	}
	if m := <-c.msgs; m.Err == nil || m.Err.Ref != "other" {
		t.Fatalf("delivered %+v", m)
	}
	// A session that ends fails the call.
	h2 := &historyCall{ref: "req2", done: make(chan struct{})}
	s.hist = h2
	s.mu.Lock()
	h2.finish(nil, ErrConnectionLost)
	s.mu.Unlock()
	if !errors.Is(h2.err, ErrConnectionLost) {
		t.Fatal(h2.err)
	}
}

func TestResumeMarks(t *testing.T) {
	cfg := testConfig("node-a", "ws://relay/ws?x=1")
	cfg.Resume = true
	cfg.Since = time.UnixMilli(5_000)
	cfg.ResumeMargin = time.Second
	c, s := bare(t, cfg)
	if got := c.since(cfg.URLs[0]); got != 5_000 {
		t.Fatalf("first since %d, want Config.Since", got)
	}
	// During a replay only ts counts; its RelayHistoryEnd (ref "") makes
	// the connection live.
	s.replaying = true
	feed(t, s, frameTS(TypeEntryAnnounce, "a", "b", "", "{}", 90_000))
	if c.heard.Load() != 0 || c.since(cfg.URLs[0]) != 89_000 {
		t.Fatalf("heard %d since %d during a replay", c.heard.Load(), c.since(cfg.URLs[0]))
	}
	feed(t, s, frameTS(TypeRelayHistoryEnd, "e", RelayID, "node-a", `{"ref":"","count":1,"complete":true}`, 0))
	// The live broadcasts the relay held during the replay follow it: not
	// heard yet until one as new as the end arrives (nor does a ping
	// count meanwhile: session.alive; it may overtake them).
	if s.replaying || !s.draining || c.heard.Load() != 0 {
		t.Fatalf("after the replay's end: replaying %v, draining %v, heard %d", s.replaying, s.draining, c.heard.Load())
	}
	feed(t, s, frameTS(TypeEntryAnnounce, "held", "b", "", "{}", 95_000))
	if !s.draining || c.heard.Load() != 0 {
		t.Fatalf("a held broadcast ended the drain: heard %d", c.heard.Load())
	}
	now := time.Now().UnixMilli()
	feed(t, s, frameTS(TypeEntryAnnounce, "live", "b", "", "{}", now))
	if s.draining || c.heard.Load() < now-1000 {
		t.Fatalf("a live broadcast did not end the drain: heard %d", c.heard.Load())
	}
	<-c.msgs
	<-c.msgs
	since := c.since(cfg.URLs[0])
	if since < now-2000 || since > now {
		t.Fatalf("since %d, want about now-1s (%d)", since, now-1000)
	}
	u, err := c.connectURL(c.urls[0], since)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.Parse(u)
	if v := q.Query(); v.Get("x") != "1" || v.Get("node_id") != "node-a" || v.Get("since_ms") == "" || v.Has("jwt") {
		t.Fatalf("connect URL %s", u)
	}
	// Never back: the resume point only moves forward.
	c.heard.Store(0)
	if c.since(cfg.URLs[0]) != since {
		t.Fatalf("since moved back to %d", c.since(cfg.URLs[0]))
	}
	// To another relay than the last one: FailoverMargin.
	c.lastURL = cfg.URLs[0]
	cfg.FailoverMargin = time.Minute
	c.cfg.FailoverMargin = time.Minute
	if got := c.since("ws://other/ws"); got != since+1000-60_000 {
		t.Fatalf("since on failover %d, want %d (last heard - FailoverMargin)", got, since+1000-60_000)
	}
	if c.since(cfg.URLs[0]) != since {
		t.Fatal("the same relay again: ResumeMargin")
	}
	cfg.Resume = false
	if c, _ := bare(t, cfg); c.since(cfg.URLs[0]) != 0 {
		t.Fatal("since_ms without Resume")
	}
}

func TestFullBufferIsSlowReader(t *testing.T) {
	cfg := testConfig("node-a", "ws://relay")
	cfg.Buffer = 2
	c, s := bare(t, cfg)
	feed(t, s, frameTS(TypeEntryAnnounce, "1", "b", "", "{}", 0), frameTS(TypeEntryAnnounce, "2", "b", "", "{}", 0))
	if err := s.frame(frameTS(TypeEntryAnnounce, "3", "b", "", "{}", 0)); !errors.Is(err, ErrSlowReader) {
		t.Fatalf("third frame: %v", err)
	}
	drainIDs(c)
	feed(t, s, frameTS(TypeEntryAnnounce, "3", "b", "", "{}", 0)) // not a duplicate: it was never delivered
	if got := drainIDs(c); len(got) != 1 || got[0] != "3" {
		t.Fatalf("delivered %v", got)
	}
}

func TestKeyHandshake(t *testing.T) {
	key, keyID := newKey(t)
	cfg := testConfig("", "ws://relay")
	cfg.NodeKey = key
	_, s := bare(t, cfg)
	s.bound, s.auth, s.nodeID = false, authKey, keyID
	if err := s.frame(frameTS(TypeRelayAuthOk, "ok", RelayID, keyID, `{"node_id":"`+keyID+`"}`, 0)); err == nil {
		t.Fatal("RelayAuthOk before the challenge accepted")
	}
	ch := nodeauth.NewChallenge("12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK")
	p, _ := json.Marshal(ch)
	feed(t, s, frameTS(TypeRelayChallenge, "c", RelayID, keyID, string(p), 0))
	env, err := message.Parse((<-s.out).data)
	if err != nil || env.Type != TypeNodeAuth || env.Sender != keyID || env.Recipient != RelayID {
		t.Fatalf("NodeAuth %+v %v", env, err)
	}
	var a nodeauth.AuthPayload
	if err := json.Unmarshal(env.Payload, &a); err != nil {
		t.Fatal(err)
	}
	if err := ch.Verify(keyID, a.Proof(), time.Now()); err != nil {
		t.Fatalf("proof refused: %v", err)
	}
	if s.frame(frameTS(TypeRelayChallenge, "c2", RelayID, keyID, string(p), 0)) == nil {
		t.Fatal("a second challenge accepted")
	}
	feed(t, s, frameTS(TypeRelayAuthOk, "ok", RelayID, keyID, `{"node_id":"`+keyID+`"}`, 0))
	if !s.bound {
		t.Fatal("not bound after RelayAuthOk")
	}
}

func TestDrainMessage(t *testing.T) {
	_, s := bare(t, testConfig("node-a", "ws://relay"))
	err := s.frame(frameTS(TypeRelayDraining, "d", RelayID, "", `{"urls":["ws://b/ws","wss://c/ws"]}`, 0))
	if !errors.Is(err, ErrDraining) || len(s.drainURLs) != 2 {
		t.Fatalf("err %v urls %v", err, s.drainURLs)
	}
}

func TestFollowDrainURLs(t *testing.T) {
	c, _ := bare(t, testConfig("node-a", "wss://a/ws", "wss://b/ws"))
	// Only wss, new URLs are added; an unusable list moves to the next URL.
	if i := c.follow(0, []string{"ws://plain/ws", "http://x", "wss://a/ws"}); i != 1 {
		t.Fatalf("follow without usable URLs: %d", i)
	}
	i := c.follow(0, []string{"wss://c/ws", "wss://b/ws"})
	if (i != 1 && i != 2) || len(c.urls) != 3 || c.urls[2] != "wss://c/ws" {
		t.Fatalf("follow: %d %v", i, c.urls)
	}
	var many []string
	for i := range 2 * MaxURLs {
		many = append(many, "wss://r"+string(rune('a'+i%26))+string(rune('a'+i/26))+"/ws")
	}
	c.follow(0, many)
	if len(c.urls) != MaxURLs {
		t.Fatalf("%d URLs", len(c.urls))
	}
}

func TestBackoffBounds(t *testing.T) {
	c, _ := bare(t, testConfig("node-a", "ws://relay"))
	c.cfg.BackoffMin, c.cfg.BackoffMax = 100*time.Millisecond, time.Second
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 20 {
			if d := c.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
	if d := c.backoff(1 << 20); d > time.Second {
		t.Fatalf("backoff overflow: %v", d)
	}
}
