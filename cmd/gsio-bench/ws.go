package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// WebSocket opcodes (RFC 6455).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

const (
	readBufSize = 64 << 10 // read buffer per connection; grows for larger frames
	maxFrame    = 4 << 20  // largest frame the generator accepts
)

// wsConn is a lean client-side WebSocket connection: a hand-written
// handshake, frames parsed in place out of one read buffer, and writes of
// whole batches of frames. It has no goroutine of its own: the owner calls
// readLoop from the connection's reader goroutine.
type wsConn struct {
	c    *net.TCPConn
	buf  []byte // read buffer; unread bytes are buf[r:w]
	r, w int

	wmu  sync.Mutex // serialises writes: the sender's batches, pongs
	mask [4]byte    // masking key of this connection's frames
	ctl  []byte     // scratch for control frames, under wmu
}

// dialWS connects to host:port and upgrades on path (which may carry a
// query). The whole handshake is bounded by timeout.
func dialWS(addr, path string, timeout time.Duration) (*wsConn, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c := &wsConn{c: nc.(*net.TCPConn), buf: make([]byte, readBufSize)}
	if _, err := rand.Read(c.mask[:]); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.handshake(addr, path, timeout); err != nil {
		nc.Close()
		return nil, fmt.Errorf("websocket handshake with %s: %w", addr, err)
	}
	return c, nil
}

var wsGUID = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11")

func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write(wsGUID)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func (c *wsConn) handshake(addr, path string, timeout time.Duration) error {
	var k [16]byte
	if _, err := rand.Read(k[:]); err != nil {
		return err
	}
	key := base64.StdEncoding.EncodeToString(k[:])
	_ = c.c.SetDeadline(time.Now().Add(timeout))
	defer c.c.SetDeadline(time.Time{})
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c.c, req); err != nil {
		return err
	}
	for {
		if i := bytes.Index(c.buf[:c.w], []byte("\r\n\r\n")); i >= 0 {
			return c.checkResponse(string(c.buf[:i]), key, i+4)
		}
		if c.w == len(c.buf) {
			return errors.New("response header too large")
		}
		n, err := c.c.Read(c.buf[c.w:])
		c.w += n
		if err != nil {
			return err
		}
	}
}

// checkResponse checks the 101 response whose header is hdr; the stream of
// frames starts at buf[end].
func (c *wsConn) checkResponse(hdr, key string, end int) error {
	lines := strings.Split(hdr, "\r\n")
	if f := strings.Fields(lines[0]); len(f) < 2 || f[1] != "101" {
		return fmt.Errorf("status %q", lines[0])
	}
	ok := false
	for _, l := range lines[1:] {
		name, v, found := strings.Cut(l, ":")
		if found && strings.EqualFold(strings.TrimSpace(name), "Sec-WebSocket-Accept") {
			ok = strings.TrimSpace(v) == acceptKey(key)
		}
	}
	if !ok {
		return errors.New("missing or wrong Sec-WebSocket-Accept")
	}
	c.r = end
	return nil
}

// appendFrame appends one client frame (FIN set, masked with key) carrying
// payload.
func appendFrame(dst []byte, op byte, payload []byte, key [4]byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|op)
	switch {
	case n <= 125:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	maskBytes(dst[start:], key)
	return dst
}

// maskBytes XORs b with the repeated key, eight bytes at a time.
func maskBytes(b []byte, key [4]byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}

// write writes a batch of already encoded frames in one call.
func (c *wsConn) write(b []byte, deadline time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(deadline)
	_, err := c.c.Write(b)
	return err
}

// writeControl sends a control frame (pong, close).
func (c *wsConn) writeControl(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ctl = appendFrame(c.ctl[:0], op, payload, c.mask)
	_ = c.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := c.c.Write(c.ctl)
	return err
}

// close sends a close frame (best effort) and closes the socket.
func (c *wsConn) close() {
	_ = c.writeControl(opClose, []byte{0x03, 0xE8}) // 1000
	_ = c.c.Close()
}

// errClosedByPeer ends readLoop when the server sends a close frame.
var errClosedByPeer = errors.New("closed by peer")

// readLoop reads frames until the connection ends and calls onData for
// each text, binary or continuation frame with the clock reading (from
// now) taken right after the read that completed it. Pings are answered,
// a close frame ends the loop, and so does an error from onData (the
// frames after that one stay buffered). payload is valid only during the
// call. onBatch, when not nil, is called after each read's frames are
// handled.
func (c *wsConn) readLoop(now func() int64, onData func(op byte, payload []byte, t int64) error, onBatch func()) error {
	for {
		t := now()
		for {
			op, payload, n, err := parseFrame(c.buf[c.r:c.w])
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			c.r += n
			switch op {
			case opText, opBinary, opCont:
				if err := onData(op, payload, t); err != nil {
					return err
				}
			case opPing:
				if err := c.writeControl(opPong, payload); err != nil {
					return err
				}
			case opPong:
			case opClose:
				return errClosedByPeer
			default:
				return fmt.Errorf("unknown opcode %#x", op)
			}
		}
		if onBatch != nil {
			onBatch()
		}
		// Keep the partial frame; make room at the end of the buffer.
		if c.r == c.w {
			c.r, c.w = 0, 0
		} else if c.r > 0 && len(c.buf)-c.w < len(c.buf)/4 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		if c.w == len(c.buf) {
			need := frameLen(c.buf[c.r:c.w])
			if need > maxFrame {
				return fmt.Errorf("frame of %d bytes over the limit", need)
			}
			nb := make([]byte, max(2*len(c.buf), need))
			c.w = copy(nb, c.buf[c.r:c.w])
			c.r = 0
			c.buf = nb
		}
		n, err := c.c.Read(c.buf[c.w:])
		c.w += n
		if err != nil {
			return err
		}
	}
}

// parseFrame parses one server frame at the start of b. n is 0 when b does
// not hold a whole frame yet. Server frames are never masked; a
// fragmented message comes as opCont frames after the first.
func parseFrame(b []byte) (op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, nil
	}
	if b[1]&0x80 != 0 {
		return 0, nil, 0, errors.New("masked frame from server")
	}
	if b[0]&0x70 != 0 {
		return 0, nil, 0, errors.New("reserved bits set (compression is not negotiated)")
	}
	hdr := 2
	size := int(b[1] & 0x7F)
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, nil
		}
		size, hdr = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, nil
		}
		s := binary.BigEndian.Uint64(b[2:])
		if s > maxFrame {
			return 0, nil, 0, fmt.Errorf("frame of %d bytes over the limit", s)
		}
		size, hdr = int(s), 10
	}
	if len(b) < hdr+size {
		return 0, nil, 0, nil
	}
	return b[0] & 0x0F, b[hdr : hdr+size : hdr+size], hdr + size, nil
}

// frameLen is the whole length of the frame starting b, or len(b)+1 when
// the header itself is incomplete.
func frameLen(b []byte) int {
	if len(b) < 2 {
		return len(b) + 1
	}
	switch size := int(b[1] & 0x7F); size {
	case 126:
		if len(b) < 4 {
			return len(b) + 1
		}
		return 4 + int(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if len(b) < 10 {
			return len(b) + 1
		}
		return 10 + int(min(binary.BigEndian.Uint64(b[2:]), maxFrame+1))
	default:
		return 2 + size
	}
}
