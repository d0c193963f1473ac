package syncproto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/gsio-net/gsio-relay/history"
)

// Store is a side's history as a session reads it (history.Store
// implements it).
type Store interface {
	Fingerprint(from, to int64) (count int, fp [16]byte, err error)
	Keys(from, to int64, limit int) ([]history.Entry, error)
	Get(ts int64, key [16]byte) (sender string, frame []byte, err error)
}

// Side is what one side brings to a session.
type Side struct {
	Store  Store
	Limits Limits
	// Horizon: the store may lack anything before it (retention); a
	// window never starts before either side's horizon.
	Horizon int64
	// Until: the responder cuts the proposed window there (its clock minus
	// its settle delay); unused by the initiator.
	Until int64
	// Gaps are this side's recorded gaps (those meeting the window are
	// sent, at most MaxGaps, coarsened beyond).
	Gaps []history.Gap
	// Accept judges and stores a message frame received from the peer.
	// want is the entry the initiator asked for (nil for a pushed frame);
	// w is the session's window. A *Refusal refuses it: a hostile one
	// ends the session, another is counted and skipped. Accept must
	// check that the frame is want (or within w).
	Accept func(frame []byte, want *history.Entry, w Window) error
	// Settle waits until what Accept stored is readable (a flush), before
	// the closing fingerprint. May be nil.
	Settle func() error
}

// Refusal is Accept's refusal of a frame.
type Refusal struct {
	Reason  string
	Hostile bool // no honest relay sends it: the session ends
}

func (r *Refusal) Error() string { return "refused message: " + r.Reason }

// Reasons a session ends with an error (the metrics' labels).
const (
	ReasonProtocol = "protocol"        // malformed or unexpected frame
	ReasonTooLarge = "frame_too_large" // a frame over MaxFrame
	ReasonBudget   = "budget"          // MaxBytes
	ReasonRounds   = "rounds"          // MaxRounds
	ReasonRanges   = "ranges"          // MaxRanges
	ReasonLie      = "lie"             // an answer that contradicts the question
	ReasonInvalid  = "invalid_message" // a message no honest relay sends
	ReasonRefused  = "refused"         // the peer sent Error
	ReasonDense    = "dense"           // more than DenseKeys in one millisecond
	ReasonIO       = "io"              // the stream failed (deadline, reset, EOF)
	ReasonStore    = "store"           // our own store failed
)

// Error ends a session.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return "sync " + e.Reason + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Hostile reports whether the peer did what no honest relay does.
func (e *Error) Hostile() bool {
	switch e.Reason {
	case ReasonProtocol, ReasonTooLarge, ReasonBudget, ReasonRounds, ReasonRanges, ReasonLie, ReasonInvalid:
		return true
	}
	return false
}

func fail(reason string, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Result describes a session, also one that failed (as far as it went).
type Result struct {
	Window   Window
	PeerGaps []history.Gap // the peer's gaps meeting Window
	// Reconciled: both sides ended with the same count and fingerprint of
	// Window.
	Reconciled bool
	Rounds     int // request/answer exchanges, the opening included
	Ranges     int // ranges compared
	Received   int // messages taken from the peer (Accept said yes)
	Sent       int // messages given to the peer
	Ignored    int // frames refused without hostility, or missing at the peer
	BytesSent  int64
	BytesRecv  int64
}

// session is what both roles share.
type session struct {
	side Side
	l    Limits
	c    *conn
	res  Result
}

func newSession(rw io.ReadWriter, side Side) *session {
	return &session{side: side, l: side.Limits, c: newConn(rw, side.Limits.MaxFrame)}
}

func (s *session) result() Result {
	s.res.BytesSent, s.res.BytesRecv = s.c.sent, s.c.recv
	return s.res
}

// send writes a frame, within the byte budget.
func (s *session) send(kind byte, body []byte) error {
	if err := s.c.write(kind, body); err != nil {
		if errors.Is(err, errFrameTooLarge) {
			return fail(ReasonStore, "%v", err)
		}
		return &Error{Reason: ReasonIO, Err: err}
	}
	return s.budget()
}

func (s *session) budget() error {
	if s.c.sent+s.c.recv > s.l.MaxBytes {
		return fail(ReasonBudget, "over %d bytes", s.l.MaxBytes)
	}
	return nil
}

// recv reads the next frame, which must be of kind want (an Error frame
// ends the session as refused).
func (s *session) recv(want byte) ([]byte, error) {
	kind, body, err := s.c.read()
	switch {
	case errors.Is(err, errFrameTooLarge):
		return nil, &Error{Reason: ReasonTooLarge, Err: err}
	case errors.Is(err, errMalformed):
		return nil, &Error{Reason: ReasonProtocol, Err: err}
	case err != nil:
		return nil, &Error{Reason: ReasonIO, Err: err}
	}
	if err := s.budget(); err != nil {
		return nil, err
	}
	if kind == KindError {
		return nil, fail(ReasonRefused, "peer: %q", string(body[:min(len(body), maxReason)]))
	}
	if kind != want {
		return nil, fail(ReasonProtocol, "frame kind %#x, want %#x", kind, want)
	}
	return body, nil
}

// round counts one exchange.
func (s *session) round() error {
	s.res.Rounds++
	if s.res.Rounds > s.l.MaxRounds {
		return fail(ReasonRounds, "over %d rounds", s.l.MaxRounds)
	}
	return nil
}

func (s *session) countRanges(n int) error {
	s.res.Ranges += n
	if s.res.Ranges > s.l.MaxRanges {
		return fail(ReasonRanges, "over %d ranges", s.l.MaxRanges)
	}
	return nil
}

// accept hands a received frame to Accept.
func (s *session) accept(frame []byte, want *history.Entry) error {
	err := s.side.Accept(frame, want, s.res.Window)
	if err == nil {
		s.res.Received++
		return nil
	}
	var r *Refusal
	if errors.As(err, &r) && !r.Hostile {
		s.res.Ignored++
		return nil
	}
	return &Error{Reason: ReasonInvalid, Err: err}
}

// closing settles our store and compares the window's fingerprints.
func (s *session) fingerprint() (Done, error) {
	if s.side.Settle != nil {
		if err := s.side.Settle(); err != nil {
			return Done{}, &Error{Reason: ReasonStore, Err: err}
		}
	}
	n, fp, err := s.side.Store.Fingerprint(s.res.Window.From, s.res.Window.To)
	if err != nil {
		return Done{}, &Error{Reason: ReasonStore, Err: err}
	}
	return Done{Count: n, FP: fp}, nil
}

// gapsIn returns the gaps meeting w, clipped to it, at most MaxGaps
// (beyond, the last ones are merged into one).
func gapsIn(gaps []history.Gap, w Window) []history.Gap {
	var out []history.Gap
	for _, g := range gaps {
		g.From, g.To = max(g.From, w.From), min(g.To, w.To)
		if g.From < g.To {
			out = append(out, g)
		}
	}
	if len(out) > MaxGaps {
		out[MaxGaps-1].To = out[len(out)-1].To
		out = out[:MaxGaps]
	}
	return out
}

// Abort tells the peer why the session ends (best effort).
func (s *session) abort(err error) {
	var e *Error
	if errors.As(err, &e) && e.Reason != ReasonIO && e.Reason != ReasonRefused {
		_ = s.c.write(KindError, EncodeError(e.Reason))
	}
}

// wrapStore names a failure of our own store.
func wrapStore(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Reason: ReasonStore, Err: err}
}

// Propose is the window an initiator proposes at now: from now − window
// (plus 2 s, rounded up to a whole second, so that a responder whose
// retention horizon moved on a moment later, or whose clock is a little
// ahead, does not cut it, which would cost a round) or its own horizon,
// to now − settle.
func Propose(now time.Time, window, settle time.Duration, horizon int64) Window {
	from := now.Add(-window + 2*time.Second).UnixMilli()
	from = (from + 999) / 1000 * 1000
	w := Window{From: max(from, horizon, 0), To: now.Add(-settle).UnixMilli()}
	w.To = max(w.To, w.From)
	return w
}

// ---- initiator ----

// Initiate runs a session as the initiator over rw, proposing window p.
// It fetches what the peer has and we lack, and pushes what we have and
// the peer lacks. The caller bounds it in time (a deadline on rw) and
// closes rw afterwards.
func Initiate(rw io.ReadWriter, side Side, p Window) (Result, error) {
	s := &initiator{session: newSession(rw, side)}
	err := s.run(p)
	if err != nil {
		s.abort(err)
	}
	return s.result(), err
}

type initiator struct {
	*session
	need, give []history.Entry
}

func (s *initiator) run(p Window) error {
	if p.Empty() {
		return nil
	}
	n, fp, err := s.side.Store.Fingerprint(p.From, p.To)
	if err != nil {
		return wrapStore(err)
	}
	hello := Hello{Version: Version, Window: p, Horizon: s.side.Horizon, Gaps: gapsIn(s.side.Gaps, p), Count: n, FP: fp}
	if err := s.send(KindHello, EncodeHello(hello)); err != nil {
		return err
	}
	body, err := s.recv(KindHello)
	if err != nil {
		return err
	}
	if err := s.round(); err != nil {
		return err
	}
	h, err := DecodeHello(body)
	if err != nil {
		return &Error{Reason: ReasonProtocol, Err: err}
	}
	w := h.Window
	if w.From < p.From || w.To > p.To || h.Version < 1 {
		return fail(ReasonLie, "window %v outside the proposal %v", w, p)
	}
	s.res.Window, s.res.PeerGaps = w, gapsIn(h.Gaps, w)
	if w.Empty() {
		s.res.Reconciled = true
		return nil
	}
	if err := s.countRanges(1); err != nil {
		return err
	}
	var queue []Window
	switch {
	case w == p && h.Verdict == VerdictEqual:
		s.res.Reconciled = true
		return nil
	case w == p:
		if w.To-w.From == 1 {
			queue = []Window{w} // only keys can settle one millisecond
		} else {
			queue = split(w, s.l.Fanout)
			if err := s.countRanges(len(queue)); err != nil {
				return err
			}
		}
	default:
		queue = []Window{w}
	}
	for len(queue) > 0 {
		k := min(len(queue), s.l.MaxRangesPerFrame)
		batch := queue[:k]
		queue = queue[k:]
		more, err := s.compare(batch)
		if err != nil {
			return err
		}
		queue = append(queue, more...)
		if len(s.need)+len(s.give) >= s.l.TransferKeys {
			if err := s.transfer(); err != nil {
				return err
			}
		}
	}
	if err := s.transfer(); err != nil {
		return err
	}
	ours, err := s.fingerprint()
	if err != nil {
		return err
	}
	if err := s.send(KindDone, EncodeDone(ours)); err != nil {
		return err
	}
	body, err = s.recv(KindDone)
	if err != nil {
		return err
	}
	theirs, err := DecodeDone(body)
	if err != nil {
		return &Error{Reason: ReasonProtocol, Err: err}
	}
	_ = s.round()
	s.res.Reconciled = theirs == ours
	return nil
}

// compare sends one Ranges frame for batch and acts on the verdicts: the
// sub-ranges to compare next are returned, keys found missing on either
// side are queued for transfer.
func (s *initiator) compare(batch []Window) ([]Window, error) {
	rs := make([]Range, len(batch))
	for i, w := range batch {
		n, fp, err := s.side.Store.Fingerprint(w.From, w.To)
		if err != nil {
			return nil, wrapStore(err)
		}
		rs[i] = Range{Window: w, Count: n, FP: fp}
	}
	if err := s.send(KindRanges, EncodeRanges(rs)); err != nil {
		return nil, err
	}
	body, err := s.recv(KindVerdicts)
	if err != nil {
		return nil, err
	}
	if err := s.round(); err != nil {
		return nil, err
	}
	vs, err := DecodeVerdicts(body, len(rs), s.l.DenseKeys)
	if err != nil {
		return nil, &Error{Reason: ReasonProtocol, Err: err}
	}
	var next []Window
	for i, v := range vs {
		r := rs[i]
		span := r.To - r.From
		switch v.Status {
		case VerdictEqual:
		case VerdictAgain:
			next = append(next, r.Window)
		case VerdictSplit:
			if span == 1 {
				return nil, fail(ReasonLie, "split asked for one millisecond %d", r.From)
			}
			sub := split(r.Window, s.l.Fanout)
			if err := s.countRanges(len(sub)); err != nil {
				return nil, err
			}
			next = append(next, sub...)
		case VerdictKeys:
			if err := checkKeys(v.Keys, r.Window, s.l, span); err != nil {
				return nil, err
			}
			if r.Count > s.l.DenseKeys {
				if span == 1 {
					return nil, fail(ReasonDense, "%d entries at %d", r.Count, r.From)
				}
				// We hold too many here to list: narrow it down.
				sub := split(r.Window, s.l.Fanout)
				if err := s.countRanges(len(sub)); err != nil {
					return nil, err
				}
				next = append(next, sub...)
				continue
			}
			ours, err := s.side.Store.Keys(r.From, r.To, s.l.DenseKeys+1)
			if err != nil {
				return nil, wrapStore(err)
			}
			s.diff(ours, v.Keys)
		}
	}
	return next, nil
}

// checkKeys checks a key list of the peer: strictly ascending, within w,
// at most LeafKeys (DenseKeys for one millisecond).
func checkKeys(ks []history.Entry, w Window, l Limits, span int64) error {
	limit := l.LeafKeys
	if span == 1 {
		limit = l.DenseKeys
	}
	if len(ks) > limit {
		return fail(ReasonLie, "%d keys for a range that takes at most %d", len(ks), limit)
	}
	for i, k := range ks {
		if k.TS < w.From || k.TS >= w.To {
			return fail(ReasonLie, "key at %d outside [%d, %d)", k.TS, w.From, w.To)
		}
		if i > 0 && cmpEntry(ks[i-1], k) >= 0 {
			return fail(ReasonLie, "keys not in ascending order")
		}
	}
	return nil
}

func cmpEntry(a, b history.Entry) int {
	switch {
	case a.TS < b.TS:
		return -1
	case a.TS > b.TS:
		return 1
	}
	return bytes.Compare(a.Key[:], b.Key[:])
}

// diff queues what theirs has and ours lacks (need), and the reverse
// (give). Both are ascending.
func (s *initiator) diff(ours, theirs []history.Entry) {
	i, j := 0, 0
	for i < len(ours) || j < len(theirs) {
		switch {
		case j == len(theirs) || (i < len(ours) && cmpEntry(ours[i], theirs[j]) < 0):
			s.give = append(s.give, ours[i])
			i++
		case i == len(ours) || cmpEntry(ours[i], theirs[j]) > 0:
			s.need = append(s.need, theirs[j])
			j++
		default:
			i++
			j++
		}
	}
}

// transfer fetches need and pushes give.
func (s *initiator) transfer() error {
	for len(s.need) > 0 {
		chunk := s.need[:min(len(s.need), s.l.MaxKeysPerFrame)]
		if err := s.send(KindFetch, EncodeKeys(chunk)); err != nil {
			return err
		}
		body, err := s.recv(KindMsgs)
		if err != nil {
			return err
		}
		if err := s.round(); err != nil {
			return err
		}
		fs, err := DecodeFrames(body, len(chunk))
		if err != nil {
			return &Error{Reason: ReasonProtocol, Err: err}
		}
		if len(fs) == 0 {
			return fail(ReasonLie, "no answer to a fetch of %d keys", len(chunk))
		}
		for i, f := range fs {
			if len(f) == 0 {
				s.res.Ignored++ // gone meanwhile (retention)
				continue
			}
			if err := s.accept(f, &chunk[i]); err != nil {
				return err
			}
		}
		s.need = s.need[len(fs):]
	}
	s.need = nil
	for len(s.give) > 0 {
		var (
			fs   [][]byte
			size int
			k    int
		)
		for k < len(s.give) && len(fs) < s.l.MaxKeysPerFrame {
			e := s.give[k]
			_, f, err := s.side.Store.Get(e.TS, e.Key)
			if errors.Is(err, history.ErrNotFound) {
				k++
				continue
			}
			if err != nil {
				return wrapStore(err)
			}
			if len(fs) > 0 && size+len(f)+16 > packBytes(s.l) {
				break
			}
			fs = append(fs, f)
			size += len(f) + 10
			k++
		}
		s.give = s.give[k:]
		if len(fs) == 0 {
			continue
		}
		if err := s.send(KindPush, EncodeFrames(fs)); err != nil {
			return err
		}
		body, err := s.recv(KindAck)
		if err != nil {
			return err
		}
		if err := s.round(); err != nil {
			return err
		}
		n, err := DecodeCount(body)
		if err != nil {
			return &Error{Reason: ReasonProtocol, Err: err}
		}
		s.res.Sent += min(n, len(fs))
	}
	s.give = nil
	return nil
}

// packBytes is how many bytes of messages one Msgs or Push frame packs
// (a message larger goes alone): 1 MiB, so that a peer whose MaxFrame is
// smaller than ours (a larger --max-message-size here) still reads
// frames of several messages.
func packBytes(l Limits) int { return min(l.MaxFrame-64, 1<<20) }

// split cuts w into at most fanout contiguous windows, on whole seconds
// when w spans fanout seconds or more (the store sums whole seconds
// without a scan).
func split(w Window, fanout int) []Window {
	span := w.To - w.From
	step := (span + int64(fanout) - 1) / int64(fanout)
	if span >= int64(fanout)*1000 {
		step = (step + 999) / 1000 * 1000
	}
	step = max(step, 1)
	out := make([]Window, 0, fanout)
	from := w.From
	for from < w.To {
		to := from + step
		if span >= int64(fanout)*1000 {
			to = to / 1000 * 1000 // a second's boundary
			if to <= from {
				to = from + step
			}
		}
		to = min(to, w.To)
		out = append(out, Window{from, to})
		from = to
	}
	return out
}

// ---- responder ----

// Respond runs a session as the responder over rw: it answers the
// initiator's comparisons and fetches and takes its pushes, until Done.
func Respond(rw io.ReadWriter, side Side) (Result, error) {
	s := &responder{session: newSession(rw, side)}
	err := s.run()
	if err != nil {
		s.abort(err)
	}
	return s.result(), err
}

type responder struct{ *session }

func (s *responder) run() error {
	body, err := s.recv(KindHello)
	if err != nil {
		return err
	}
	if err := s.round(); err != nil {
		return err
	}
	h, err := DecodeHello(body)
	if err != nil {
		return &Error{Reason: ReasonProtocol, Err: err}
	}
	if h.Version < 1 {
		return fail(ReasonProtocol, "version %d", h.Version)
	}
	p := h.Window
	w := Window{From: max(p.From, s.side.Horizon), To: min(p.To, s.side.Until)}
	w.To = max(w.To, w.From)
	s.res.Window, s.res.PeerGaps = w, gapsIn(h.Gaps, w)
	reply := Hello{Version: Version, Window: w, Horizon: s.side.Horizon, Gaps: gapsIn(s.side.Gaps, w), Verdict: VerdictSplit}
	if !w.Empty() {
		n, fp, err := s.side.Store.Fingerprint(w.From, w.To)
		if err != nil {
			return wrapStore(err)
		}
		reply.Count, reply.FP = n, fp
		if w == p && n == h.Count && fp == h.FP {
			reply.Verdict = VerdictEqual
		}
	}
	if err := s.send(KindHello, EncodeHello(reply)); err != nil {
		return err
	}
	if w.Empty() || (w == p && reply.Verdict == VerdictEqual) {
		s.res.Reconciled = true
		return nil
	}
	if err := s.countRanges(1); err != nil {
		return err
	}
	for {
		kind, body, err := s.c.read()
		switch {
		case errors.Is(err, errFrameTooLarge):
			return &Error{Reason: ReasonTooLarge, Err: err}
		case errors.Is(err, errMalformed):
			return &Error{Reason: ReasonProtocol, Err: err}
		case err != nil:
			return &Error{Reason: ReasonIO, Err: fmt.Errorf("before Done: %w", err)}
		}
		if err := s.budget(); err != nil {
			return err
		}
		if err := s.round(); err != nil {
			return err
		}
		switch kind {
		case KindRanges:
			err = s.ranges(body)
		case KindFetch:
			err = s.fetch(body)
		case KindPush:
			err = s.push(body)
		case KindDone:
			return s.done(body)
		case KindError:
			return fail(ReasonRefused, "peer: %q", string(body[:min(len(body), maxReason)]))
		default:
			err = fail(ReasonProtocol, "frame kind %#x", kind)
		}
		if err != nil {
			return err
		}
	}
}

// ranges answers a Ranges frame. The ranges must lie within the window
// and not overlap, so that one frame costs at most one pass over the
// window's buckets.
func (s *responder) ranges(body []byte) error {
	rs, err := DecodeRanges(body, s.l.MaxRangesPerFrame)
	if err != nil {
		return &Error{Reason: ReasonProtocol, Err: err}
	}
	if err := s.countRanges(len(rs)); err != nil {
		return err
	}
	w := s.res.Window
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b Range) int { return int(min(max(a.From-b.From, -1), 1)) })
	for i, r := range sorted {
		if r.From < w.From || r.To > w.To {
			return fail(ReasonProtocol, "range [%d, %d) outside the window", r.From, r.To)
		}
		if i > 0 && sorted[i-1].To > r.From {
			return fail(ReasonProtocol, "overlapping ranges")
		}
	}
	vs := make([]Verdict, len(rs))
	room := s.l.MaxFrame - 64 - 2*len(rs)
	for i, r := range rs {
		n, fp, err := s.side.Store.Fingerprint(r.From, r.To)
		if err != nil {
			return wrapStore(err)
		}
		span := r.To - r.From
		switch {
		case n == r.Count && fp == r.FP:
			vs[i].Status = VerdictEqual
		case span > 1 && n > s.l.LeafKeys:
			vs[i].Status = VerdictSplit
		default:
			limit := s.l.LeafKeys
			if span == 1 {
				limit = s.l.DenseKeys
			}
			if n > limit {
				return fail(ReasonDense, "%d entries at %d", n, r.From)
			}
			if n*(keyEntryMin+9) > room {
				vs[i].Status = VerdictAgain
				continue
			}
			ks, err := s.side.Store.Keys(r.From, r.To, limit+1)
			if err != nil {
				return wrapStore(err)
			}
			switch {
			case len(ks) > limit && span > 1:
				vs[i].Status = VerdictSplit // grew meanwhile
			case len(ks) > limit:
				return fail(ReasonDense, "%d entries at %d", len(ks), r.From)
			default:
				vs[i] = Verdict{Status: VerdictKeys, Keys: ks}
				room -= len(ks) * (keyEntryMin + 9)
			}
		}
	}
	return s.send(KindVerdicts, EncodeVerdicts(vs))
}

// fetch answers a Fetch frame with the frames of as many of its keys,
// from the first, as fit one frame (an empty frame for a key we lack).
func (s *responder) fetch(body []byte) error {
	ks, err := DecodeKeys(body, s.l.MaxKeysPerFrame)
	if err != nil {
		return &Error{Reason: ReasonProtocol, Err: err}
	}
	w := s.res.Window
	fs := make([][]byte, 0, len(ks))
	size := 16
	for _, k := range ks {
		if k.TS < w.From || k.TS >= w.To {
			return fail(ReasonProtocol, "fetch of %d outside the window", k.TS)
		}
		_, f, err := s.side.Store.Get(k.TS, k.Key)
		if errors.Is(err, history.ErrNotFound) {
			f, err = nil, nil
		}
		if err != nil {
			return wrapStore(err)
		}
		if len(fs) > 0 && size+len(f)+10 > packBytes(s.l) {
			break
		}
		fs = append(fs, f)
		size += len(f) + 10
		s.res.Sent += min(len(f), 1)
	}
	return s.send(KindMsgs, EncodeFrames(fs))
}

// push takes a Push frame and acknowledges it.
func (s *responder) push(body []byte) error {
	fs, err := DecodeFrames(body, s.l.MaxKeysPerFrame)
	if err != nil {
		return &Error{Reason: ReasonProtocol, Err: err}
	}
	before := s.res.Received
	for _, f := range fs {
		if err := s.accept(f, nil); err != nil {
			return err
		}
	}
	return s.send(KindAck, EncodeCount(s.res.Received-before))
}

// done answers Done with our fingerprint of the window.
func (s *responder) done(body []byte) error {
	theirs, err := DecodeDone(body)
	if err != nil {
		return &Error{Reason: ReasonProtocol, Err: err}
	}
	ours, err := s.fingerprint()
	if err != nil {
		return err
	}
	if err := s.send(KindDone, EncodeDone(ours)); err != nil {
		return err
	}
	s.res.Reconciled = theirs == ours
	return nil
}
