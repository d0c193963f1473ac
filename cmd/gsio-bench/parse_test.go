package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBenchMessageRoundTrip(t *testing.T) {
	for _, size := range []int{0, 64, 256, 1000} {
		f := benchFields{run: 1, pub: 7, seq: 123456, ts: 987654321012}
		msg := appendBench(nil, "pub-7", "", f, size)
		var m struct {
			Type    string          `json:"message_type"`
			ID      string          `json:"message_id"`
			Sender  string          `json:"sender_id"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Fatalf("size %d: not JSON: %v: %s", size, err, msg)
		}
		if m.ID != "1-123456" || m.Sender != "pub-7" || m.Type != "BenchData" {
			t.Fatalf("size %d: envelope %+v", size, m)
		}
		if size >= 64 && len(m.Payload) != size {
			t.Fatalf("payload of %d bytes, want %d", len(m.Payload), size)
		}
		got, ok := scanBench(msg)
		if !ok || got != f {
			t.Fatalf("size %d: scanBench = %+v %v, want %+v", size, got, ok, f)
		}
	}
}

func TestScanBench(t *testing.T) {
	cases := []struct {
		in   string
		want benchFields
		ok   bool
	}{
		{`{"payload":{"bm":[1,2,3,4]}}`, benchFields{1, 2, 3, 4}, true},
		{`"bm":[0,0,0,0]`, benchFields{}, true},
		{`{"message_type":"RelayError","payload":{"code":"rate_limited"}}`, benchFields{}, false},
		{`"bm":[1,2,3]`, benchFields{}, false},
		{`"bm":[1,2,3,4`, benchFields{}, false},
		{`"bm":[1,2,x,4]`, benchFields{}, false},
		{`"bm":[1,,3,4]`, benchFields{}, false},
		{`"bm":[-1,2,3,4]`, benchFields{}, false},
		{`"bm":[1,2,3,12345678901234567890]`, benchFields{}, false},
		{`"bm":[`, benchFields{}, false},
	}
	for _, c := range cases {
		got, ok := scanBench([]byte(c.in))
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("scanBench(%s) = %+v %v, want %+v %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// natsRec records what the parser found.
type natsRec struct {
	msgs         []string
	pings, pongs int
	errs         []string
}

func (r *natsRec) natsMsg(p []byte)    { r.msgs = append(r.msgs, string(p)) }
func (r *natsRec) natsPing()           { r.pings++ }
func (r *natsRec) natsPong()           { r.pongs++ }
func (r *natsRec) natsErr(line []byte) { r.errs = append(r.errs, string(line)) }

func TestNATSParserEverySplit(t *testing.T) {
	stream := "INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n" +
		"MSG bench.fan 1 5\r\nhello\r\n" +
		"PING\r\n" +
		"MSG bench.fan 1 0\r\n\r\n" +
		"MSG bench.fan 1 reply.to 11\r\nwith\r\nCRLF!\r\n" +
		"+OK\r\nPONG\r\n-ERR 'Slow Consumer'\r\n" +
		"MSG a 2 3\r\nabc\r\n"
	want := []string{"hello", "", "with\r\nCRLF!", "abc"}
	check := func(name string, r *natsRec) {
		t.Helper()
		if strings.Join(r.msgs, "|") != strings.Join(want, "|") || r.pings != 1 || r.pongs != 1 ||
			len(r.errs) != 1 || r.errs[0] != "-ERR 'Slow Consumer'" {
			t.Fatalf("%s: msgs %q pings %d pongs %d errs %q", name, r.msgs, r.pings, r.pongs, r.errs)
		}
	}
	// Whole, then cut at every pair of positions (three chunks).
	var p natsParser
	r := &natsRec{}
	if err := p.feed([]byte(stream), r); err != nil {
		t.Fatal(err)
	}
	check("whole", r)
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j++ {
			var p natsParser
			r := &natsRec{}
			for _, chunk := range []string{stream[:i], stream[i:j], stream[j:]} {
				// A private copy: the parser must not keep chunk.
				b := []byte(chunk)
				if err := p.feed(b, r); err != nil {
					t.Fatalf("split %d,%d: %v", i, j, err)
				}
				clear(b)
			}
			check(fmt.Sprintf("split %d,%d", i, j), r)
		}
	}
	// Byte by byte.
	p, r = natsParser{}, &natsRec{}
	for i := range len(stream) {
		if err := p.feed([]byte{stream[i]}, r); err != nil {
			t.Fatal(err)
		}
	}
	check("bytewise", r)
}

func TestNATSParserErrors(t *testing.T) {
	for _, in := range []string{
		"MSG a 1 x\r\n",
		"MSG a 1 3\r\nabcXY",
		"WHAT\r\n",
		"MSG a 1 -3\r\n",
	} {
		var p natsParser
		if err := p.feed([]byte(in), &natsRec{}); err == nil {
			t.Errorf("feed(%q): no error", in)
		}
	}
	var p natsParser
	if err := p.feed(bytes.Repeat([]byte("x"), maxNATSLine+1), &natsRec{}); err == nil {
		t.Error("an endless line is accepted")
	}
}

func TestFrames(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 5, 125, 126, 1000, 70000} {
		payload := bytes.Repeat([]byte("abcdefg"), n/7+1)[:n]
		f := appendFrame(nil, opText, payload, key)
		// A client frame: masked; unmask it as a server would, then
		// parse it as the server frame it becomes once the mask bit and
		// key are removed.
		hdr := len(f) - n - 4
		srv := append([]byte{f[0], f[1] &^ 0x80}, f[2:hdr]...)
		body := append([]byte(nil), f[hdr+4:]...)
		maskBytes(body, key)
		if !bytes.Equal(body, payload) {
			t.Fatalf("n=%d: masking does not round-trip", n)
		}
		srv = append(srv, body...)
		for cut := 0; cut < len(srv); cut += max(1, len(srv)/7) {
			if _, _, m, err := parseFrame(srv[:cut]); err != nil || m != 0 {
				t.Fatalf("n=%d: partial frame of %d bytes: n=%d err=%v", n, cut, m, err)
			}
		}
		op, p, m, err := parseFrame(append(srv, 0x81))
		if err != nil || op != opText || m != len(srv) || !bytes.Equal(p, payload) {
			t.Fatalf("n=%d: parseFrame = %d %d %v", n, op, m, err)
		}
		if frameLen(srv) != len(srv) {
			t.Fatalf("n=%d: frameLen %d, want %d", n, frameLen(srv), len(srv))
		}
	}
	if _, _, _, err := parseFrame([]byte{0x81, 0x85, 0, 0, 0, 0, 1}); err == nil {
		t.Fatal("a masked server frame is accepted")
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := int64(1); i <= 100000; i++ {
		h.record(i * int64(time.Microsecond))
	}
	for _, q := range []float64{0.5, 0.99} {
		want := time.Duration(q * 100000 * float64(time.Microsecond))
		got := h.quantile(q)
		if d := float64(got-want) / float64(want); d < -0.02 || d > 0.02 {
			t.Errorf("q%.2f = %v, want %v ± 2%%", q, got, want)
		}
	}
	if h.quantile(1) != 100*time.Millisecond {
		t.Errorf("max quantile %v", h.quantile(1))
	}
	for v := int64(0); v < 1<<20; v += 37 {
		b := bucketOf(v)
		if lowerBound(b) > v || lowerBound(b+1) <= v {
			t.Fatalf("value %d in bucket %d [%d, %d)", v, b, lowerBound(b), lowerBound(b+1))
		}
	}
}

func TestSeqSet(t *testing.T) {
	var s seqSet
	for _, q := range []int64{0, 5, 5, 100000, 0, 64} {
		s.add(q)
	}
	if s.unique != 4 || s.dup != 2 {
		t.Fatalf("unique %d dup %d", s.unique, s.dup)
	}
}
