package relay

// Router unit tests: the router driven through its ports with in-memory
// connections and an in-memory federation, no sockets. The same behaviours
// over real WebSockets and libp2p are tested in relay_test.go, testnet/
// and node/.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// memConn is a Conn that records what the router sends and how it closes.
type memConn struct {
	id    uint64
	query url.Values

	mu      sync.Mutex
	frames  [][]byte
	closed  bool
	code    int
	reason  string
	refuse  error // Send fails with it when set
	session *Session
	queued  atomic.Int64 // the frames QueueLen reports
}

var connIDs atomic.Uint64

func (c *memConn) ID() uint64             { return c.id }
func (c *memConn) RemoteAddr() string     { return fmt.Sprintf("127.0.0.1:%d", 40000+c.id) }
func (c *memConn) ConnectedAt() time.Time { return time.Unix(0, 0) }
func (c *memConn) Query(name string) string {
	return c.query.Get(name)
}
func (c *memConn) QueueLen() (int, int) { return int(c.queued.Load()), 0 }

func (c *memConn) Send(f *wsframe.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("closing")
	}
	if c.refuse != nil {
		return c.refuse
	}
	c.frames = append(c.frames, slices.Clone(f.Message()))
	return nil
}

func (c *memConn) Close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed, c.code, c.reason = true, code, reason
	}
}

// closeCode is the close code, or 0 while open.
func (c *memConn) closeCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code
}

// got is a received message, decoded.
type got struct {
	Type      string          `json:"message_type"`
	ID        string          `json:"message_id"`
	Sender    string          `json:"sender_id"`
	Recipient string          `json:"recipient_id"`
	Payload   json.RawMessage `json:"payload"`
}

// take returns and forgets what the connection received.
func (c *memConn) take(t *testing.T) []got {
	t.Helper()
	c.mu.Lock()
	frames := c.frames
	c.frames = nil
	c.mu.Unlock()
	out := make([]got, len(frames))
	for i, f := range frames {
		if err := json.Unmarshal(f, &out[i]); err != nil {
			t.Fatalf("received invalid JSON %q: %v", f, err)
		}
	}
	return out
}

// expectOne checks that exactly one message of type typ arrived.
func (c *memConn) expectOne(t *testing.T, typ string) got {
	t.Helper()
	ms := c.take(t)
	if len(ms) != 1 || ms[0].Type != typ {
		t.Fatalf("conn %d: got %+v, want one %s", c.id, ms, typ)
	}
	return ms[0]
}

// expectNone checks that nothing arrived.
func (c *memConn) expectNone(t *testing.T) {
	t.Helper()
	if ms := c.take(t); len(ms) != 0 {
		t.Fatalf("conn %d: got %+v, want nothing", c.id, ms)
	}
}

// open connects a memConn with the given query ("" for none).
func open(t *testing.T, r *Router, query string) *memConn {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	c := &memConn{id: connIDs.Add(1), query: q}
	c.session = r.Open(c)
	if c.session == nil {
		t.Fatal("Open returned nil")
	}
	return c
}

func (c *memConn) send(typ, id, sender, recipient, payload string) {
	c.session.Frame(message.Build(typ, id, sender, recipient, []byte(payload)))
}

func newRouter(t *testing.T, mesh Mesh, edit func(*Config)) *Router {
	t.Helper()
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	r, err := New(cfg, mesh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func TestRouterBindAndBroadcast(t *testing.T) {
	r := newRouter(t, nil, nil)
	a, b := open(t, r, "node_id=a"), open(t, r, "")
	c := open(t, r, "")
	b.send("NodeAnnounce", "b1", "b", "", `{}`) // binds b by its first message
	a.expectOne(t, "NodeAnnounce")
	b.expectNone(t) // no echo
	if got := r.LocalNodes(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("LocalNodes = %v, want [a b] (c has not bound yet)", got)
	}
	c.send("EntryAnnounce", "e1", "c", "", `{"x": [1, 2.50]}`)
	for _, o := range []*memConn{a, b} {
		m := o.expectOne(t, "EntryAnnounce")
		if m.Sender != "c" || m.ID != "e1" || string(m.Payload) != `{"x": [1, 2.50]}` {
			t.Fatalf("got %+v", m)
		}
	}
	c.expectNone(t)
}

func TestRouterEcho(t *testing.T) {
	r := newRouter(t, nil, func(c *Config) { c.Echo = true })
	a := open(t, r, "node_id=a")
	a.send("EntryAnnounce", "e1", "a", "", `1`)
	a.expectOne(t, "EntryAnnounce")
}

func TestRouterSenderMismatchAndBadInput(t *testing.T) {
	r := newRouter(t, nil, nil)
	a, b := open(t, r, "node_id=a"), open(t, r, "node_id=b")
	a.send("EntryAnnounce", "e1", "b", "", `1`)
	if m := a.expectOne(t, message.TypeRelayError); !errorCode(t, m, message.CodeSenderMismatch, "e1") {
		t.Fatal(m)
	}
	b.expectNone(t)
	a.session.Frame([]byte(`{"message_type":`))
	errorCode(t, a.expectOne(t, message.TypeRelayError), message.CodeInvalidJSON, "")
	a.session.Frame([]byte(`{"message_type":"X","message_id":"m","payload":1}`))
	errorCode(t, a.expectOne(t, message.TypeRelayError), message.CodeInvalidMessage, "m")
	if a.closeCode() != 0 {
		t.Fatal("a RelayError must not end the session")
	}
	// The session goes on.
	a.send("EntryAnnounce", "e2", "a", "", `1`)
	b.expectOne(t, "EntryAnnounce")
}

// errorCode checks a RelayError's code and ref.
func errorCode(t *testing.T, m got, code, ref string) bool {
	t.Helper()
	var p struct{ Code, Message, Ref string }
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Code != code || p.Ref != ref || p.Message == "" {
		t.Fatalf("RelayError %+v, want code %s ref %q and a message", p, code, ref)
	}
	return true
}

func TestRouterTakeover(t *testing.T) {
	r := newRouter(t, nil, nil)
	old := open(t, r, "node_id=a")
	b := open(t, r, "node_id=b")
	newer := open(t, r, "node_id=a")
	if old.closeCode() != CloseReplaced {
		t.Fatalf("older connection closed with %d, want %d", old.closeCode(), CloseReplaced)
	}
	old.session.Closed() // the transport reports the close: a must stay bound
	if !slices.Contains(r.LocalNodes(), "a") {
		t.Fatal("the newer connection of a lost its binding when the older one closed")
	}
	b.send("EntryRequest", "d1", "b", "a", `{}`)
	newer.expectOne(t, "EntryRequest")
	newer.session.Closed()
	if slices.Contains(r.LocalNodes(), "a") {
		t.Fatal("a is still bound after its connection closed")
	}
}

func TestRouterDirectAndUnknownRecipient(t *testing.T) {
	r := newRouter(t, nil, nil)
	a, b, c := open(t, r, "node_id=a"), open(t, r, "node_id=b"), open(t, r, "node_id=c")
	a.send("EntryRequest", "d1", "a", "b", `{"want":1}`)
	b.expectOne(t, "EntryRequest")
	c.expectNone(t)
	a.expectNone(t)
	a.send("EntryRequest", "d2", "a", "nobody", `{}`)
	errorCode(t, a.expectOne(t, message.TypeRelayError), message.CodeRecipientUnknown, "d2")
	// A retry with the same id once the recipient is there is delivered.
	n := open(t, r, "node_id=nobody")
	a.send("EntryRequest", "d2", "a", "nobody", `{}`)
	n.expectOne(t, "EntryRequest")
}

func TestRouterDedupAndAssignedID(t *testing.T) {
	r := newRouter(t, nil, nil)
	a, b := open(t, r, "node_id=a"), open(t, r, "node_id=b")
	a.send("EntryAnnounce", "same", "a", "", `1`)
	a.send("EntryAnnounce", "same", "a", "", `2`)
	if ms := b.take(t); len(ms) != 1 {
		t.Fatalf("duplicate (sender, message_id) delivered %d times, want once", len(ms))
	}
	a.session.Frame([]byte(`{"message_type":"EntryAnnounce","sender_id":"a","payload":{}}`))
	if m := b.expectOne(t, "EntryAnnounce"); m.ID == "" {
		t.Fatal("a missing message_id was not assigned")
	}
}

func TestRouterNodeListAndBadQuery(t *testing.T) {
	r := newRouter(t, nil, nil)
	a, b := open(t, r, "node_id=a"), open(t, r, "node_id=b")
	a.send(message.TypeNodeListRequest, "l1", "a", "", `{}`)
	b.expectOne(t, message.TypeNodeListRequest)
	m := a.expectOne(t, message.TypeNodeListResponse)
	var p struct{ Nodes []string }
	if err := json.Unmarshal(m.Payload, &p); err != nil || !slices.Equal(p.Nodes, []string{"a", "b"}) || m.Recipient != "a" {
		t.Fatalf("NodeListResponse %+v (%v), want nodes [a b] to a", m, err)
	}
	bad := open(t, r, "node_id="+url.QueryEscape(string([]byte{0xff})))
	if bad.closeCode() != ClosePolicy {
		t.Fatalf("invalid UTF-8 node_id closed with %d, want %d", bad.closeCode(), ClosePolicy)
	}
	bad.session.Closed()
}

func TestRouterRateLimitThenFlood(t *testing.T) {
	r := newRouter(t, nil, func(c *Config) { c.RateLimit, c.RateBurst = 5, 5 })
	a, b := open(t, r, "node_id=a"), open(t, r, "node_id=b")
	for i := range 8 {
		a.send("EntryAnnounce", fmt.Sprint(i), "a", "", `1`)
	}
	if n := len(b.take(t)); n != 5 {
		t.Fatalf("%d of 8 delivered with a burst of 5", n)
	}
	errorCode(t, a.expectOne(t, message.TypeRelayError), message.CodeRateLimited, "5")
	for i := range 10 {
		a.send("EntryAnnounce", fmt.Sprint(100+i), "a", "", `1`)
	}
	if a.closeCode() != ClosePolicy {
		t.Fatalf("flooding connection closed with %d, want %d", a.closeCode(), ClosePolicy)
	}
}

func TestRouterRefusedSendIsADrop(t *testing.T) {
	r := newRouter(t, nil, nil)
	a, b := open(t, r, "node_id=a"), open(t, r, "node_id=b")
	b.refuse = errors.New("slow consumer")
	a.send("EntryAnnounce", "e1", "a", "", `1`)
	if got := testutil.ToFloat64(r.metrics.Dropped.WithLabelValues(DropSendRefused)); got != 1 {
		t.Fatalf("send_refused drops = %v, want 1", got)
	}
}

// memMesh joins routers in memory: a broadcast reaches every other router,
// a direct message the router that holds its recipient.
type memMesh struct {
	mu      sync.Mutex
	routers []*Router
	self    int
	joined  []string // NodeJoined/NodeLeft calls, "+id" / "-id"
	// stale: recipients Direct claims to route (a directory a presence
	// delta behind) without delivering them anywhere.
	stale map[string]bool
}

type memFed struct{ meshes []*memMesh }

func newFed(t *testing.T, n int) ([]*Router, *memFed) {
	return newFedWith(t, n, nil, nil)
}

// newFedWith is newFed with a config edit and, for router i, a clock
// (nil: the defaults).
func newFedWith(t *testing.T, n int, edit func(*Config), clock func(i int) func() time.Time) ([]*Router, *memFed) {
	t.Helper()
	f := &memFed{}
	rs := make([]*Router, n)
	for i := range n {
		m := &memMesh{self: i}
		f.meshes = append(f.meshes, m)
		cfg := DefaultConfig()
		if edit != nil {
			edit(&cfg)
		}
		var opts []Option
		if clock != nil {
			opts = append(opts, WithClock(clock(i)))
		}
		r, err := New(cfg, m, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(context.Background()) })
		rs[i] = r
	}
	for _, m := range f.meshes {
		m.mu.Lock() // the routers' mailbox goroutines may already ask
		m.routers = rs
		m.mu.Unlock()
	}
	return rs, f
}

func (m *memMesh) others() []*Router {
	m.mu.Lock()
	routers := m.routers
	m.mu.Unlock()
	var out []*Router
	for i, r := range routers {
		if i != m.self {
			out = append(out, r)
		}
	}
	return out
}

func (m *memMesh) Broadcast(env *message.Envelope) error {
	for _, r := range m.others() {
		e, err := message.Parse(slices.Clone(env.Raw))
		if err != nil {
			return err
		}
		r.Deliver(&e)
	}
	return nil
}

func (m *memMesh) Direct(env *message.Envelope) bool {
	m.mu.Lock()
	stale := m.stale[env.Recipient]
	m.mu.Unlock()
	if stale {
		return true
	}
	for _, r := range m.others() {
		if slices.Contains(r.LocalNodes(), env.Recipient) {
			e, _ := message.Parse(slices.Clone(env.Raw))
			r.Deliver(&e)
			return true
		}
	}
	return false
}

func (m *memMesh) NodeJoined(id string, _ *nodeauth.Proof) {
	m.mu.Lock()
	m.joined = append(m.joined, "+"+id)
	m.mu.Unlock()
}
func (m *memMesh) NodeLeft(id string) {
	m.mu.Lock()
	m.joined = append(m.joined, "-"+id)
	m.mu.Unlock()
}

func (m *memMesh) RemoteNodes() []string {
	var ids []string
	for _, r := range m.others() {
		ids = append(ids, r.LocalNodes()...)
	}
	return ids
}

func TestRouterAcrossMesh(t *testing.T) {
	rs, fed := newFed(t, 2)
	a, b := open(t, rs[0], "node_id=a"), open(t, rs[1], "node_id=b")
	a2 := open(t, rs[1], "node_id=a") // a multi-homed on both relays
	a.send("EntryAnnounce", "e1", "a", "", `1`)
	b.expectOne(t, "EntryAnnounce")
	a2.expectNone(t) // never back to its sender, on any relay
	b.send("EntryRequest", "d1", "b", "a", `{}`)
	// The relay holding a locally delivers; the message does not also
	// cross to the other relay.
	a2.expectOne(t, "EntryRequest")
	a.expectNone(t)
	// The same message from both relays (a multi-homed sender) is
	// delivered once.
	a.send("EntryAnnounce", "e2", "a", "", `1`)
	a2.send("EntryAnnounce", "e2", "a", "", `1`)
	b.expectOne(t, "EntryAnnounce")
	if got := rs[0].Nodes(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("federation Nodes = %v, want [a b] (a listed once)", got)
	}
	a.session.Closed()
	if j := fed.meshes[0].joined; !slices.Equal(j, []string{"+a", "-a"}) {
		t.Fatalf("mesh saw %v, want [+a -a]", j)
	}
	// Undeliverable: the sender hears recipient_unknown.
	b.send("EntryRequest", "d2", "b", "gone", `{}`)
	errorCode(t, b.expectOne(t, message.TypeRelayError), message.CodeRecipientUnknown, "d2")
	rs[1].Undeliverable("b", "d3", "gone")
	errorCode(t, b.expectOne(t, message.TypeRelayError), message.CodeRecipientUnknown, "d3")
}

// TestRouterNACKToMailbox: a direct message routed by a stale directory
// to a relay its recipient has just left comes back as Undeliverable (the
// NACK); it goes to the mailbox in the order it was sent, before a message
// kept after it, and its sender hears nothing. A NACK for a message no
// longer in flight still gets recipient_unknown.
func TestRouterNACKToMailbox(t *testing.T) {
	rs, fed := newFed(t, 2)
	b := open(t, rs[1], "node_id=b")
	x := open(t, rs[0], "node_id=x")
	b.send("EntryRequest", "d0", "b", "x", `{}`) // rs[1] sees x connected
	x.expectOne(t, "EntryRequest")
	x.session.Closed()
	fed.meshes[1].stale = map[string]bool{"x": true}
	b.send("EntryRequest", "d1", "b", "x", `{}`) // in flight to where x was
	fed.meshes[1].mu.Lock()
	fed.meshes[1].stale = nil
	fed.meshes[1].mu.Unlock()
	b.send("EntryRequest", "d2", "b", "x", `{}`) // kept at once: x is nowhere
	if n := rs[1].inflight.len(); n != 2 {
		t.Fatalf("in flight: %d messages, want 2 (d0, d1)", n)
	}
	rs[1].Undeliverable("b", "d1", "x") // the NACK
	b.expectNone(t)
	if n := rs[1].inflight.len(); n != 1 {
		t.Fatalf("in flight after the NACK: %d, want 1 (d0)", n)
	}
	x2 := open(t, rs[1], "node_id=x")
	ms := x2.take(t)
	if len(ms) != 2 || ms[0].ID != "d1" || ms[1].ID != "d2" {
		t.Fatalf("x at its bind got %+v, want d1 then d2", ms)
	}
	rs[1].Undeliverable("b", "d1", "x") // a second NACK: no longer in flight
	errorCode(t, b.expectOne(t, message.TypeRelayError), message.CodeRecipientUnknown, "d1")
}

// TestRouterNACKMailboxFull: a NACKed message that finds the mailbox full
// gets its sender mailbox_full.
func TestRouterNACKMailboxFull(t *testing.T) {
	rs, f := newFedWith(t, 2, func(c *Config) { c.MailboxMax = 1 }, nil)
	b := open(t, rs[1], "node_id=b")
	x := open(t, rs[0], "node_id=x")
	b.send("EntryRequest", "d0", "b", "x", `{}`)
	x.expectOne(t, "EntryRequest")
	x.session.Closed()
	f.meshes[1].stale = map[string]bool{"x": true}
	b.send("EntryRequest", "d1", "b", "x", `{}`)
	b.send("EntryRequest", "d2", "b", "x", `{}`)
	rs[1].Undeliverable("b", "d1", "x")
	rs[1].Undeliverable("b", "d2", "x")
	errorCode(t, b.expectOne(t, message.TypeRelayError), CodeMailboxFull, "d2")
}

func TestRouterNodeListBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeListMaxBytes = 100 << 10
	// A stopped clock: the answer rate limit does not refill however
	// slowly the machine builds the answers.
	frozen := time.Now()
	r, err := New(cfg, nil, WithClock(func() time.Time { return frozen }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	// 2,000 ids of 200 bytes: 400 KiB of ids, over the 100 KiB answer
	// bound.
	for i := range 2000 {
		open(t, r, fmt.Sprintf("node_id=%0200d", i))
	}
	a := open(t, r, "node_id=a")
	a.send(message.TypeNodeListRequest, "l1", "a", "", `{}`)
	ms := a.take(t)
	total, ids := 0, 0
	for i, m := range ms {
		var p struct {
			Nodes       []string
			Page, Pages int
			Truncated   bool
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if m.Type != message.TypeNodeListResponse || p.Page != i+1 || p.Pages != len(ms) || p.Truncated != (i == len(ms)-1) {
			t.Fatalf("page %d: %s %+v of %d", i, m.Type, p, len(ms))
		}
		total += len(m.Payload)
		ids += len(p.Nodes)
	}
	if len(ms) < 2 || total > 110<<10 || ids < 400 {
		t.Fatalf("%d pages, %d bytes, %d ids: want pages within the 100 KiB bound", len(ms), total, ids)
	}
	// Answers are rate limited (20 a second, burst 20): of 60 requests at
	// one instant, 20 are answered (less the one above) and the rest get
	// rate_limited.
	for i := range 60 {
		a.send(message.TypeNodeListRequest, fmt.Sprint("m", i), "a", "", `{}`)
	}
	limited := 0
	for _, m := range a.take(t) {
		if m.Type == message.TypeRelayError {
			limited++
		}
	}
	if limited != 41 {
		t.Fatalf("%d of 60 NodeListRequests rate limited, want 41", limited)
	}
}
