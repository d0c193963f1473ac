package client

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/testnet"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-libp2p and quic-go start a few process-wide goroutines once
		// (the federated tests run libp2p hosts).
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// wait is how long a test waits for an expected event.
const wait = 10 * time.Second

// testConfig is DefaultConfig for node id to urls, with test backoff.
func testConfig(id string, urls ...string) Config {
	cfg := DefaultConfig()
	cfg.URLs = urls
	cfg.NodeID = id
	cfg.BackoffMin = 20 * time.Millisecond
	cfg.BackoffMax = 200 * time.Millisecond
	cfg.HandshakeTimeout = 5 * time.Second
	return cfg
}

// dial dials cfg within wait and closes the client at cleanup.
func dial(t *testing.T, cfg Config, opts ...Option) *Client {
	t.Helper()
	c, err := dialErr(t, cfg, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

func dialErr(t *testing.T, cfg Config, opts ...Option) (*Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := Dial(ctx, cfg, append([]Option{WithLogger(testutil.Logger())}, opts...)...)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// next returns the client's next message, failing after wait.
func next(t *testing.T, c *Client) Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatalf("%s: client stopped while a message was expected: %v", c.NodeID(), c.Err())
		}
		return m
	case <-time.After(wait):
		t.Fatalf("%s: no message within %v", c.NodeID(), wait)
	}
	return Message{}
}

// expect returns the next message and fails unless it has type typ and id.
func expect(t *testing.T, c *Client, typ, id string) Message {
	t.Helper()
	m := next(t, c)
	if m.Type != typ || (id != "" && m.ID != id) {
		t.Fatalf("%s: got %s %s (%s), want %s %s", c.NodeID(), m.Type, m.ID, m.Raw, typ, id)
	}
	return m
}

// none fails if the client holds an unread message.
func none(t *testing.T, c *Client) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("%s: unexpected %s %s: %s", c.NodeID(), m.Type, m.ID, m.Raw)
	default:
	}
}

// ctx is a context for one call in a test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

// deadURL is a ws:// URL on which nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "ws://" + addr + "/ws"
}

// states records what WithStateHook reports.
type states struct {
	mu  sync.Mutex
	all []State
}

func (s *states) hook(st State) {
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
}

func (s *states) list() []State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

// peer dials a raw test client bound as id at connect.
func peer(t *testing.T, url, id string) *testnet.Client {
	t.Helper()
	return testnet.Dial(t, url+"?node_id="+id, id)
}

// bound waits until the router lists the node ids among its local nodes:
// a plain id binds at connect without an answer, after the upgrade.
func bound(t *testing.T, r *relay.Router, ids ...string) {
	t.Helper()
	testutil.Eventually(t, wait, func() bool {
		have := r.LocalNodes()
		for _, id := range ids {
			if !slices.Contains(have, id) {
				return false
			}
		}
		return true
	}, "relay to list %v", ids)
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
