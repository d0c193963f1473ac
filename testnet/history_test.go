package testnet

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/transport"
)

// historyEnd is a RelayHistoryEnd payload.
type historyEnd struct {
	Ref       string `json:"ref"`
	Count     int    `json:"count"`
	Complete  bool   `json:"complete"`
	NextSince int64  `json:"next_since_ms"`
	Oldest    int64  `json:"oldest_ms"`
}

// tsOf reads the federation ts of a received message.
func tsOf(t *testing.T, m Msg) int64 {
	t.Helper()
	var v struct {
		TS int64 `json:"ts"`
	}
	if err := json.Unmarshal(m.Raw, &v); err != nil || v.TS <= 0 {
		t.Fatalf("message without a federation ts: %s", m.Raw)
	}
	return v.TS
}

// collect reads messages until RelayHistoryEnd and returns them and it.
func collect(t *testing.T, c *Client) ([]Msg, historyEnd) {
	t.Helper()
	var got []Msg
	for {
		m := c.Next()
		if m.Type == message.TypeRelayError {
			t.Fatalf("%s: RelayError while collecting history: %s", c.NodeID, m.Payload)
		}
		if m.Type == relay.TypeRelayHistoryEnd {
			var e historyEnd
			if err := json.Unmarshal(m.Payload, &e); err != nil {
				t.Fatal(err)
			}
			return got, e
		}
		got = append(got, m)
	}
}

// standaloneWithHistory is a standalone relay with a history store.
func standaloneWithHistory(t *testing.T) (*Standalone, *history.Store) {
	t.Helper()
	store := OpenHistory(t)
	return StartStandalone(t, nil, nil, relay.WithHistory(store)), store
}

func TestHistoryRequest(t *testing.T) {
	r, _ := standaloneWithHistory(t)
	a := Dial(t, r.URL+"?node_id=a", "a")
	b := Dial(t, r.URL+"?node_id=b", "b")
	r.WaitNodes(t, "a", "b")
	var live []Msg
	for i := range 50 {
		a.Send("EntryAnnounce", fmt.Sprint("e", i), "", fmt.Sprintf(`{"n": %d, "x": [1, 2.50]}`, i))
		live = append(live, b.Expect("EntryAnnounce"))
	}
	b.Send("EntryAnnounce", "b-own", "", `{}`) // the requester's own: never in its answer
	a.Expect("EntryAnnounce")
	since := tsOf(t, live[0])

	// The whole window: the original frames, byte for byte as delivered
	// live, in ts order, then the end.
	b.Send(relay.TypeHistoryRequest, "h1", "relay", fmt.Sprintf(`{"since_ms":%d}`, since))
	got, end := collect(t, b)
	if len(got) != 50 || end.Ref != "h1" || end.Count != 50 || !end.Complete || end.NextSince != 0 || end.Oldest != since {
		t.Fatalf("got %d messages, end %+v; want 50, complete, oldest %d", len(got), end, since)
	}
	// Within one millisecond the order is by message key, not arrival.
	byID := map[string]string{}
	for _, m := range live {
		byID[m.ID] = string(m.Raw)
	}
	for i := range got {
		if string(got[i].Raw) != byID[got[i].ID] {
			t.Fatalf("message %s: history %s, live %s", got[i].ID, got[i].Raw, byID[got[i].ID])
		}
		if i > 0 && tsOf(t, got[i]) < tsOf(t, got[i-1]) {
			t.Fatalf("history not in ts order at %d", i)
		}
	}
	// Before the store existed: not complete.
	b.Send(relay.TypeHistoryRequest, "h0", "relay", `{"since_ms":0}`)
	if _, end := collect(t, b); end.Complete || end.Count != 50 {
		t.Fatalf("since 0: %+v, want 50 and not complete (the store does not reach back)", end)
	}
	// limit cuts, next_since_ms continues without loss or duplicate.
	b.Send(relay.TypeHistoryRequest, "h2", "relay", fmt.Sprintf(`{"since_ms":%d,"limit":20}`, since))
	first, end := collect(t, b)
	// An answer is cut between two ts: at most the limit.
	if len(first) == 0 || len(first) > 20 || end.Complete || end.NextSince == 0 {
		t.Fatalf("limit 20: %d messages, %+v", len(first), end)
	}
	time.Sleep(500 * time.Millisecond) // the per-connection request rate (2/s)
	b.Send(relay.TypeHistoryRequest, "h3", "relay", fmt.Sprintf(`{"since_ms":%d}`, end.NextSince))
	rest, end := collect(t, b)
	if len(first)+len(rest) != 50 || !end.Complete {
		t.Fatalf("continued: %d + %d messages, %+v", len(first), len(rest), end)
	}
	ids := map[string]bool{}
	for _, m := range append(first, rest...) {
		ids[m.ID] = true
	}
	if len(ids) != 50 {
		t.Fatalf("continued answers hold %d distinct messages, want 50", len(ids))
	}
	// until_ms bounds the window.
	time.Sleep(500 * time.Millisecond)
	b.Send(relay.TypeHistoryRequest, "h4", "relay", fmt.Sprintf(`{"since_ms":%d,"until_ms":%d}`, since, tsOf(t, live[10])))
	if got, end := collect(t, b); len(got) == 0 || len(got) > 10 || end.Count != len(got) {
		t.Fatalf("until: %d messages, %+v", len(got), end)
	}
}

func TestHistoryRequestBadInput(t *testing.T) {
	r, _ := standaloneWithHistory(t)
	b := Dial(t, r.URL+"?node_id=b", "b")
	for i, p := range []string{
		`{"since_ms":10,"until_ms":5}`,
		`{"since_ms":10,"until_ms":10}`,
		`{"since_ms":-1}`,
		`{"since_ms":1e30}`,
		`{"since_ms":99999999999999999999999}`,
		`{"since_ms":"0"}`,
		`{"since_ms":1.5}`,
		`{"until_ms":5}`,
		`{"since_ms":0,"limit":0}`,
		`{"since_ms":0,"limit":10001}`,
		`{"since_ms":0,"limit":-3}`,
		`[]`,
		`"since"`,
	} {
		if i >= 4 {
			time.Sleep(520 * time.Millisecond) // stay within the request rate (2/s, burst 4)
		}
		id := fmt.Sprint("bad", i)
		b.Send(relay.TypeHistoryRequest, id, "relay", p)
		if e := b.ExpectError("invalid_message"); e.Ref != id {
			t.Fatalf("%s: error for %q", p, e.Ref)
		}
	}
	// Unbound: auth_required; the session goes on.
	u := Dial(t, r.URL, "u")
	u.Send(relay.TypeHistoryRequest, "hu", "relay", `{"since_ms":0}`)
	u.ExpectError("auth_required")
	// Rate: more than 4 at once get rate_limited.
	time.Sleep(2100 * time.Millisecond)
	for i := range 6 {
		b.Send(relay.TypeHistoryRequest, fmt.Sprint("r", i), "relay", `{"since_ms":0}`)
	}
	ends, limited := 0, 0
	for ends+limited < 6 {
		switch m := b.Next(); m.Type {
		case relay.TypeRelayHistoryEnd:
			ends++
		case "RelayError":
			limited++
		}
	}
	if limited == 0 || ends == 0 {
		t.Fatalf("6 requests at once: %d answered, %d rate limited", ends, limited)
	}
}

// TestResumeOnAnotherRelay: a node that was away reconnects to another
// relay of the federation with ?since_ms= and gets everything it missed,
// then live traffic, with no gap and no duplicate across the switch while
// a sender keeps broadcasting.
func TestResumeOnAnotherRelay(t *testing.T) {
	h := StartHarness(t, 3, Full)
	s := Dial(t, h.Relays[2].URL+"?node_id=sender", "sender")
	x := Dial(t, h.Relays[0].URL+"?node_id=x", "x")
	h.WaitNodes(10*time.Second, "sender", "x")
	for i := range 5 {
		s.Send("EntryAnnounce", fmt.Sprint("m", i), "", "")
	}
	var last Msg
	for range 5 {
		last = x.Expect("EntryAnnounce")
	}
	x.Close()
	for i := 5; i < 200; i++ {
		s.Send("EntryAnnounce", fmt.Sprint("m", i), "", "")
	}
	// Keep sending while x resumes.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	const extra = 300
	wg.Go(func() {
		for i := 200; i < 200+extra; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Send("EntryAnnounce", fmt.Sprint("m", i), "", "")
			time.Sleep(time.Millisecond)
		}
	})
	defer func() { close(stop); wg.Wait() }()
	// Relay 1 must have what was sent while x was away.
	Eventually(t, 10*time.Second, "relay 1 stored m199", func() bool {
		return h.Relays[1].History.Stats().Count >= 200
	})
	x2 := Dial(t, h.Relays[1].URL+fmt.Sprintf("?node_id=x&since_ms=%d", tsOf(t, last)), "x")
	// m0..m4 may come again (since_ms is inclusive, and they may share
	// m4's millisecond): the node drops those by id. m5 on: exactly once.
	seen := map[string]int{}
	missing := 200 + extra - 5
	ended := false
	for missing > 0 {
		m := x2.Next()
		switch {
		case m.Type == relay.TypeRelayHistoryEnd:
			var e historyEnd
			json.Unmarshal(m.Payload, &e)
			if ended || e.Ref != "" || e.Count < 195 {
				t.Fatalf("RelayHistoryEnd %+v (second: %v)", e, ended)
			}
			ended = true
			continue
		case m.Type != "EntryAnnounce":
			t.Fatalf("unexpected %s", m.Raw)
		}
		var n int
		fmt.Sscanf(m.ID, "m%d", &n)
		if seen[m.ID]++; seen[m.ID] > 1 && n >= 5 {
			t.Fatalf("%s delivered twice", m.ID)
		}
		if n >= 5 && seen[m.ID] == 1 {
			missing--
		}
	}
	if !ended {
		t.Fatal("no RelayHistoryEnd")
	}
	for i := 5; i < 200+extra; i++ {
		if seen[fmt.Sprint("m", i)] != 1 {
			t.Fatalf("m%d delivered %d times", i, seen[fmt.Sprint("m", i)])
		}
	}
}

// TestResumeWithKeyID: a key id resuming with ?since_ms= gets its
// challenge, RelayAuthOk, the replay, RelayHistoryEnd, then live traffic,
// in that order.
func TestResumeWithKeyID(t *testing.T) {
	r, _ := standaloneWithHistory(t)
	a := Dial(t, r.URL+"?node_id=a", "a")
	since := time.Now().UnixMilli()
	a.Send("EntryAnnounce", "before", "", `{}`)
	_, k, _ := ed25519.GenerateKey(nil)
	kid := nodeauth.KeyID(k.Public().(ed25519.PublicKey))
	c := Dial(t, r.URL+fmt.Sprintf("?node_id=%s&since_ms=%d", kid, since), kid)
	var ch nodeauth.Challenge
	json.Unmarshal(c.Expect("RelayChallenge").Payload, &ch)
	_, p := ch.Answer(k, time.Now())
	b, _ := json.Marshal(p)
	c.Send("NodeAuth", "auth", "relay", string(b))
	c.Expect("RelayAuthOk")
	if m := c.Expect("EntryAnnounce"); m.ID != "before" {
		t.Fatalf("replay gave %s", m.ID)
	}
	c.Expect(relay.TypeRelayHistoryEnd)
	a.Send("EntryAnnounce", "after", "", `{}`)
	if m := c.Expect("EntryAnnounce"); m.ID != "after" {
		t.Fatalf("live gave %s", m.ID)
	}
}

// TestResumeBacklogLargerThanSendQueue: live broadcasts held while a
// resume replays (the backlog) may be more than the connection's send
// queue takes at once; they follow the replay paced, not as one burst that
// closes the node as a slow consumer. The node reads slowly (8 KiB
// broadcasts, so that the sockets' buffers fill), and its replay of 1,000
// lasts while 1,000 live ones arrive, against a send queue of 600 frames.
func TestResumeBacklogLargerThanSendQueue(t *testing.T) {
	store := OpenHistory(t)
	r := StartStandalone(t, nil, func(c *transport.Config) { c.SendQueueFrames = 600 }, relay.WithHistory(store))
	s := Dial(t, r.URL+"?node_id=s", "s")
	r.WaitNodes(t, "s")
	const stored, live = 1000, 1000
	payload := `{"data":"` + strings.Repeat("x", 8<<10) + `"}`
	for i := range stored {
		s.Send("EntryAnnounce", fmt.Sprint("old-", i), "", payload)
	}
	Eventually(t, 10*time.Second, "the stored broadcasts", func() bool { return store.Stats().Count >= stored })

	conn, _, err := websocket.DefaultDialer.Dial(r.URL+"?node_id=x&since_ms=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r.WaitNodes(t, "x")
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range live {
			s.Send("EntryAnnounce", fmt.Sprint("live-", i), "", payload)
			time.Sleep(time.Millisecond)
		}
	})
	defer wg.Wait()
	got := map[string]bool{}
	for len(got) < stored+live {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d broadcasts: %v", len(got), stored+live, err)
		}
		var m Msg
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "EntryAnnounce" {
			if got[m.ID] {
				t.Fatalf("%s twice", m.ID)
			}
			got[m.ID] = true
			time.Sleep(time.Millisecond) // a slow reader
		}
	}
}
