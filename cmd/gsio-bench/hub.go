package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The reference hub is the cheapest server the generator can be pointed
// at: it forwards every data frame a client sends, unparsed, to every other
// client, encoding the server frame once and writing each client's queue
// with one vectored write per batch. It measures the generator's ceiling on
// this machine; it is not a relay (no routing, no limits, no validation).

// hub is the set of connected clients.
type hub struct {
	mu    sync.RWMutex
	conns map[*hubConn]struct{}
	wg    sync.WaitGroup
}

// hubConn is one client: a reader (the hijacked HTTP handler goroutine) and
// a writer that runs while frames are queued.
type hubConn struct {
	h *hub
	c *net.TCPConn

	mu      sync.Mutex
	queue   [][]byte
	spare   [][]byte
	writing bool
	closed  bool
}

// hubMaxQueue drops a client that falls this many frames behind.
const hubMaxQueue = 1 << 16

func runHub(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	h := &hub{conns: make(map[*hubConn]struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(h.serve), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	_ = srv.Close()
	h.mu.Lock()
	for c := range h.conns {
		c.c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

func (h *hub) serve(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "Expected Upgrade: websocket", http.StatusUpgradeRequired)
		return
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(key) + "\r\n\r\n"
	if _, err := io.WriteString(nc, resp); err != nil {
		nc.Close()
		return
	}
	c := &hubConn{h: h, c: nc.(*net.TCPConn)}
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	rd := bufio.NewReaderSize(io.MultiReader(brw.Reader, nc), 64<<10)
	_ = c.readLoop(rd)
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	c.mu.Lock()
	c.closed = true
	c.queue = nil
	c.mu.Unlock()
	nc.Close()
}

// readLoop reads client frames and forwards the data frames.
func (c *hubConn) readLoop(rd *bufio.Reader) error {
	var hdr [14]byte
	for {
		if _, err := io.ReadFull(rd, hdr[:2]); err != nil {
			return err
		}
		op := hdr[0] & 0x0F
		if hdr[1]&0x80 == 0 {
			return errors.New("unmasked client frame")
		}
		size := uint64(hdr[1] & 0x7F)
		switch size {
		case 126:
			if _, err := io.ReadFull(rd, hdr[2:4]); err != nil {
				return err
			}
			size = uint64(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err := io.ReadFull(rd, hdr[2:10]); err != nil {
				return err
			}
			size = binary.BigEndian.Uint64(hdr[2:10])
		}
		if size > maxFrame {
			return fmt.Errorf("frame of %d bytes", size)
		}
		var key [4]byte
		if _, err := io.ReadFull(rd, key[:]); err != nil {
			return err
		}
		// The server frame: the same first byte, an unmasked length,
		// the unmasked payload. Built once for every receiver.
		f := serverHeader(make([]byte, 0, 10+size), hdr[0], int(size))
		off := len(f)
		f = f[:off+int(size)]
		if _, err := io.ReadFull(rd, f[off:]); err != nil {
			return err
		}
		maskBytes(f[off:], key)
		switch op {
		case opText, opBinary, opCont:
			c.h.broadcast(c, f)
		case opPing:
			c.send(serverHeader(nil, 0x80|opPong, int(size)), f[off:])
		case opClose:
			c.send(serverHeader(nil, 0x80|opClose, 0))
			return nil
		}
	}
}

func serverHeader(dst []byte, b0 byte, n int) []byte {
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xFFFF:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
	}
}

func (h *hub) broadcast(from *hubConn, f []byte) {
	h.mu.RLock()
	for c := range h.conns {
		if c != from {
			c.send(f)
		}
	}
	h.mu.RUnlock()
}

// send queues buffers and starts the writer unless it runs.
func (c *hubConn) send(bufs ...[]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.queue) >= hubMaxQueue {
		c.closed = true
		c.queue = nil
		c.c.Close()
		return
	}
	c.queue = append(c.queue, bufs...)
	if !c.writing {
		c.writing = true
		c.h.wg.Add(1)
		go c.writeLoop()
	}
}

// writeLoop writes everything queued with one writev per batch and exits
// when the queue is empty.
func (c *hubConn) writeLoop() {
	defer c.h.wg.Done()
	var scratch [][]byte // WriteTo consumes the net.Buffers it is called on
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		q := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.mu.Unlock()

		scratch = append(scratch[:0], q...)
		bufs := net.Buffers(scratch)
		_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := bufs.WriteTo(c.c)
		clear(scratch)
		clear(q)
		c.mu.Lock()
		c.spare = q[:0]
		if err != nil {
			c.closed = true
			c.queue = nil
			c.c.Close()
		}
		c.mu.Unlock()
	}
}
