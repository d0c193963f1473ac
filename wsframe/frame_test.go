package wsframe

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// readWithGorilla feeds wire to gorilla's client reader, as if a server
// had sent it after the handshake, and returns the first message.
func readWithGorilla(t testing.TB, wire []byte) (int, []byte, error) {
	cli, srv := net.Pipe()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cli.Close()
	wg.Go(func() {
		defer srv.Close()
		req, err := http.ReadRequest(bufio.NewReader(srv))
		if err != nil {
			return
		}
		h := sha1.New()
		h.Write([]byte(req.Header.Get("Sec-Websocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(h.Sum(nil)) + "\r\n\r\n"
		if _, err := srv.Write([]byte(resp)); err != nil {
			return
		}
		srv.Write(wire)
	})
	d := websocket.Dialer{NetDial: func(string, string) (net.Conn, error) { return cli, nil }}
	ws, _, err := d.Dial("ws://test/", nil)
	if err != nil {
		t.Fatalf("handshake over pipe: %v", err)
	}
	ws.SetReadLimit(1 << 30)
	return ws.ReadMessage()
}

func TestFrameHeader(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		msg := bytes.Repeat([]byte{'z'}, n)
		f := NewText(msg)
		hdr := 2
		if n > 125 {
			hdr = 4
		}
		if n > 65535 {
			hdr = 10
		}
		if f.Len() != hdr+n || f.b[0] != 0x81 {
			t.Errorf("n=%d: frame length %d first byte %#x, want %d and 0x81", n, f.Len(), f.b[0], hdr+n)
		}
		if !bytes.Equal(f.Message(), msg) {
			t.Errorf("n=%d: Message() differs", n)
		}
		mt, got, err := readWithGorilla(t, f.b)
		if err != nil || mt != websocket.TextMessage || !bytes.Equal(got, msg) {
			t.Errorf("n=%d: gorilla read type %d, %d bytes, err %v", n, mt, len(got), err)
		}
	}
	// NewFrame copies its input.
	in := []byte("abc")
	f := NewText(in)
	in[0] = 'X'
	if string(f.Message()) != "abc" {
		t.Error("NewFrame did not copy the message")
	}
}

func TestCloseFrame(t *testing.T) {
	cases := []struct {
		code    int
		reason  string
		payload int // expected payload length
	}{
		{1000, "", 2},
		{4000, "replaced", 10},
		{1005, "ignored", 0}, // no status: empty close frame
		{999, "x", 0},
		{1008, string(bytes.Repeat([]byte("é"), 100)), 2 + 122}, // cut at a rune boundary
	}
	for _, tc := range cases {
		f := NewClose(tc.code, tc.reason)
		if f.b[0] != 0x88 || len(f.Message()) != tc.payload {
			t.Errorf("close %d: first byte %#x payload %d, want 0x88 and %d", tc.code, f.b[0], len(f.Message()), tc.payload)
		}
	}
}

func FuzzNewText(f *testing.F) {
	f.Add([]byte("hello"))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 126))
	f.Add(bytes.Repeat([]byte{'a'}, 70000))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fr := NewText(msg)
		if !bytes.Equal(fr.Message(), msg) {
			t.Fatal("Message() differs from the input")
		}
		// Two frames back to back: the header must delimit the first
		// exactly.
		wire := append(append([]byte{}, fr.b...), NewText([]byte("next")).b...)
		mt, got, err := readWithGorilla(t, wire)
		if err != nil || mt != websocket.TextMessage || !bytes.Equal(got, msg) {
			t.Fatalf("gorilla read type %d, %d bytes (want %d), err %v", mt, len(got), len(msg), err)
		}
	})
}
