package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrames(t *testing.T) {
	var b []byte
	b = appendFrame(b, frameMessage, []byte(`{"a":1}`))
	b = appendFrame(b, frameNACK, []byte(`{}`))
	b = appendFrame(b, 0x7f, nil) // unknown kind, empty body
	r := bufio.NewReader(bytes.NewReader(b))
	for _, want := range []struct {
		kind byte
		body string
	}{{frameMessage, `{"a":1}`}, {frameNACK, `{}`}, {0x7f, ``}} {
		k, body, err := readFrame(r, 100)
		if err != nil || k != want.kind || string(body) != want.body {
			t.Fatalf("frame: %x %q %v, want %x %q", k, body, err, want.kind, want.body)
		}
	}
	if _, _, err := readFrame(r, 100); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	// Over the limit: refused before reading the body.
	big := appendFrame(nil, frameMessage, make([]byte, 101))
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(big)), 100); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("big frame: %v", err)
	}
	// Zero length and truncated bodies.
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{0})), 100); err == nil {
		t.Fatal("zero-length frame accepted")
	}
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{5, 1, 'a'})), 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, frameMessage, []byte(`{"message_type":"x"}`)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range 64 {
			kind, body, err := readFrame(r, 1024)
			if err != nil {
				return
			}
			if len(body) > 1024 {
				t.Fatalf("body of %d bytes over the limit", len(body))
			}
			if again := appendFrame(nil, kind, body); len(again) > len(data) {
				t.Fatal("re-encoded frame longer than its input")
			}
		}
	})
}
