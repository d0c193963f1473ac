package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/gsio-net/gsio-relay/internal/testutil"
)

// Wait is how long a test client waits for an expected event.
var Wait = 10 * time.Second

// Msg is a GSIO message as a client received it.
type Msg struct {
	Type      string          `json:"message_type"`
	ID        string          `json:"message_id"`
	Sender    string          `json:"sender_id"`
	Recipient string          `json:"recipient_id"`
	Payload   json.RawMessage `json:"payload"`
	Raw       []byte          `json:"-"`
}

// ErrorPayload is the payload of a RelayError.
type ErrorPayload struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref"`
}

// Client is a WebSocket test client speaking GSIO. A reader goroutine owned
// by the client queues everything it receives; Close stops it.
type Client struct {
	t      testing.TB
	NodeID string
	conn   *websocket.Conn
	msgs   chan Msg
	done   chan struct{}
	closed error // the close error seen by the reader, valid after done

	wmu  sync.Mutex
	once sync.Once
}

// Dial connects to url (ws://host:port/path?query) as node id; the node id
// is bound by the first message the client sends, not at connect.
func Dial(t testing.TB, url, nodeID string) *Client {
	t.Helper()
	c, err := DialErr(t, url, nodeID, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

// DialErr is Dial returning the error, with extra request headers.
func DialErr(t testing.TB, url, nodeID string, h http.Header) (*Client, error) {
	d := websocket.Dialer{HandshakeTimeout: Wait}
	conn, resp, err := d.Dial(url, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c := &Client{t: t, NodeID: nodeID, conn: conn, msgs: make(chan Msg, 1<<16), done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.Close)
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.closed = err
			return
		}
		m := Msg{Raw: data}
		if err := json.Unmarshal(data, &m); err != nil {
			m.Type = "!unparsable: " + err.Error()
		}
		select {
		case c.msgs <- m:
		default:
			c.closed = errors.New("test client queue overflow")
			return
		}
	}
}

// Close closes the connection and waits for the reader.
func (c *Client) Close() {
	c.once.Do(func() {
		c.wmu.Lock()
		_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		select {
		case <-c.done:
		case <-time.After(2 * time.Second):
		}
		_ = c.conn.Close()
		<-c.done
	})
}

// SendRaw writes one text frame.
func (c *Client) SendRaw(data []byte) {
	c.t.Helper()
	if err := c.WriteFrame(websocket.TextMessage, data); err != nil {
		c.t.Fatalf("%s: write: %v", c.NodeID, err)
	}
}

// WriteFrame writes one frame of any type and returns the error.
func (c *Client) WriteFrame(typ int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(Wait))
	return c.conn.WriteMessage(typ, data)
}

// Send writes a GSIO message from this client's node id; payload is raw
// JSON ("" means {}).
func (c *Client) Send(typ, id, recipient, payload string) {
	c.t.Helper()
	c.SendRaw(Build(typ, id, c.NodeID, recipient, payload))
}

// Build encodes a GSIO message; payload is raw JSON ("" means {}).
func Build(typ, id, sender, recipient, payload string) []byte {
	if payload == "" {
		payload = "{}"
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return []byte(`{"message_type":` + q(typ) + `,"message_id":` + q(id) + `,"sender_id":` + q(sender) +
		`,"recipient_id":` + q(recipient) + `,"payload":` + payload + `}`)
}

// Next returns the next message, failing the test after Wait.
func (c *Client) Next() Msg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("%s: connection ended while a message was expected: %v", c.NodeID, c.closed)
	case <-time.After(Wait):
		c.t.Fatalf("%s: no message within %v", c.NodeID, Wait)
	}
	return Msg{}
}

// Expect returns the next message and fails unless it has type typ.
func (c *Client) Expect(typ string) Msg {
	c.t.Helper()
	m := c.Next()
	if m.Type != typ {
		c.t.Fatalf("%s: got %s, want a %s message: %s", c.NodeID, m.Type, typ, trim(m.Raw))
	}
	return m
}

// ExpectError returns the next message and fails unless it is a RelayError
// with the code.
func (c *Client) ExpectError(code string) ErrorPayload {
	c.t.Helper()
	m := c.Expect("RelayError")
	var p ErrorPayload
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		c.t.Fatalf("%s: RelayError payload: %v: %s", c.NodeID, err, m.Payload)
	}
	if p.Code != code {
		c.t.Fatalf("%s: RelayError %q (%s), want %q", c.NodeID, p.Code, p.Message, code)
	}
	if m.Recipient != c.NodeID && m.Recipient != "" {
		c.t.Fatalf("%s: RelayError addressed to %q", c.NodeID, m.Recipient)
	}
	return p
}

// ExpectClose waits for the connection to end and fails unless the server
// closed it with code; queued messages before the close are skipped.
func (c *Client) ExpectClose(code int) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(Wait):
		c.t.Fatalf("%s: connection still open after %v, want close %d", c.NodeID, Wait, code)
	}
	var ce *websocket.CloseError
	if !errors.As(c.closed, &ce) || ce.Code != code {
		c.t.Fatalf("%s: connection ended with %v, want close code %d", c.NodeID, c.closed, code)
	}
}

// Pending is the number of received messages not yet taken.
func (c *Client) Pending() int { return len(c.msgs) }

func trim(b []byte) string {
	s := string(b)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.TrimSpace(s)
}

// Eventually waits until cond holds, failing after d with what was
// awaited: testutil.Eventually, in the argument order of this package's
// callers (relay, admin, cmd and docker tests).
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, d, cond, "%s", what)
}

// Reach sends direct messages from one client to another until one arrives,
// taking the RelayError recipient_unknown of each attempt made before the
// relays knew the recipient. from must be bound (it binds with its first
// message). Use it to wait until to is reachable from from's relay.
func Reach(t testing.TB, from, to *Client) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for i := 0; ; i++ {
		id := fmt.Sprintf("reach-%s-%s-%d-%d", from.NodeID, to.NodeID, time.Now().UnixNano(), i)
		from.Send("Reach", id, to.NodeID, "")
		for {
			if to.Pending() > 0 {
				if m := to.Next(); m.ID != id {
					t.Fatalf("%s: got %s %s while waiting for %s", to.NodeID, m.Type, m.ID, id)
				}
				return
			}
			if from.Pending() > 0 {
				from.ExpectError("recipient_unknown")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not reachable from %s within %v", to.NodeID, from.NodeID, Wait)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
