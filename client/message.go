package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gsio-net/gsio-relay/message"
)

// The GSIO-Net message types (SPEC section 1). Other types are relayed
// unchanged, so a Message may carry any type.
const (
	TypeNodeAnnounce       = "NodeAnnounce"
	TypeNodeListRequest    = message.TypeNodeListRequest
	TypeNodeListResponse   = message.TypeNodeListResponse
	TypeEntryAnnounce      = "EntryAnnounce"
	TypeEntryRequest       = "EntryRequest"
	TypeEntryResponse      = "EntryResponse"
	TypeLedgerSyncRequest  = "LedgerSyncRequest"
	TypeLedgerSyncResponse = "LedgerSyncResponse"
)

// Types of the conversation between a client and its relay (SPEC sections
// 6, 7 and 9). Types that begin with "Relay" are sent by relays only; the
// client handles all of them but RelayError itself.
const (
	TypeNodeAuth        = message.TypeNodeAuth
	TypeHistoryRequest  = "HistoryRequest"
	TypeRelayError      = message.TypeRelayError
	TypeRelayChallenge  = message.TypeRelayChallenge
	TypeRelayAuthOk     = message.TypeRelayAuthOk
	TypeRelayHistoryEnd = "RelayHistoryEnd"
	TypeRelayDraining   = "RelayDraining"

	// RelayID is the recipient_id of requests to the relay itself
	// (NodeAuth, HistoryRequest) and the sender_id of relay messages.
	RelayID = message.RelayNodeID
)

// RelayError codes (SPEC sections 1, 6 and 7).
const (
	CodeInvalidJSON      = message.CodeInvalidJSON
	CodeInvalidMessage   = message.CodeInvalidMessage
	CodeSenderMismatch   = message.CodeSenderMismatch
	CodeRecipientUnknown = message.CodeRecipientUnknown
	CodeRateLimited      = message.CodeRateLimited
	CodeTooLarge         = message.CodeTooLarge
	CodeAuthRequired     = message.CodeAuthRequired
	CodeMailboxFull      = "mailbox_full"
)

// Message is one GSIO-Net P2P message. Payload is the sender's JSON as
// written, byte for byte.
type Message struct {
	Type      string          // message_type
	ID        string          // message_id; Send sets a UUID when empty
	Sender    string          // sender_id; Send sets the client's node id when empty
	Recipient string          // recipient_id; "" is a broadcast
	Payload   json.RawMessage // any JSON value; Send encodes nil as {}

	// Set on received messages only.
	TS  int64       // federation timestamp (unix ms) of a broadcast, 0 when the relay sent none
	Err *RelayError // the decoded payload when Type is RelayError
	Raw []byte      // the frame as received
}

// Broadcast reports whether m goes to every node.
func (m Message) Broadcast() bool { return m.Recipient == "" }

// RelayError is the payload of a RelayError message (SPEC section 1): the
// relay refused or could not deliver the message whose id is Ref. It does
// not end the session.
type RelayError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref"`
}

func (e *RelayError) Error() string {
	if e.Ref != "" {
		return fmt.Sprintf("relay error %s (message %s): %s", e.Code, e.Ref, e.Message)
	}
	return fmt.Sprintf("relay error %s: %s", e.Code, e.Message)
}

// wire is a frame as encoding/json reads it. ts is read leniently: a frame
// whose ts is not an integer is delivered with TS 0.
type wire struct {
	Type      string          `json:"message_type"`
	ID        string          `json:"message_id"`
	Sender    string          `json:"sender_id"`
	Recipient string          `json:"recipient_id"`
	Payload   json.RawMessage `json:"payload"`
	TS        json.RawMessage `json:"ts"`
}

// Parse decodes a frame. It requires a JSON object with a non-empty
// message_type; the payload is kept as written.
func Parse(frame []byte) (Message, error) {
	var w wire
	if err := json.Unmarshal(frame, &w); err != nil {
		return Message{}, fmt.Errorf("parse message: %w", err)
	}
	if w.Type == "" {
		return Message{}, errors.New("parse message: no message_type")
	}
	m := Message{Type: w.Type, ID: w.ID, Sender: w.Sender, Recipient: w.Recipient, Payload: w.Payload, Raw: frame}
	if len(w.TS) > 0 {
		m.TS, _ = strconv.ParseInt(string(w.TS), 10, 64)
	}
	if m.Type == TypeRelayError {
		m.Err = &RelayError{}
		if err := json.Unmarshal(m.Payload, m.Err); err != nil {
			m.Err.Message = "unreadable RelayError payload: " + string(m.Payload)
		}
	}
	return m, nil
}

// Encode returns the wire form of m:
// {"message_type","message_id","sender_id","recipient_id","payload"}.
// Type and Sender must be set and Payload must be valid JSON (nil encodes
// as {}). TS, Err and Raw are not sent.
func (m Message) Encode() ([]byte, error) {
	if m.Type == "" || len(m.Type) > message.MaxTypeLen {
		return nil, fmt.Errorf("encode message: message_type must be 1 to %d bytes", message.MaxTypeLen)
	}
	for _, f := range [...]struct{ name, v string }{{"message_id", m.ID}, {"sender_id", m.Sender}, {"recipient_id", m.Recipient}} {
		if len(f.v) > message.MaxIDLen {
			return nil, fmt.Errorf("encode message: %s over %d bytes", f.name, message.MaxIDLen)
		}
	}
	if m.Sender == "" {
		return nil, errors.New("encode message: no sender_id")
	}
	p := []byte(m.Payload)
	if p == nil {
		p = []byte("{}")
	} else if !json.Valid(p) {
		return nil, fmt.Errorf("encode %s: payload is not valid JSON", m.Type)
	}
	return message.Build(m.Type, m.ID, m.Sender, m.Recipient, p), nil
}

// NewMessage returns a message of type typ to recipient ("" broadcasts).
func NewMessage(typ, recipient string, payload json.RawMessage) Message {
	return Message{Type: typ, Recipient: recipient, Payload: payload}
}

// NodeAnnounce is a broadcast announcing this node.
func NodeAnnounce(payload json.RawMessage) Message {
	return NewMessage(TypeNodeAnnounce, "", payload)
}

// NodeListRequest asks for every node id in the federation: the relay
// answers with a NodeListResponse addressed to the requester (see
// ParseNodeList), and the other nodes receive the request too.
func NodeListRequest() Message { return NewMessage(TypeNodeListRequest, "", nil) }

// NodeListResponse answers a NodeListRequest of recipient with payload
// {"nodes":[...]}.
func NodeListResponse(recipient string, nodes []string) Message {
	if nodes == nil {
		nodes = []string{}
	}
	p, _ := json.Marshal(struct {
		Nodes []string `json:"nodes"`
	}{nodes})
	return NewMessage(TypeNodeListResponse, recipient, p)
}

// EntryAnnounce is a broadcast of a new ledger entry.
func EntryAnnounce(payload json.RawMessage) Message {
	return NewMessage(TypeEntryAnnounce, "", payload)
}

// EntryRequest asks recipient ("" asks everyone) for entries.
func EntryRequest(recipient string, payload json.RawMessage) Message {
	return NewMessage(TypeEntryRequest, recipient, payload)
}

// EntryResponse answers an EntryRequest of recipient.
func EntryResponse(recipient string, payload json.RawMessage) Message {
	return NewMessage(TypeEntryResponse, recipient, payload)
}

// LedgerSyncRequest asks recipient ("" asks everyone) for ledger state.
func LedgerSyncRequest(recipient string, payload json.RawMessage) Message {
	return NewMessage(TypeLedgerSyncRequest, recipient, payload)
}

// LedgerSyncResponse answers a LedgerSyncRequest of recipient.
func LedgerSyncResponse(recipient string, payload json.RawMessage) Message {
	return NewMessage(TypeLedgerSyncResponse, recipient, payload)
}

// Decode checks that m has type typ and decodes its payload into a T:
// Decode[json.RawMessage](m, TypeEntryAnnounce) returns the payload as
// written, Decode[MyEntry](m, TypeEntryAnnounce) a value of the
// application's own type.
func Decode[T any](m Message, typ string) (T, error) {
	var v T
	if m.Type != typ {
		return v, fmt.Errorf("decode %s: message is of type %s", typ, m.Type)
	}
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		return v, fmt.Errorf("decode %s payload: %w", typ, err)
	}
	return v, nil
}

// ParseNodeList returns the node ids of a NodeListResponse
// ({"nodes":["node-a",...]}).
func ParseNodeList(m Message) ([]string, error) {
	p, err := Decode[struct {
		Nodes *[]string `json:"nodes"`
	}](m, TypeNodeListResponse)
	if err != nil {
		return nil, err
	}
	if p.Nodes == nil {
		return nil, errors.New("decode NodeListResponse: no nodes")
	}
	return *p.Nodes, nil
}

// ParseRelayError returns the payload of a RelayError message.
func ParseRelayError(m Message) (*RelayError, error) {
	e, err := Decode[RelayError](m, TypeRelayError)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// relayType reports whether typ belongs to relays (SPEC section 6).
func relayType(typ string) bool { return strings.HasPrefix(typ, "Relay") }
