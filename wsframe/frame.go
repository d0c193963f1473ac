// Package wsframe is the one shape of a message on its way to clients: a
// complete server-to-client WebSocket frame, encoded once and written as the
// same bytes to every receiver. It is a leaf: the router builds frames,
// the transport writes them, and neither imports the other.
package wsframe

import (
	"encoding/binary"
	"time"
	"unicode/utf8"
)

// RFC 6455 opcodes with the FIN bit set, as the first header byte.
const (
	finText  = 0x80 | 0x1
	finClose = 0x80 | 0x8
	finPing  = 0x80 | 0x9
	finPong  = 0x80 | 0xA
)

// IsClose reports whether wire starts an unfragmented close frame.
func IsClose(wire []byte) bool { return len(wire) > 0 && wire[0] == finClose }

// MaxControlPayload is the largest control frame payload (RFC 6455 5.5).
const MaxControlPayload = 125

// monoBase anchors monoNow: durations since it use the monotonic clock.
var monoBase = time.Now()

// monoNow is a monotonic timestamp in nanoseconds, for Frame.at.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// Frame is a complete server-to-client WebSocket frame: the RFC 6455 header
// followed by the message, encoded once. Server frames are not masked, so
// the same bytes can be written to any number of connections.
//
// A Frame is immutable once built and safe for concurrent use.
type Frame struct {
	b   []byte // header + payload, exactly as written on the wire
	off int    // start of the payload in b
	at  int64  // monoNow when built by NewText (delivery latency); 0 for control frames
}

// NewText builds an unfragmented text frame carrying a copy of msg. The
// caller keeps ownership of msg. The relay sends JSON, so msg should be
// valid UTF-8; NewText does not check.
func NewText(msg []byte) *Frame {
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

// Wire is the whole frame as written to the socket. It must not be
// modified.
func (f *Frame) Wire() []byte { return f.b }

// Age is the time since NewText built the frame (the delivery latency of a
// frame being written); 0 for control frames.
func (f *Frame) Age() time.Duration {
	if f.at == 0 {
		return 0
	}
	return time.Duration(monoNow() - f.at)
}

// Ping is the server's keepalive ping; it carries no payload.
var Ping = newFrame(finPing, nil)

// NewPong answers a ping with its application data (at most
// MaxControlPayload bytes: gorilla refuses longer control frames).
func NewPong(data []byte) *Frame { return newFrame(finPong, data) }

// NewClose builds a close frame. A code that must not go on the wire
// (1005, 1006, 1015, or out of range) gives a close frame without payload.
// The reason is cut to fit a control frame, at a UTF-8 boundary.
func NewClose(code int, reason string) *Frame {
	if !ValidCloseCode(code) {
		return newFrame(finClose, nil)
	}
	const max = MaxControlPayload - 2
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

// ValidCloseCode reports whether code may be sent in a close frame
// (RFC 6455 7.4).
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
