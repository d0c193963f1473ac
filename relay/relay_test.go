package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/testnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hello binds a client's node id with a NodeAnnounce that everyone else
// receives, and drains it from the others so tests start clean.
func hello(t *testing.T, r *testnet.Standalone, c *testnet.Client, others ...*testnet.Client) {
	t.Helper()
	c.Send("NodeAnnounce", "hello-"+c.NodeID, "", `{}`)
	testnet.Eventually(t, testnet.Wait, c.NodeID+" bound", func() bool {
		return slices.Contains(r.Router.LocalNodes(), c.NodeID)
	})
	for _, o := range others {
		if m := o.Expect("NodeAnnounce"); m.Sender != c.NodeID {
			t.Fatalf("%s got NodeAnnounce of %s, want %s", o.NodeID, m.Sender, c.NodeID)
		}
	}
}

func TestPlainHTTPGets426(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	for _, path := range []string{"/", "/ws"} {
		resp, err := http.Get("http://" + r.WS.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired || strings.TrimSpace(string(body)) != "Expected Upgrade: websocket" {
			t.Fatalf("GET %s: %d %q, want 426 %q", path, resp.StatusCode, body, "Expected Upgrade: websocket")
		}
	}
}

func TestBroadcastReachesOthersNotSender(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	a, b, c := testnet.Dial(t, r.URL, "node-a"), testnet.Dial(t, r.URL, "node-b"), testnet.Dial(t, r.URL, "node-c")
	hello(t, r, a)
	hello(t, r, b, a)
	hello(t, r, c, a, b)

	payload := `{"entry":{"id":"e1","data":"x"},"n":[1,2.50,-0e3,"\u00e9"]}`
	a.Send("EntryAnnounce", "m1", "", payload)
	for _, o := range []*testnet.Client{b, c} {
		m := o.Expect("EntryAnnounce")
		if m.Sender != "node-a" || m.ID != "m1" || string(m.Payload) != payload {
			t.Fatalf("%s got %s", o.NodeID, m.Raw)
		}
	}
	// Causal barrier: b's direct to a is sent after b saw m1, so a's next
	// message would be its own m1 if the relay echoed it.
	b.Send("EntryRequest", "m2", "node-a", `{}`)
	if m := a.Next(); m.ID != "m2" {
		t.Fatalf("node-a got %s %s first, want only b's m2 (no echo of its own broadcast)", m.Type, m.ID)
	}
}

func TestEchoDeliversBroadcastToSender(t *testing.T) {
	r := testnet.StartStandalone(t, func(c *relay.Config) { c.Echo = true }, nil)
	a := testnet.Dial(t, r.URL, "node-a")
	a.Send("EntryAnnounce", "m1", "", `{"k":1}`)
	if m := a.Expect("EntryAnnounce"); m.ID != "m1" {
		t.Fatalf("echo: got %s", m.Raw)
	}
}

func TestPayloadAndFrameForwardedByteForByte(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	a, b := testnet.Dial(t, r.URL, "node-a"), testnet.Dial(t, r.URL, "node-b")
	hello(t, r, a)
	hello(t, r, b, a)
	raw := []byte("{ \"payload\" : {\"z\":1,  \"a\":[true,null,1e400, \"\\ud83d\\ude00\"]} ,\n\"extra\":{\"kept\":true}, \"message_type\":\"LedgerSyncResponse\",\"sender_id\":\"node-a\",\"message_id\":\"x-1\",\"recipient_id\":\"\"}")
	a.SendRaw(raw)
	// Byte for byte but for the federation ts every broadcast carries
	// (inserted as the first key where it enters the federation).
	m := b.Expect("LedgerSyncResponse")
	ts := regexp.MustCompile(`^\{"ts":[1-9][0-9]{12},`).Find(m.Raw)
	if ts == nil || !bytes.Equal(append([]byte("{"), m.Raw[len(ts):]...), raw) {
		t.Fatalf("frame changed on the way:\n got %s\nwant %s with a ts", m.Raw, raw)
	}
	// A direct message carries no ts: byte for byte.
	direct := bytes.Replace(raw, []byte(`"recipient_id":""`), []byte(`"recipient_id":"node-b"`), 1)
	direct = bytes.Replace(direct, []byte(`x-1`), []byte(`x-2`), 1)
	a.SendRaw(direct)
	if m := b.Expect("LedgerSyncResponse"); !bytes.Equal(m.Raw, direct) {
		t.Fatalf("direct frame changed on the way:\n got %s\nwant %s", m.Raw, direct)
	}
}

func TestMissingMessageIDIsAssigned(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	a, b := testnet.Dial(t, r.URL, "node-a"), testnet.Dial(t, r.URL, "node-b")
	hello(t, r, a)
	hello(t, r, b, a)
	a.SendRaw([]byte(`{"message_type":"EntryAnnounce","sender_id":"node-a","payload":{"v":"keep me"}}`))
	a.SendRaw([]byte(`{"message_type":"EntryAnnounce","sender_id":"node-a","message_id":null,"payload":{"v":2}}`))
	m1, m2 := b.Expect("EntryAnnounce"), b.Expect("EntryAnnounce")
	if m1.ID == "" || m2.ID == "" || m1.ID == m2.ID {
		t.Fatalf("assigned ids %q and %q: want two distinct non-empty ids", m1.ID, m2.ID)
	}
	if string(m1.Payload) != `{"v":"keep me"}` || string(m2.Payload) != `{"v":2}` {
		t.Fatalf("payloads changed: %s / %s", m1.Payload, m2.Payload)
	}
}

func TestDirectOnlyToRecipient(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	a, b, c := testnet.Dial(t, r.URL, "node-a"), testnet.Dial(t, r.URL, "node-b"), testnet.Dial(t, r.URL, "node-c")
	hello(t, r, a)
	hello(t, r, b, a)
	hello(t, r, c, a, b)
	a.Send("EntryRequest", "d1", "node-b", `{"want":"e1"}`)
	if m := b.Expect("EntryRequest"); m.ID != "d1" || m.Recipient != "node-b" {
		t.Fatalf("node-b got %s", m.Raw)
	}
	// Barrier: a broadcast from a after the direct; c must see it first.
	a.Send("EntryAnnounce", "after", "", `{}`)
	if m := c.Next(); m.ID != "after" {
		t.Fatalf("node-c got %s %s, want only the later broadcast", m.Type, m.ID)
	}
}

func TestUnknownRecipientGetsError(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	a := testnet.Dial(t, r.URL, "node-a")
	a.Send("EntryRequest", "d1", "nobody", `{}`)
	if p := a.ExpectError("recipient_unknown"); p.Ref != "d1" {
		t.Fatalf("ref %q, want d1", p.Ref)
	}
	// The session goes on.
	a.Send("NodeListRequest", "l1", "", `{}`)
	a.Expect("NodeListResponse")
}

func TestNodeListRequestAnsweredByRelay(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	a := testnet.Dial(t, r.URL+"?node_id=node-a", "node-a")
	b := testnet.Dial(t, r.URL, "node-b")
	hello(t, r, b, a)
	c := testnet.Dial(t, r.URL+"?node_id=node-c", "node-c")
	testnet.Eventually(t, testnet.Wait, "node-c bound", func() bool { return len(r.Router.LocalNodes()) == 3 })

	b.Send("NodeListRequest", "l1", "", `{}`)
	for _, o := range []*testnet.Client{a, c} { // forwarded as a broadcast too
		o.Expect("NodeListRequest")
	}
	m := b.Expect("NodeListResponse")
	var p struct {
		Nodes []string `json:"nodes"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if m.Recipient != "node-b" || !slices.Equal(p.Nodes, []string{"node-a", "node-b", "node-c"}) {
		t.Fatalf("NodeListResponse to %q with %v, want to node-b with [node-a node-b node-c]", m.Recipient, p.Nodes)
	}
}

func TestBadInputGetsRelayErrorAndSessionGoesOn(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	a := testnet.Dial(t, r.URL, "node-a")
	hello(t, r, a)
	long := strings.Repeat("x", 300)
	cases := []struct {
		name, frame, code, ref string
	}{
		{"not json", `{"message_type":`, "invalid_json", ""},
		{"trailing garbage", `{"message_type":"A","sender_id":"node-a"} x`, "invalid_json", ""},
		{"array", `[1,2]`, "invalid_message", ""},
		{"missing type", `{"sender_id":"node-a","message_id":"r1","payload":{}}`, "invalid_message", "r1"},
		{"empty type", `{"message_type":"","sender_id":"node-a","payload":{}}`, "invalid_message", ""},
		{"missing sender", `{"message_type":"A","message_id":"r2","payload":{}}`, "invalid_message", "r2"},
		{"sender not a string", `{"message_type":"A","sender_id":7,"payload":{}}`, "invalid_message", ""},
		{"recipient not a string", `{"message_type":"A","sender_id":"node-a","recipient_id":[],"payload":{}}`, "invalid_message", ""},
		{"oversize sender", `{"message_type":"A","sender_id":"` + long + `","payload":{}}`, "too_large", ""},
		{"duplicate sender key", `{"message_type":"A","sender_id":"node-a","sender_id":"node-b","payload":{}}`, "invalid_message", ""},
		{"other sender", `{"message_type":"A","message_id":"r3","sender_id":"node-b","payload":{}}`, "sender_mismatch", "r3"},
	}
	for _, tc := range cases {
		a.SendRaw([]byte(tc.frame))
		p := a.ExpectError(tc.code)
		if p.Ref != tc.ref || p.Message == "" {
			t.Errorf("%s: ref %q message %q, want ref %q and a message", tc.name, p.Ref, p.Message, tc.ref)
		}
	}
	a.Send("NodeListRequest", "still-here", "", `{}`)
	a.Expect("NodeListResponse")
}

func TestDuplicateDeliveredOnce(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	a, b := testnet.Dial(t, r.URL, "node-a"), testnet.Dial(t, r.URL, "node-b")
	hello(t, r, a)
	hello(t, r, b, a)
	a.Send("EntryAnnounce", "dup", "", `{"n":1}`)
	a.Send("EntryAnnounce", "dup", "", `{"n":2}`)
	a.Send("EntryAnnounce", "next", "", `{}`)
	if m := b.Next(); m.ID != "dup" || string(m.Payload) != `{"n":1}` {
		t.Fatalf("got %s", m.Raw)
	}
	if m := b.Next(); m.ID != "next" {
		t.Fatalf("got %s %s after the first copy, want the next message (duplicate dropped)", m.Type, m.ID)
	}
	// The same message_id from another sender is another message.
	b.Send("EntryAnnounce", "dup", "", `{}`)
	if m := a.Next(); m.ID != "dup" || m.Sender != "node-b" {
		t.Fatalf("got %s", m.Raw)
	}
}

func TestTakeoverClosesOlderConnection(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	old := testnet.Dial(t, r.URL, "node-a")
	watcher := testnet.Dial(t, r.URL, "node-w")
	hello(t, r, old)
	hello(t, r, watcher, old)
	newer := testnet.Dial(t, r.URL+"?node_id=node-a", "node-a")
	old.ExpectClose(relay.CloseReplaced)
	watcher.Send("EntryRequest", "to-a", "node-a", `{}`)
	if m := newer.Expect("EntryRequest"); m.ID != "to-a" {
		t.Fatalf("got %s", m.Raw)
	}
	if got := r.Router.LocalNodes(); !slices.Equal(got, []string{"node-a", "node-w"}) {
		t.Fatalf("local nodes %v after takeover", got)
	}
}

func TestNodeLeavesOnDisconnect(t *testing.T) {
	// Without mailboxes (a node that left is otherwise kept a mailbox:
	// testnet/mailbox_test.go).
	r := testnet.StartStandalone(t, func(c *relay.Config) { c.MailboxMax = 0 }, nil)
	a, b := testnet.Dial(t, r.URL, "node-a"), testnet.Dial(t, r.URL, "node-b")
	hello(t, r, a)
	hello(t, r, b, a)
	b.Close()
	testnet.Eventually(t, testnet.Wait, "node-b gone", func() bool { return len(r.Router.LocalNodes()) == 1 })
	a.Send("EntryRequest", "x", "node-b", `{}`)
	a.ExpectError("recipient_unknown")
}

func TestRateLimitThenFloodClose(t *testing.T) {
	r := testnet.StartStandalone(t, func(c *relay.Config) { c.RateLimit, c.RateBurst = 5, 10 }, nil)
	a, b := testnet.Dial(t, r.URL, "node-a"), testnet.Dial(t, r.URL, "node-b")
	hello(t, r, b)
	// 11 at once: the burst passes, the 11th is refused with one error.
	for i := range 11 {
		a.Send("EntryAnnounce", fmt.Sprint("r", i), "", `{}`)
	}
	if p := a.ExpectError("rate_limited"); p.Ref == "" {
		t.Fatalf("rate_limited without ref")
	}
	got := 0
	for got < 10 {
		if m := b.Expect("EntryAnnounce"); m.Sender == "node-a" {
			got++
		}
	}
	// A sustained flood (far over the rate) ends the session with 1008.
	for i := range 400 {
		if err := a.WriteFrame(websocket.TextMessage, testnet.Build("EntryAnnounce", fmt.Sprint("f", i), "node-a", "", "")); err != nil {
			break
		}
	}
	a.ExpectClose(websocket.ClosePolicyViolation)
}

func TestShutdownNotHeldByClientThatDoesNotRead(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}
	stalled, _, err := d.Dial(r.URL+"?node_id=stalled", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	a := testnet.Dial(t, r.URL, "node-a")
	a.Send("NodeAnnounce", "a0", "", "")
	testnet.Eventually(t, testnet.Wait, "both bound", func() bool { return len(r.Router.LocalNodes()) == 2 })
	big := `"` + strings.Repeat("x", 60_000) + `"`
	for i := range 130 { // ~7.8 MB: past the socket buffers, under the 8 MiB queue limit
		a.Send("EntryResponse", fmt.Sprint("big", i), "stalled", big)
	}
	a.Send("NodeListRequest", "sync", "", "")
	a.Expect("NodeListResponse") // every big message has been routed
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.WS.Close(ctx); err != nil {
		t.Fatalf("shutdown with a client that does not read: %v after %v", err, time.Since(start))
	}
	a.ExpectClose(websocket.CloseGoingAway)
	t.Logf("shutdown took %v", time.Since(start).Round(time.Millisecond))
}

func TestRetryAfterRecipientUnknownIsDelivered(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	a := testnet.Dial(t, r.URL, "node-a")
	a.Send("EntryRequest", "d1", "node-b", `{"try":1}`)
	a.ExpectError("recipient_unknown")
	b := testnet.Dial(t, r.URL+"?node_id=node-b", "node-b")
	testnet.Eventually(t, testnet.Wait, "node-b bound", func() bool { return len(r.Router.LocalNodes()) == 2 })
	a.Send("EntryRequest", "d1", "node-b", `{"try":2}`)
	if m := b.Expect("EntryRequest"); m.ID != "d1" || string(m.Payload) != `{"try":2}` {
		t.Fatalf("retry: got %s", m.Raw)
	}
}

func TestInvalidNodeIDQueryClosesWith1008(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	for _, q := range []string{"%FF", strings.Repeat("n", 257)} {
		c := testnet.Dial(t, r.URL+"?node_id="+q, "bad")
		c.ExpectClose(websocket.ClosePolicyViolation)
	}
	if n := len(r.Router.LocalNodes()); n != 0 {
		t.Fatalf("%d nodes bound from invalid node_id", n)
	}
}
