package message

import (
	"crypto/rand"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Field limits. A frame is bounded as a whole by the transport's
// message-size limit; these bound the routing fields within it.
const (
	MaxTypeLen = 128 // bytes of message_type
	MaxIDLen   = 256 // bytes of message_id, sender_id, recipient_id
)

// maxDepth bounds the nesting of arrays and objects in a frame, the envelope
// object included: a payload may nest maxDepth-1 levels deep. Deeper frames
// are CodeInvalidJSON ("nesting too deep").
const maxDepth = 512

// RelayError codes (SPEC section 1).
const (
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidMessage   = "invalid_message"
	CodeSenderMismatch   = "sender_mismatch"
	CodeRecipientUnknown = "recipient_unknown"
	CodeRateLimited      = "rate_limited"
	CodeTooLarge         = "too_large"
	CodeAuthRequired     = "auth_required"
)

// Message types the relay itself understands.
const (
	TypeNodeListRequest  = "NodeListRequest"
	TypeNodeListResponse = "NodeListResponse"
	TypeNodeAuth         = "NodeAuth"
	TypeRelayError       = "RelayError"
	TypeRelayChallenge   = "RelayChallenge"
	TypeRelayAuthOk      = "RelayAuthOk"
)

// RelayNodeID is the node id that belongs to relays (SPEC section 6): no
// client may bind it, and a message addressed to it is a request to the
// relay the client is connected to, never routed to nodes.
const RelayNodeID = "relay"

// RelayType reports whether a message type belongs to relays: every type
// that begins with "Relay". Clients may not send them.
func RelayType(typ string) bool { return strings.HasPrefix(typ, "Relay") }

// Error is a parse or validation failure; Code is the RelayError code.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return e.Code + ": " + e.Msg }

// Envelope is a parsed GSIO message. Payload and Raw alias the parsed bytes.
type Envelope struct {
	Type      string // message_type, non-empty
	ID        string // message_id; "" when absent or null
	Sender    string // sender_id, non-empty
	Recipient string // recipient_id; "" (or absent/null) means broadcast
	Payload   []byte // raw JSON of payload as written by the sender; nil if absent
	Raw       []byte // the whole frame
	TS        int64  // federation timestamp "ts" (unix ms); 0 when absent or not a plain integer

	// idStart/idEnd delimit the message_id value (including quotes or
	// null) in Raw; idStart < 0 when the key is absent, and then idEnd is
	// the offset just after the object's opening brace, where SetID inserts
	// the key. payStart is the offset of Payload in Raw.
	idStart, idEnd int
	payStart       int
	// tsStart/tsEnd delimit the ts value in Raw (tsStart < 0: absent);
	// brace is the offset just after the object's opening brace, where
	// SetTS inserts the key.
	tsStart, tsEnd int
	brace          int
}

// Broadcast reports whether the message goes to every node.
func (e *Envelope) Broadcast() bool { return e.Recipient == "" }

// SetID gives the message the id: Raw becomes a new slice in which the
// message_id value is replaced (when present as "" or null) or inserted as
// the first key. The payload and every other byte are kept.
//
// The caller's buffer (the old Raw) is never written. Payload is re-pointed
// into the new Raw. A present message_id is replaced whatever its value.
// Invalid UTF-8 in id is encoded as U+FFFD, and ID is set to what a parser
// reads back. On an Envelope that did not come from Parse, Raw is rebuilt
// from the fields with Build.
func (e *Envelope) SetID(id string) {
	raw := e.Raw
	switch {
	case e.idStart > 0 && e.idStart < e.idEnd && e.idEnd <= len(raw):
		// Replace the value span.
		b := make([]byte, 0, len(raw)-(e.idEnd-e.idStart)+len(id)+2)
		b = append(b, raw[:e.idStart]...)
		b = appendJSONString(b, id)
		end := len(b)
		b = append(b, raw[e.idEnd:]...)
		e.movePayload(b, e.idStart, end-e.idEnd)
		e.moveTS(e.idEnd, end-e.idEnd)
		e.Raw, e.idEnd = b, end
	case e.idStart < 0 && e.idEnd > 0 && e.idEnd <= len(raw) && raw[e.idEnd-1] == '{':
		// Insert as the first key, right after the opening brace.
		at := e.idEnd
		b := make([]byte, 0, len(raw)+len(`"message_id":,`)+len(id)+2)
		b = append(b, raw[:at]...)
		b = append(b, `"message_id":`...)
		start := len(b)
		b = appendJSONString(b, id)
		end := len(b)
		// Parse guarantees other keys follow; stay valid on an empty object.
		if j := skipWS(raw, at); j < len(raw) && raw[j] != '}' {
			b = append(b, ',')
		}
		b = append(b, raw[at:]...)
		e.movePayload(b, at, len(b)-len(raw))
		e.moveTS(at, len(b)-len(raw))
		e.Raw, e.idStart, e.idEnd = b, start, end
	default:
		// Not from Parse: rebuild.
		b, r := build(e.Type, id, e.Sender, e.Recipient, e.Payload)
		e.Raw, e.idStart, e.idEnd, e.payStart = b, r.idStart, r.idEnd, r.payStart
		e.Payload = b[r.payStart:r.payEnd:r.payEnd]
		e.tsStart, e.brace = -1, 1
		if e.TS > 0 {
			e.SetTS(e.TS)
		}
	}
	e.ID = validUTF8(id)
}

// SetTS stamps the message with the federation timestamp ts (unix ms, > 0):
// Raw becomes a new slice in which the "ts" value is replaced (whatever it
// was) or `"ts":<ts>` is inserted as the first key. The payload and every
// other byte are kept; the caller's buffer is never written. On an
// Envelope that did not come from Parse it is a no-op but for TS.
func (e *Envelope) SetTS(ts int64) {
	raw := e.Raw
	var num [20]byte
	v := strconv.AppendInt(num[:0], ts, 10)
	e.TS = ts
	switch {
	case e.tsStart > 0 && e.tsStart < e.tsEnd && e.tsEnd <= len(raw):
		b := make([]byte, 0, len(raw)-(e.tsEnd-e.tsStart)+len(v))
		b = append(b, raw[:e.tsStart]...)
		b = append(b, v...)
		end := len(b)
		b = append(b, raw[e.tsEnd:]...)
		delta := end - e.tsEnd
		e.movePayload(b, e.tsEnd, delta)
		e.moveID(e.tsEnd, delta)
		e.Raw, e.tsEnd = b, end
	case e.tsStart < 0 && e.brace > 0 && e.brace <= len(raw) && raw[e.brace-1] == '{':
		at := e.brace
		b := make([]byte, 0, len(raw)+len(`"ts":,`)+len(v))
		b = append(b, raw[:at]...)
		b = append(b, `"ts":`...)
		start := len(b)
		b = append(b, v...)
		end := len(b)
		if j := skipWS(raw, at); j < len(raw) && raw[j] != '}' {
			b = append(b, ',')
		}
		b = append(b, raw[at:]...)
		delta := len(b) - len(raw)
		e.movePayload(b, at, delta)
		e.moveID(at, delta)
		e.Raw, e.tsStart, e.tsEnd = b, start, end
	}
}

// moveTS shifts the ts span by delta when it lies at or after offset at.
func (e *Envelope) moveTS(at, delta int) {
	if e.tsStart >= at {
		e.tsStart, e.tsEnd = e.tsStart+delta, e.tsEnd+delta
	}
}

// moveID shifts a present message_id span by delta when it lies at or
// after offset at.
func (e *Envelope) moveID(at, delta int) {
	if e.idStart >= at {
		e.idStart, e.idEnd = e.idStart+delta, e.idEnd+delta
	}
}

// movePayload re-points Payload into b, the new Raw, in which every byte of
// the old Raw at or after offset at has moved by delta. A Payload that no
// longer aliases the old Raw (the caller replaced it) is left alone.
func (e *Envelope) movePayload(b []byte, at, delta int) {
	p, end := e.payStart, e.payStart+len(e.Payload)
	if len(e.Payload) == 0 || p < 0 || end > len(e.Raw) || &e.Payload[0] != &e.Raw[p] {
		return
	}
	if p >= at {
		p, end = p+delta, end+delta
	}
	e.Payload = b[p:end:end]
	e.payStart = p
}

// validUTF8 returns s with each byte that is not part of valid UTF-8
// replaced by U+FFFD, which is what a JSON decoder reads back from
// appendJSONString(s).
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// NewID returns a random RFC 4122 version 4 UUID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	j := 0
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hexDigits[x>>4], hexDigits[x&0x0f]
		j += 2
	}
	return string(s[:])
}

// Build encodes a message the relay originates. payload must be valid JSON
// (nil encodes as null).
func Build(typ, id, sender, recipient string, payload []byte) []byte {
	b, _ := build(typ, id, sender, recipient, payload)
	return b
}

// spans are the offsets build reports to SetID.
type spans struct{ idStart, idEnd, payStart, payEnd int }

func build(typ, id, sender, recipient string, payload []byte) ([]byte, spans) {
	if payload == nil {
		payload = []byte("null")
	}
	var r spans
	b := make([]byte, 0, 80+len(typ)+len(id)+len(sender)+len(recipient)+len(payload))
	b = append(b, `{"message_type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"message_id":`...)
	r.idStart = len(b)
	b = appendJSONString(b, id)
	r.idEnd = len(b)
	b = append(b, `,"sender_id":`...)
	b = appendJSONString(b, sender)
	b = append(b, `,"recipient_id":`...)
	b = appendJSONString(b, recipient)
	b = append(b, `,"payload":`...)
	r.payStart = len(b)
	b = append(b, payload...)
	r.payEnd = len(b)
	return append(b, '}'), r
}

// RelayError builds a RelayError message from sender (the relay) to
// recipient with payload {"code","message","ref"}.
func RelayError(sender, recipient, code, msg, ref string) []byte {
	p := make([]byte, 0, 32+len(code)+len(msg)+len(ref))
	p = append(p, `{"code":`...)
	p = appendJSONString(p, code)
	p = append(p, `,"message":`...)
	p = appendJSONString(p, msg)
	p = append(p, `,"ref":`...)
	p = appendJSONString(p, ref)
	p = append(p, '}')
	return Build(TypeRelayError, NewID(), sender, recipient, p)
}

// NodeListResponse builds the relay's answer to a NodeListRequest: payload
// {"nodes":[...]} with the node ids in the given order.
func NodeListResponse(sender, recipient string, nodes []string) []byte {
	pages := NodeListPages(sender, recipient, nodes, 1<<62, 1<<62)
	return pages[0]
}

// NodeListPages builds the answer to a NodeListRequest in messages whose
// payload holds at most pageBytes of ids, and at most maxBytes in all:
// {"nodes":[...]} when one message holds every id (the SPEC form), else
// {"nodes":[...],"page":i,"pages":n} for i in 1..n, the last with
// "truncated":true when maxBytes cut the list. An id longer than pageBytes
// gets a page of its own. It returns at least one message.
func NodeListPages(sender, recipient string, nodes []string, pageBytes, maxBytes int) [][]byte {
	var (
		pages     [][]string
		cur       []string
		curBytes  int
		total     int
		truncated bool
	)
	for _, id := range nodes {
		n := jsonStringLen(id) + 1
		if total+n > maxBytes {
			truncated = true
			break
		}
		if curBytes+n > pageBytes && len(cur) > 0 {
			pages, cur, curBytes = append(pages, cur), nil, 0
		}
		cur = append(cur, id)
		curBytes += n
		total += n
	}
	pages = append(pages, cur)
	out := make([][]byte, len(pages))
	for i, ids := range pages {
		p := make([]byte, 0, 64+total/len(pages))
		p = append(p, `{"nodes":[`...)
		for j, id := range ids {
			if j > 0 {
				p = append(p, ',')
			}
			p = appendJSONString(p, id)
		}
		p = append(p, ']')
		if len(pages) > 1 || truncated {
			p = append(p, `,"page":`...)
			p = strconv.AppendInt(p, int64(i+1), 10)
			p = append(p, `,"pages":`...)
			p = strconv.AppendInt(p, int64(len(pages)), 10)
			if truncated && i == len(pages)-1 {
				p = append(p, `,"truncated":true`...)
			}
		}
		p = append(p, '}')
		out[i] = Build(TypeNodeListResponse, NewID(), sender, recipient, p)
	}
	return out
}

// jsonStringLen is the length of s encoded by appendJSONString, counted
// without encoding.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 0x20 && c != '"' && c != '\\':
				n++
			case c == '"', c == '\\', c == '\n', c == '\r', c == '\t', c == '\b', c == '\f':
				n += 2
			default:
				n += 6
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}
