//go:build testnet

package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/testnet"
)

// simNode is a simulated gsio-node for the tests that need to watch many
// messages at once: one WebSocket connection at a time to its relay,
// bound at connect (?node_id=), and a reader goroutine per connection
// that records every message with its arrival time. It reconnects only
// when told to (Connect). Close, registered with t.Cleanup, stops it.
type simNode struct {
	id  string
	url string

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex // guards the fields below
	conn    *websocket.Conn
	conns   int         // connections made
	opened  []time.Time // when each connection was made
	got     []arrival
	ends    []ending
	closing bool

	wg sync.WaitGroup // reader goroutines
}

// arrival is one received message.
type arrival struct {
	At   time.Time
	Conn int // which connection (1 = the first)
	Msg  testnet.Msg
}

// ending is the end of a connection.
type ending struct {
	At   time.Time
	Conn int
	Err  error
}

func newSimNode(t testing.TB, id, url string) *simNode {
	n := &simNode{id: id, url: url}
	t.Cleanup(n.Close)
	return n
}

// Connect dials the relay once.
func (n *simNode) Connect() error {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial(n.url+"?node_id="+n.id, nil)
	if err != nil {
		return fmt.Errorf("%s: connect: %w", n.id, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		c.Close()
		return errors.New(n.id + ": closed")
	}
	if n.conn != nil {
		n.conn.Close()
	}
	n.conns++
	n.opened = append(n.opened, time.Now())
	n.conn = c
	gen := n.conns
	n.wg.Add(1)
	go n.read(c, gen)
	return nil
}

// ConnectRetry dials until it succeeds, failing the test after d.
func (n *simNode) ConnectRetry(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := n.Connect()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v (for %v)", err, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *simNode) read(c *websocket.Conn, gen int) {
	defer n.wg.Done()
	for {
		_, data, err := c.ReadMessage()
		now := time.Now()
		n.mu.Lock()
		if err != nil {
			if n.conn == c {
				n.conn = nil
			}
			n.ends = append(n.ends, ending{At: now, Conn: gen, Err: err})
			n.mu.Unlock()
			c.Close()
			return
		}
		m := testnet.Msg{Raw: data}
		if err := json.Unmarshal(data, &m); err != nil {
			m.Type = "!unparsable: " + err.Error()
		}
		n.got = append(n.got, arrival{At: now, Conn: gen, Msg: m})
		n.mu.Unlock()
	}
}

// Connected says whether a connection is open.
func (n *simNode) Connected() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.conn != nil
}

// Send writes one GSIO message from this node; payload is raw JSON.
func (n *simNode) Send(typ, id, recipient, payload string) error {
	n.mu.Lock()
	c := n.conn
	n.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%s: not connected", n.id)
	}
	n.wmu.Lock()
	defer n.wmu.Unlock()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.WriteMessage(websocket.TextMessage, testnet.Build(typ, id, n.id, recipient, payload))
}

// Arrivals is a copy of what the node received so far.
func (n *simNode) Arrivals() []arrival {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.got)
}

// Ends is a copy of the connection ends so far.
func (n *simNode) Ends() []ending {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.ends)
}

// Got counts the messages received of type typ from sender with id.
func (n *simNode) Got(typ, sender, id string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, a := range n.got {
		if a.Msg.Type == typ && a.Msg.Sender == sender && a.Msg.ID == id {
			k++
		}
	}
	return k
}

// NodeList asks the relay for the federation's node list and returns it
// (nil, false when no answer came within d).
func (n *simNode) NodeList(d time.Duration) ([]string, bool) {
	asked := time.Now()
	ref := fmt.Sprintf("list-%d", asked.UnixNano())
	if err := n.Send("NodeListRequest", ref, "", ""); err != nil {
		return nil, false
	}
	deadline := asked.Add(d)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		for i := len(n.got) - 1; i >= 0; i-- {
			m := n.got[i].Msg
			if m.Type != "NodeListResponse" || m.Recipient != n.id {
				continue
			}
			// Responses carry no reference to their request: the newest
			// one is ours when it arrived after we asked (so ask one at a
			// time).
			var p struct {
				Nodes []string `json:"nodes"`
			}
			if n.got[i].At.After(asked) && json.Unmarshal(m.Payload, &p) == nil {
				n.mu.Unlock()
				return p.Nodes, true
			}
			break
		}
		n.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return nil, false
}

// Close closes the connection and waits for the reader.
func (n *simNode) Close() {
	n.mu.Lock()
	n.closing = true
	c := n.conn
	n.mu.Unlock()
	if c != nil {
		n.wmu.Lock()
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		n.wmu.Unlock()
		time.AfterFunc(2*time.Second, func() { c.Close() })
	}
	n.wg.Wait()
}

// nodeListPayload decodes a NodeListResponse.
func nodeListPayload(t testing.TB, m testnet.Msg) []string {
	t.Helper()
	var p struct {
		Nodes []string `json:"nodes"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		t.Fatalf("NodeListResponse payload %s: %v", m.Payload, err)
	}
	return p.Nodes
}

// reconnectGap is the time from the first connection's end to the next
// connection (0 when there is none).
func (n *simNode) reconnectGap() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.ends) == 0 || len(n.opened) < 2 {
		return 0
	}
	return n.opened[1].Sub(n.ends[0].At)
}

// reconnectedAt is when the node's second connection was made (the zero
// time when there is none).
func (n *simNode) reconnectedAt() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.opened) < 2 {
		return time.Time{}
	}
	return n.opened[1]
}
