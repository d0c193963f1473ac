package client

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/testnet"
)

func TestSendReceive(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	c := dial(t, testConfig("node-a", r.URL))
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-a", "node-b")
	if c.NodeID() != "node-a" || c.URL() != r.URL {
		t.Fatalf("NodeID %q URL %q", c.NodeID(), c.URL())
	}

	// Broadcast and direct, from the client.
	id, err := c.Broadcast(ctx(t), TypeEntryAnnounce, json.RawMessage(`{"entry":"e1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := p.Expect(TypeEntryAnnounce); m.ID != id || m.Sender != "node-a" || string(m.Payload) != `{"entry":"e1"}` {
		t.Fatalf("peer got %s", m.Raw)
	}
	id, err = c.SendTo(ctx(t), "node-b", TypeEntryRequest, json.RawMessage(`{"want": ["e0"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := p.Expect(TypeEntryRequest); m.ID != id || m.Recipient != "node-b" || string(m.Payload) != `{"want": ["e0"]}` {
		t.Fatalf("peer got %s", m.Raw)
	}

	// To the client: payload byte for byte.
	p.Send(TypeEntryResponse, "r1", "node-a", `{"entry" : "e0"}`)
	m := expect(t, c, TypeEntryResponse, "r1")
	if m.Sender != "node-b" || m.Recipient != "node-a" || string(m.Payload) != `{"entry" : "e0"}` || m.Broadcast() {
		t.Fatalf("got %+v", m)
	}
	e, err := Decode[struct{ Entry string }](m, TypeEntryResponse)
	if err != nil || e.Entry != "e0" {
		t.Fatalf("Decode: %+v %v", e, err)
	}

	// NodeListRequest: the relay answers, the peer sees the request.
	id, err = c.Send(ctx(t), NodeListRequest())
	if err != nil {
		t.Fatal(err)
	}
	m = expect(t, c, TypeNodeListResponse, "")
	nodes, err := ParseNodeList(m)
	if err != nil || !slices.Equal(nodes, []string{"node-a", "node-b"}) {
		t.Fatalf("node list %v %v (%s)", nodes, err, m.Raw)
	}
	if m := p.Expect(TypeNodeListRequest); m.ID != id {
		t.Fatalf("peer got %s", m.Raw)
	}
	none(t, c)
	if s := c.Stats(); s.Attempts != 1 || s.Connections != 1 || s.Delivered != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRelayErrorIsTypedEvent(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	c := dial(t, testConfig("node-a", r.URL))
	id, err := c.SendTo(ctx(t), "nobody", TypeEntryRequest, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := expect(t, c, TypeRelayError, "")
	if m.Err == nil || m.Err.Code != CodeRecipientUnknown || m.Err.Ref != id {
		t.Fatalf("RelayError %+v from %s", m.Err, m.Raw)
	}
	var re *RelayError
	if !errors.As(error(m.Err), &re) || re.Error() == "" {
		t.Fatal("not an error")
	}
	if e, err := ParseRelayError(m); err != nil || *e != *m.Err {
		t.Fatalf("ParseRelayError %+v %v", e, err)
	}
	// The session goes on.
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-b")
	if _, err := c.SendTo(ctx(t), "node-b", TypeEntryRequest, nil); err != nil {
		t.Fatal(err)
	}
	p.Expect(TypeEntryRequest)
}

func TestSendRefusesWhatTheRelayWould(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	c := dial(t, testConfig("node-a", r.URL))
	for _, m := range []Message{
		{Type: "RelayDraining"},
		{Type: TypeEntryAnnounce, Sender: "node-b"},
		{Type: TypeEntryAnnounce, Payload: json.RawMessage(`{"a":`)},
		{Type: ""},
	} {
		if _, err := c.Send(ctx(t), m); err == nil {
			t.Errorf("Send(%+v) succeeded", m)
		}
	}
	if _, err := c.SendTo(ctx(t), "", TypeEntryRequest, nil); err == nil {
		t.Error("SendTo without recipient succeeded")
	}
}

func TestCloseIsIdempotentAndClosesMessages(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	c := dial(t, testConfig("node-a", r.URL))
	p := peer(t, r.URL, "node-b")
	bound(t, r.Router, "node-a", "node-b")
	p.Send(TypeEntryAnnounce, "e1", "", "")
	expect(t, c, TypeEntryAnnounce, "e1")
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := <-c.Messages(); ok {
		t.Fatal("Messages not closed")
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err %v", c.Err())
	}
	if _, err := c.Broadcast(ctx(t), TypeEntryAnnounce, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Broadcast after Close: %v", err)
	}
	if _, err := c.History(ctx(t), time.Time{}, time.Time{}, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("History after Close: %v", err)
	}
}
