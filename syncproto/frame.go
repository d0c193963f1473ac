package syncproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gsio-net/gsio-relay/history"
)

// Frames (docs/PROTOCOL.md 11.1):
//
//	frame = uvarint(L) || kind (1 byte) || body (L-1 bytes),  1 <= L <= MaxFrame
//
// Integers in bodies are uvarints; a timestamp is a uvarint of unix ms
// (at most maxTS); a key or fingerprint is 16 raw bytes.
const (
	KindHello    byte = 0x01 // both ways, first: window, horizon, gaps
	KindRanges   byte = 0x02 // initiator: ranges with its counts and fingerprints
	KindVerdicts byte = 0x03 // responder: one verdict per range
	KindFetch    byte = 0x04 // initiator: keys it wants
	KindMsgs     byte = 0x05 // responder: the frames of a prefix of a Fetch
	KindPush     byte = 0x06 // initiator: frames the responder lacks
	KindAck      byte = 0x07 // responder: how many pushed frames it took
	KindDone     byte = 0x08 // both ways, last: count and fingerprint of the window
	KindError    byte = 0x09 // either way, then the stream ends: a reason
)

// Verdict statuses.
const (
	VerdictEqual byte = 0 // same count and fingerprint
	VerdictSplit byte = 1 // differs, too many keys: split it
	VerdictKeys  byte = 2 // differs: here are the responder's keys
	VerdictAgain byte = 3 // no room in this answer: ask again
)

// Version is the protocol version in Hello.
const Version = 1

// Wire bounds that do not depend on configuration.
const (
	maxTS       = 1 << 53 // largest timestamp (ms)
	MaxGaps     = 64      // gaps in one Hello
	maxReason   = 256     // bytes of an Error reason
	keyEntryMin = 1 + 16  // smallest encoded (ts, key)
	rangeMin    = 3 + 16  // smallest encoded Range
)

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("malformed sync frame")

// errFrameTooLarge: a length over the limit; the stream cannot be read on.
var errFrameTooLarge = errors.New("sync frame too large")

// Window is [From, To) in ts.
type Window struct{ From, To int64 }

// Empty reports whether the window holds no ts.
func (w Window) Empty() bool { return w.From >= w.To }

// Hello opens a session. From the initiator: the proposed window, its
// horizon, its gaps within it, and its count and fingerprint of it. From
// the responder: the window agreed (within the proposal), its horizon and
// gaps, and a verdict on the proposal (VerdictEqual or VerdictSplit) that
// counts only when the window is the proposal.
type Hello struct {
	Version int
	Window  Window
	Horizon int64
	Gaps    []history.Gap
	Count   int
	FP      [16]byte
	Verdict byte
}

// Range is a window with a side's count of entries in it and the XOR of
// their keys.
type Range struct {
	Window
	Count int
	FP    [16]byte
}

// Verdict is the responder's answer on one Range.
type Verdict struct {
	Status byte
	Keys   []history.Entry // VerdictKeys only, ascending
}

// Done closes a session: a side's count and fingerprint of the window
// after the transfers.
type Done struct {
	Count int
	FP    [16]byte
}

// ---- writing ----

// enc builds one frame body.
type enc struct{ b []byte }

func (e *enc) uv(x uint64)    { e.b = binary.AppendUvarint(e.b, x) }
func (e *enc) i(x int64)      { e.uv(uint64(max(x, 0))) }
func (e *enc) k(k [16]byte)   { e.b = append(e.b, k[:]...) }
func (e *enc) bytes(p []byte) { e.uv(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) byte(c byte)    { e.b = append(e.b, c) }

// AppendFrame appends a frame of kind with body to b.
func AppendFrame(b []byte, kind byte, body []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(body)+1))
	b = append(b, kind)
	return append(b, body...)
}

// EncodeHello and the other Encode functions return a frame body.
func EncodeHello(h Hello) []byte {
	var e enc
	e.uv(uint64(h.Version))
	e.i(h.Window.From)
	e.i(h.Window.To)
	e.i(h.Horizon)
	e.uv(uint64(len(h.Gaps)))
	for _, g := range h.Gaps {
		e.i(g.From)
		e.i(g.To)
	}
	e.uv(uint64(h.Count))
	e.k(h.FP)
	e.byte(h.Verdict)
	return e.b
}

func EncodeRanges(rs []Range) []byte {
	var e enc
	e.uv(uint64(len(rs)))
	for _, r := range rs {
		e.i(r.From)
		e.i(r.To)
		e.uv(uint64(r.Count))
		e.k(r.FP)
	}
	return e.b
}

func appendVerdict(e *enc, v Verdict) {
	e.byte(v.Status)
	if v.Status == VerdictKeys {
		appendKeys(e, v.Keys)
	}
}

func appendKeys(e *enc, ks []history.Entry) {
	e.uv(uint64(len(ks)))
	for _, k := range ks {
		e.i(k.TS)
		e.k(k.Key)
	}
}

func EncodeVerdicts(vs []Verdict) []byte {
	var e enc
	e.uv(uint64(len(vs)))
	for _, v := range vs {
		appendVerdict(&e, v)
	}
	return e.b
}

func EncodeKeys(ks []history.Entry) []byte {
	var e enc
	appendKeys(&e, ks)
	return e.b
}

// EncodeFrames encodes a list of message frames (Msgs, Push); a nil
// element of a Msgs answer is a key the responder does not have.
func EncodeFrames(fs [][]byte) []byte {
	var e enc
	e.uv(uint64(len(fs)))
	for _, f := range fs {
		e.bytes(f)
	}
	return e.b
}

func EncodeCount(n int) []byte {
	var e enc
	e.uv(uint64(n))
	return e.b
}

func EncodeDone(d Done) []byte {
	var e enc
	e.uv(uint64(d.Count))
	e.k(d.FP)
	return e.b
}

func EncodeError(reason string) []byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	return []byte(reason)
}

// ---- reading ----

// dec reads one frame body; the first error sticks.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errMalformed, what)
	}
}

func (d *dec) uv(what string) uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return x
}

// ts reads a timestamp or a count: at most maxTS.
func (d *dec) ts(what string) int64 {
	x := d.uv(what)
	if x > maxTS {
		d.fail(what + " out of range")
		return 0
	}
	return int64(x)
}

func (d *dec) k(what string) (k [16]byte) {
	if d.err != nil {
		return k
	}
	if len(d.b) < 16 {
		d.fail(what)
		return k
	}
	copy(k[:], d.b)
	d.b = d.b[16:]
	return k
}

func (d *dec) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// n reads a list length: at most limit, and at most what the rest of
// the body could hold at minSize bytes an item (no allocation beyond the
// bytes received).
func (d *dec) n(what string, limit, minSize int) int {
	x := d.uv(what)
	if d.err == nil && (x > uint64(limit) || x > uint64(len(d.b)/minSize)) {
		d.fail(what + " too long")
		return 0
	}
	return int(x)
}

func (d *dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

func window(d *dec) Window {
	w := Window{From: d.ts("from"), To: d.ts("to")}
	if d.err == nil && w.From > w.To {
		d.fail("window ends before it starts")
	}
	return w
}

func DecodeHello(b []byte) (Hello, error) {
	d := dec{b: b}
	h := Hello{Version: int(d.ts("version")), Window: window(&d), Horizon: d.ts("horizon")}
	n := d.n("gaps", MaxGaps, 2)
	for range n {
		g := history.Gap{From: d.ts("gap"), To: d.ts("gap")}
		if d.err == nil && g.From >= g.To {
			d.fail("empty gap")
		}
		h.Gaps = append(h.Gaps, g)
	}
	h.Count = int(d.ts("count"))
	h.FP = d.k("fingerprint")
	h.Verdict = d.byte("verdict")
	if d.err == nil && h.Verdict != VerdictEqual && h.Verdict != VerdictSplit {
		d.fail("hello verdict")
	}
	return h, d.end()
}

func DecodeRanges(b []byte, limit int) ([]Range, error) {
	d := dec{b: b}
	n := d.n("ranges", limit, rangeMin)
	rs := make([]Range, 0, n)
	for range n {
		r := Range{Window: window(&d), Count: int(d.ts("count")), FP: d.k("fingerprint")}
		if d.err == nil && r.Empty() {
			d.fail("empty range")
		}
		rs = append(rs, r)
	}
	return rs, d.end()
}

func decodeKeys(d *dec, limit int) []history.Entry {
	n := d.n("keys", limit, keyEntryMin)
	ks := make([]history.Entry, 0, n)
	for range n {
		ks = append(ks, history.Entry{TS: d.ts("key ts"), Key: d.k("key")})
	}
	return ks
}

// DecodeVerdicts reads want verdicts of at most keyLimit keys each.
func DecodeVerdicts(b []byte, want, keyLimit int) ([]Verdict, error) {
	d := dec{b: b}
	n := d.n("verdicts", want, 1)
	if d.err == nil && n != want {
		d.fail(fmt.Sprintf("%d verdicts for %d ranges", n, want))
	}
	vs := make([]Verdict, 0, n)
	for range n {
		v := Verdict{Status: d.byte("status")}
		switch v.Status {
		case VerdictEqual, VerdictSplit, VerdictAgain:
		case VerdictKeys:
			v.Keys = decodeKeys(&d, keyLimit)
		default:
			d.fail("verdict status")
		}
		vs = append(vs, v)
	}
	return vs, d.end()
}

func DecodeKeys(b []byte, limit int) ([]history.Entry, error) {
	d := dec{b: b}
	ks := decodeKeys(&d, limit)
	return ks, d.end()
}

// DecodeFrames reads at most limit message frames; the slices alias b.
func DecodeFrames(b []byte, limit int) ([][]byte, error) {
	d := dec{b: b}
	n := d.n("frames", limit, 1)
	fs := make([][]byte, 0, n)
	for range n {
		l := d.uv("frame length")
		if d.err == nil && l > uint64(len(d.b)) {
			d.fail("frame length")
		}
		if d.err != nil {
			break
		}
		fs = append(fs, d.b[:l:l])
		d.b = d.b[l:]
	}
	return fs, d.end()
}

func DecodeCount(b []byte) (int, error) {
	d := dec{b: b}
	n := int(d.ts("count"))
	return n, d.end()
}

func DecodeDone(b []byte) (Done, error) {
	d := dec{b: b}
	dn := Done{Count: int(d.ts("count")), FP: d.k("fingerprint")}
	return dn, d.end()
}

// ---- the stream ----

// conn reads and writes frames on a stream, counting bytes.
type conn struct {
	r        *bufio.Reader
	w        *bufio.Writer
	maxFrame int
	sent     int64
	recv     int64
	buf      []byte
}

func newConn(rw io.ReadWriter, maxFrame int) *conn {
	return &conn{r: bufio.NewReaderSize(rw, 32<<10), w: bufio.NewWriterSize(rw, 32<<10), maxFrame: maxFrame}
}

// write sends one frame and flushes it.
func (c *conn) write(kind byte, body []byte) error {
	if len(body)+1 > c.maxFrame {
		return fmt.Errorf("%w: own frame of %d bytes", errFrameTooLarge, len(body)+1)
	}
	c.buf = AppendFrame(c.buf[:0], kind, body)
	c.sent += int64(len(c.buf))
	if _, err := c.w.Write(c.buf); err != nil {
		return err
	}
	return c.w.Flush()
}

// frameChunk is the most read allocates ahead of the bytes received.
const frameChunk = 64 << 10

// read reads one frame.
func (c *conn) read() (byte, []byte, error) {
	kind, body, n, err := ReadFrame(c.r, c.maxFrame)
	c.recv += int64(n)
	return kind, body, err
}

// ReadFrame reads one frame of at most maxFrame bytes (kind included)
// and reports the bytes it consumed. A large frame's buffer grows with
// the bytes that arrive: a peer that announces 4 MiB and stalls pins 64
// KiB.
func ReadFrame(r *bufio.Reader, maxFrame int) (kind byte, body []byte, n int, err error) {
	l, err := binary.ReadUvarint(r)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return 0, nil, 0, io.EOF
	case err != nil && strings.Contains(err.Error(), "overflow"):
		return 0, nil, 0, fmt.Errorf("%w: length: %v", errMalformed, err)
	case err != nil:
		return 0, nil, 0, err // the stream's own (deadline, reset)
	}
	n = uvarintLen(l)
	if l == 0 {
		return 0, nil, n, fmt.Errorf("%w: zero length", errMalformed)
	}
	if l > uint64(maxFrame) {
		return 0, nil, n, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, l, maxFrame)
	}
	buf := make([]byte, 0, min(int(l), frameChunk))
	for uint64(len(buf)) < l {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		want := min(int(l)-len(buf), cap(buf)-len(buf))
		k, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+k]
		n += k
		if err != nil {
			return 0, nil, n, fmt.Errorf("frame body: %w", err) // the stream ended or failed
		}
	}
	return buf[0], buf[1:], n, nil
}

func uvarintLen(x uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], x)
}
