package client

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/testnet"
)

func TestEncodeParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
		want string // "" for an error
	}{
		{"broadcast", Message{Type: "EntryAnnounce", ID: "1", Sender: "a", Payload: json.RawMessage(`{"x": 1}`)},
			`{"message_type":"EntryAnnounce","message_id":"1","sender_id":"a","recipient_id":"","payload":{"x": 1}}`},
		{"nil payload", Message{Type: "NodeListRequest", ID: "2", Sender: "a"},
			`{"message_type":"NodeListRequest","message_id":"2","sender_id":"a","recipient_id":"","payload":{}}`},
		{"scalar payload", Message{Type: "X", ID: "3", Sender: "a", Recipient: "b", Payload: json.RawMessage(`"s"`)},
			`{"message_type":"X","message_id":"3","sender_id":"a","recipient_id":"b","payload":"s"}`},
		{"escapes", Message{Type: "X", ID: "q\"\n", Sender: "a", Payload: json.RawMessage(`null`)},
			`{"message_type":"X","message_id":"q\"\n","sender_id":"a","recipient_id":"","payload":null}`},
		{"no type", Message{Sender: "a"}, ""},
		{"no sender", Message{Type: "X"}, ""},
		{"bad payload", Message{Type: "X", Sender: "a", Payload: json.RawMessage(`{`)}, ""},
		{"long id", Message{Type: "X", Sender: strings.Repeat("a", 257)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.Encode()
			if tc.want == "" {
				if err == nil {
					t.Fatalf("encoded %s", b)
				}
				return
			}
			if err != nil || string(b) != tc.want {
				t.Fatalf("Encode: %s %v, want %s", b, err, tc.want)
			}
			m, err := Parse(b)
			if err != nil || m.Type != tc.m.Type || m.ID != tc.m.ID || m.Sender != tc.m.Sender || m.Recipient != tc.m.Recipient {
				t.Fatalf("Parse: %+v %v", m, err)
			}
		})
	}
	for _, bad := range []string{``, `[]`, `{"message_type":""}`, `{"message_type":1}`, `{"message_type":"X"`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
	m, err := Parse([]byte(`{"message_type":"X","sender_id":"a","payload":{},"ts":"x"}`))
	if err != nil || m.TS != 0 {
		t.Fatalf("a bad ts: %+v %v", m, err)
	}
	m, err = Parse([]byte(`{"message_type":"RelayError","sender_id":"relay","payload":[1]}`))
	if err != nil || m.Err == nil || m.Err.Code != "" {
		t.Fatalf("an unreadable RelayError: %+v %v", m, err)
	}
}

func TestTypedHelpers(t *testing.T) {
	p := json.RawMessage(`{"k":1}`)
	for _, tc := range []struct {
		m         Message
		typ, to   string
		broadcast bool
	}{
		{NodeAnnounce(p), TypeNodeAnnounce, "", true},
		{NodeListRequest(), TypeNodeListRequest, "", true},
		{EntryAnnounce(p), TypeEntryAnnounce, "", true},
		{EntryRequest("b", p), TypeEntryRequest, "b", false},
		{EntryResponse("b", p), TypeEntryResponse, "b", false},
		{LedgerSyncRequest("", p), TypeLedgerSyncRequest, "", true},
		{LedgerSyncResponse("b", p), TypeLedgerSyncResponse, "b", false},
	} {
		if tc.m.Type != tc.typ || tc.m.Recipient != tc.to || tc.m.Broadcast() != tc.broadcast {
			t.Errorf("%+v", tc.m)
		}
		if tc.m.Payload != nil {
			if got, err := Decode[json.RawMessage](tc.m, tc.typ); err != nil || string(got) != `{"k":1}` {
				t.Errorf("Decode %s: %s %v", tc.typ, got, err)
			}
		}
		if _, err := Decode[json.RawMessage](tc.m, "Other"); err == nil {
			t.Errorf("Decode of a %s as Other succeeded", tc.typ)
		}
	}
	m := NodeListResponse("a", []string{"x", "y"})
	if string(m.Payload) != `{"nodes":["x","y"]}` {
		t.Fatalf("payload %s", m.Payload)
	}
	if nodes, err := ParseNodeList(m); err != nil || len(nodes) != 2 {
		t.Fatalf("ParseNodeList %v %v", nodes, err)
	}
	if nodes, err := ParseNodeList(NodeListResponse("a", nil)); err != nil || len(nodes) != 0 || nodes == nil {
		t.Fatalf("empty list %v %v", nodes, err)
	}
	for _, bad := range []Message{NewMessage(TypeNodeListResponse, "a", json.RawMessage(`{}`)),
		NewMessage(TypeNodeListResponse, "a", json.RawMessage(`{"nodes":[1]}`)), EntryAnnounce(p)} {
		if _, err := ParseNodeList(bad); err == nil {
			t.Errorf("ParseNodeList(%s) succeeded", bad.Payload)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	key, keyID := newKey(t)
	ok := testConfig("node-a", "ws://127.0.0.1:1/ws")
	const bad = "!" // validate fails
	for _, tc := range []struct {
		name   string
		edit   func(*Config)
		tokens bool
		id     string
	}{
		{"plain", func(*Config) {}, false, "node-a"},
		{"key", func(c *Config) { c.NodeID, c.NodeKey = "", key }, false, keyID},
		{"key and its id", func(c *Config) { c.NodeID, c.NodeKey = keyID, key }, false, keyID},
		{"token names the id", func(c *Config) { c.NodeID, c.Token = "", "t" }, false, ""},
		{"token source names the id", func(c *Config) { c.NodeID = "" }, true, ""},
		{"key of another id", func(c *Config) { c.NodeKey = key }, false, bad},
		{"key and token", func(c *Config) { c.NodeKey, c.Token = key, "t" }, false, bad},
		{"key id without key", func(c *Config) { c.NodeID = keyID }, false, bad},
		{"no id", func(c *Config) { c.NodeID = "" }, false, bad},
		{"reserved", func(c *Config) { c.NodeID = "relay" }, false, bad},
		{"no URL", func(c *Config) { c.URLs = nil }, false, bad},
		{"http URL", func(c *Config) { c.URLs = []string{"http://x"} }, false, bad},
		{"zero config", func(c *Config) { *c = Config{URLs: c.URLs, NodeID: "a"} }, false, bad},
		{"backoff", func(c *Config) { c.BackoffMax = c.BackoffMin / 2 }, false, bad},
		{"read timeout", func(c *Config) { c.ReadTimeout = c.PingInterval }, false, bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			id, err := cfg.validate(tc.tokens)
			if tc.id == bad {
				if err == nil {
					t.Fatalf("validate accepted it (id %q)", id)
				}
				return
			}
			if err != nil || id != tc.id {
				t.Fatalf("validate: %q %v, want %q", id, err, tc.id)
			}
		})
	}
}

func TestTokenExpiry(t *testing.T) {
	tok := token(t, jwtSecret, "a", time.Hour)
	if exp := tokenExpiry(tok); time.Until(exp) < 59*time.Minute || time.Until(exp) > time.Hour {
		t.Fatalf("exp %v", exp)
	}
	for _, bad := range []string{"", "a.b", "a.!.c", "a.e30.c", "a.eyJleHAiOiJ4In0.c"} {
		if !tokenExpiry(bad).IsZero() {
			t.Errorf("tokenExpiry(%q) not zero", bad)
		}
	}
}

func TestTSFromRelay(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	c := dial(t, testConfig("node-a", r.URL))
	bound(t, r.Router, "node-a")
	inject(t, r.Router, frameTS(TypeEntryAnnounce, "e1", "node-x", "", `{"e":1}`, 1764633600000))
	m := expect(t, c, TypeEntryAnnounce, "e1")
	if m.TS != 1764633600000 || string(m.Payload) != `{"e":1}` {
		t.Fatalf("got %+v", m)
	}
	if env, err := message.Parse(m.Raw); err != nil || env.Sender != "node-x" {
		t.Fatalf("Raw %s: %v", m.Raw, err)
	}
}
