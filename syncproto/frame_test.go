package syncproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/gsio-net/gsio-relay/history"
)

func TestFrameRoundTrip(t *testing.T) {
	h := Hello{Version: 1, Window: Window{10, 20}, Horizon: 5, Gaps: []history.Gap{{From: 11, To: 12}}, Count: 3, FP: [16]byte{1}, Verdict: VerdictSplit}
	if got, err := DecodeHello(EncodeHello(h)); err != nil || got.Window != h.Window || got.Gaps[0] != h.Gaps[0] || got.FP != h.FP || got.Verdict != h.Verdict {
		t.Fatalf("hello: %+v, %v", got, err)
	}
	rs := []Range{{Window: Window{1, 2}, Count: 7, FP: [16]byte{9}}}
	if got, err := DecodeRanges(EncodeRanges(rs), 10); err != nil || got[0] != rs[0] {
		t.Fatalf("ranges: %+v, %v", got, err)
	}
	vs := []Verdict{{Status: VerdictEqual}, {Status: VerdictKeys, Keys: []history.Entry{{TS: 4, Key: [16]byte{2}}}}}
	if got, err := DecodeVerdicts(EncodeVerdicts(vs), 2, 10); err != nil || got[1].Keys[0] != vs[1].Keys[0] {
		t.Fatalf("verdicts: %+v, %v", got, err)
	}
	if got, err := DecodeFrames(EncodeFrames([][]byte{[]byte("ab"), nil}), 2); err != nil || string(got[0]) != "ab" || len(got[1]) != 0 {
		t.Fatalf("frames: %q, %v", got, err)
	}
}

func TestFrameBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"zero length", []byte{0}, errMalformed},
		{"over the limit", []byte{0x80, 0x80, 0x04}, errFrameTooLarge},
		{"truncated", []byte{5, KindHello, 1}, io.ErrUnexpectedEOF},
		{"bad varint", bytes.Repeat([]byte{0xff}, 11), errMalformed},
	} {
		_, _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(tc.in)), 1024)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A list longer than its bytes could hold allocates nothing.
	if _, err := DecodeRanges([]byte{0xff, 0xff, 0x03}, 1<<20); !errors.Is(err, errMalformed) {
		t.Fatalf("ranges: %v", err)
	}
}

// FuzzDecode feeds arbitrary bytes to the frame reader and every body
// decoder: no panic, bounded allocation, and what decodes re-encodes to
// bytes that decode to the same value (varints may be non-minimal).
func FuzzDecode(f *testing.F) {
	f.Add(AppendFrame(nil, KindHello, EncodeHello(Hello{Version: 1, Window: Window{1, 9}, Gaps: []history.Gap{{From: 2, To: 3}}})))
	f.Add(AppendFrame(nil, KindRanges, EncodeRanges([]Range{{Window: Window{1, 2}, Count: 1}})))
	f.Add(AppendFrame(nil, KindVerdicts, EncodeVerdicts([]Verdict{{Status: VerdictKeys, Keys: []history.Entry{{TS: 1}}}})))
	f.Add(AppendFrame(nil, KindPush, EncodeFrames([][]byte{[]byte(`{}`)})))
	f.Add(AppendFrame(nil, KindDone, EncodeDone(Done{Count: 1})))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, body, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(data)), 1<<16)
		if err != nil {
			return
		}
		switch kind {
		case KindHello:
			if h, err := DecodeHello(body); err == nil && !same(h, EncodeHello(h), func(b []byte) (any, error) { return DecodeHello(b) }) {
				t.Fatalf("hello does not round-trip: %x", body)
			}
		case KindRanges:
			if rs, err := DecodeRanges(body, 1024); err == nil && !same(rs, EncodeRanges(rs), func(b []byte) (any, error) { return DecodeRanges(b, 1024) }) {
				t.Fatalf("ranges do not round-trip: %x", body)
			}
		case KindVerdicts:
			if len(body) > 0 {
				if vs, err := DecodeVerdicts(body, int(body[0]&0x7f), 4096); err == nil && !same(vs, EncodeVerdicts(vs), func(b []byte) (any, error) { return DecodeVerdicts(b, len(vs), 4096) }) {
					t.Fatalf("verdicts do not round-trip: %x", body)
				}
			}
		case KindFetch:
			if ks, err := DecodeKeys(body, 4096); err == nil && !same(ks, EncodeKeys(ks), func(b []byte) (any, error) { return DecodeKeys(b, 4096) }) {
				t.Fatalf("keys do not round-trip: %x", body)
			}
		case KindMsgs, KindPush:
			if fs, err := DecodeFrames(body, 4096); err == nil && !same(fs, EncodeFrames(fs), func(b []byte) (any, error) { return DecodeFrames(b, 4096) }) {
				t.Fatalf("frames do not round-trip: %x", body)
			}
		case KindAck:
			_, _ = DecodeCount(body)
		case KindDone:
			if d, err := DecodeDone(body); err == nil && !same(d, EncodeDone(d), func(b []byte) (any, error) { return DecodeDone(b) }) {
				t.Fatalf("done does not round-trip: %x", body)
			}
		}
	})
}

// same reports whether enc decodes (with dec) to v again.
func same(v any, enc []byte, dec func([]byte) (any, error)) bool {
	got, err := dec(enc)
	return err == nil && reflect.DeepEqual(got, v)
}
