package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// natsParser reads the NATS protocol as a server sends it to a client
// (INFO, MSG, PING, PONG, +OK, -ERR), fed with chunks of the byte stream in any
// split: over WebSocket, one frame may hold several protocol lines or part
// of one. A message or line cut by a chunk boundary is copied, that one
// only; everything else is handled in place.
type natsParser struct {
	part    []byte // the incomplete line or message carried over
	payload int    // -1: part is a line; else part is a MSG line, then payload+2 bytes
}

// natsHandler receives what the parser finds.
type natsHandler interface {
	natsMsg(payload []byte)
	natsPing()
	natsPong()
	natsErr(line []byte)
}

// maxNATSLine bounds a protocol line (INFO can be a few KiB).
const maxNATSLine = 64 << 10

// feed parses chunk. Payloads passed to h are valid only during the call.
func (p *natsParser) feed(chunk []byte, h natsHandler) error {
	for len(p.part) > 0 && len(chunk) > 0 {
		var err error
		if chunk, err = p.complete(chunk, h); err != nil {
			return err
		}
	}
	for len(chunk) > 0 {
		nl := bytes.IndexByte(chunk, '\n')
		if nl < 0 {
			return p.carry(chunk, -1)
		}
		line := chunk[:nl+1]
		size, err := p.line(line, h)
		if err != nil {
			return err
		}
		if size < 0 {
			chunk = chunk[nl+1:]
			continue
		}
		end := nl + 1 + size + 2
		if end > len(chunk) {
			return p.carry(chunk, size)
		}
		if err := checkCRLF(chunk[end-2 : end]); err != nil {
			return err
		}
		h.natsMsg(chunk[nl+1 : end-2 : end-2])
		chunk = chunk[end:]
	}
	return nil
}

// carry keeps an incomplete line (size -1) or a MSG line and the start of
// its payload of size bytes.
func (p *natsParser) carry(b []byte, size int) error {
	if size < 0 && len(b) > maxNATSLine {
		return errors.New("nats: protocol line too long")
	}
	p.part = append(p.part[:0], b...)
	p.payload = size
	return nil
}

// complete takes from chunk what the carried-over part needs and handles
// it once whole; it returns the rest of chunk.
func (p *natsParser) complete(chunk []byte, h natsHandler) ([]byte, error) {
	if p.payload < 0 {
		nl := bytes.IndexByte(chunk, '\n')
		if nl < 0 {
			return nil, p.carry(append(p.part, chunk...), -1)
		}
		p.part = append(p.part, chunk[:nl+1]...)
		chunk = chunk[nl+1:]
		size, err := p.line(p.part, h)
		if err != nil {
			return nil, err
		}
		if size < 0 {
			p.part = p.part[:0]
			return chunk, nil
		}
		p.payload = size
		// The MSG line stays in part; its payload follows.
	}
	nl := bytes.IndexByte(p.part, '\n')
	need := nl + 1 + p.payload + 2 - len(p.part)
	take := min(need, len(chunk))
	p.part = append(p.part, chunk[:take]...)
	chunk = chunk[take:]
	if take < need {
		return chunk, nil
	}
	end := len(p.part)
	if err := checkCRLF(p.part[end-2:]); err != nil {
		return nil, err
	}
	h.natsMsg(p.part[nl+1 : end-2 : end-2])
	p.part = p.part[:0]
	return chunk, nil
}

func checkCRLF(b []byte) error {
	if b[0] != '\r' || b[1] != '\n' {
		return errors.New("nats: payload not followed by CRLF")
	}
	return nil
}

// line handles one protocol line (with its line end). For a MSG line it
// returns the payload size that follows, else -1.
func (p *natsParser) line(l []byte, h natsHandler) (int, error) {
	l = bytes.TrimRight(l, "\r\n")
	switch {
	case hasPrefixFold(l, "MSG "):
		sp := bytes.LastIndexByte(l, ' ')
		n, err := strconv.Atoi(string(l[sp+1:]))
		if err != nil || n < 0 || n > maxFrame {
			return 0, fmt.Errorf("nats: bad MSG line %q", l)
		}
		return n, nil
	case hasPrefixFold(l, "PING"):
		h.natsPing()
	case hasPrefixFold(l, "-ERR"):
		h.natsErr(l)
	case hasPrefixFold(l, "PONG"):
		h.natsPong()
	case hasPrefixFold(l, "+OK"), hasPrefixFold(l, "INFO"), len(l) == 0:
	default:
		return 0, fmt.Errorf("nats: unexpected line %q", l)
	}
	return -1, nil
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

// appendPub appends a NATS PUB of msg on subject.
func appendPub(dst []byte, subject string, msg []byte) []byte {
	dst = append(dst, "PUB "...)
	dst = append(dst, subject...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, msg...)
	return append(dst, "\r\n"...)
}
