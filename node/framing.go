package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frames on /gsio/direct/1.0.0 (docs/PROTOCOL.md "Direct streams"):
//
//	frame = uvarint(L) || kind (1 byte) || body (L-1 bytes),  1 <= L <= max+1
//
// kind 0x01 carries a GSIO message (JSON), kind 0x02 a NACK (JSON object
// {"sender_id","message_id","recipient_id","reason"}). Unknown kinds are
// skipped.
const (
	frameMessage byte = 0x01
	frameNACK    byte = 0x02
)

// errFrameTooLarge is returned by readFrame for a length over the limit;
// the stream must then be reset (the rest of it cannot be trusted).
var errFrameTooLarge = errors.New("direct frame too large")

// appendFrame appends one frame to b.
func appendFrame(b []byte, kind byte, body []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(body)+1))
	b = append(b, kind)
	return append(b, body...)
}

// frameChunk is the most readFrame allocates ahead of the data.
const frameChunk = 64 << 10

// readFrame reads one frame whose body is at most max bytes.
func readFrame(r *bufio.Reader, max int) (byte, []byte, error) {
	l, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("read frame length: %w", err)
	}
	if l == 0 {
		return 0, nil, errors.New("read frame: zero length")
	}
	if l > uint64(max)+1 {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, l-1, max)
	}
	// A large frame's buffer grows with the bytes that actually arrive: a
	// peer that declares 1 MiB and stalls must not pin 1 MiB per stream.
	var buf []byte
	if l <= frameChunk {
		buf = make([]byte, l)
		if _, err := io.ReadFull(r, buf); err != nil {
			return 0, nil, fmt.Errorf("read frame body: %w", io.ErrUnexpectedEOF)
		}
	} else {
		var bb bytes.Buffer
		bb.Grow(frameChunk)
		if n, err := io.CopyN(&bb, r, int64(l)); err != nil || uint64(n) != l {
			return 0, nil, fmt.Errorf("read frame body: %w", io.ErrUnexpectedEOF)
		}
		buf = bb.Bytes()
	}
	return buf[0], buf[1:], nil
}
