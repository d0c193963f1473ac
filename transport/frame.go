package transport

import (
	"encoding/binary"
	"unicode/utf8"
)

// RFC 6455 opcodes with the FIN bit set, as the first header byte.
const (
	finText  = 0x80 | 0x1
	finClose = 0x80 | 0x8
	finPing  = 0x80 | 0x9
	finPong  = 0x80 | 0xA
)

// maxControlPayload is the largest control frame payload (RFC 6455 5.5).
const maxControlPayload = 125

// Frame is a complete server-to-client WebSocket frame: the RFC 6455 header
// followed by the message, encoded once. Server frames are not masked, so
// the same bytes can be written to any number of connections.
//
// A Frame is immutable once built and safe for concurrent use.
type Frame struct {
	b   []byte // header + payload, exactly as written on the wire
	off int    // start of the payload in b
	at  int64  // monoNow when built by NewFrame (delivery latency); 0 for control frames
}

// NewFrame builds an unfragmented text frame carrying a copy of msg. The
// caller keeps ownership of msg. The relay sends JSON, so msg should be
// valid UTF-8; NewFrame does not check.
func NewFrame(msg []byte) *Frame {
	f := newFrame(finText, msg)
	f.at = monoNow()
	return f
}

func newFrame(b0 byte, msg []byte) *Frame {
	n := len(msg)
	hdr := 2
	switch {
	case n > 0xFFFF:
		hdr = 10
	case n > 125:
		hdr = 4
	}
	b := make([]byte, hdr+n)
	b[0] = b0
	switch hdr {
	case 2:
		b[1] = byte(n)
	case 4:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	copy(b[hdr:], msg)
	return &Frame{b: b, off: hdr}
}

// Message returns the message inside the frame. It is shared by every
// connection the frame is sent to and must not be modified.
func (f *Frame) Message() []byte { return f.b[f.off:len(f.b):len(f.b)] }

// Len is the number of bytes the frame takes on the wire (and in a send
// queue's byte count).
func (f *Frame) Len() int { return len(f.b) }

// pingFrame is the server's keepalive ping; it carries no payload.
var pingFrame = newFrame(finPing, nil)

// newCloseFrame builds a close frame. A code that must not go on the wire
// (1005, 1006, 1015, or out of range) gives a close frame without payload.
// The reason is cut to fit a control frame, at a UTF-8 boundary.
func newCloseFrame(code int, reason string) *Frame {
	if !validCloseCode(code) {
		return newFrame(finClose, nil)
	}
	const max = maxControlPayload - 2
	if len(reason) > max {
		reason = reason[:max]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	p := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	copy(p[2:], reason)
	return newFrame(finClose, p)
}

// validCloseCode reports whether code may be sent in a close frame
// (RFC 6455 7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
