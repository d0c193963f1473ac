package node

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// PresenceProtocol is the stream protocol on which a relay answers for its
// node set (docs/PROTOCOL.md 5.6): the set is pulled from its holder on a
// digest mismatch or at first contact, never broadcast.
const PresenceProtocol = protocol.ID("/gsio/presence/1.0.0")

// Frames of /gsio/presence/1.0.0 (the framing of node/framing.go).
const (
	framePullRequest byte = 0x10 // body: a JSON object ({} today)
	framePullPage    byte = 0x11 // body: a pullPage
)

// Wire bounds of a pull (the same for every relay).
const (
	maxPullRequest = 1024      // request body bytes
	maxPullPage    = 256 << 10 // page body bytes
	maxPullPages   = 256       // pages of one answer
	maxPullNodes   = 100000    // ids of one answer
	maxPullBytes   = 16 << 20  // bytes of one answer in all
	pullTimeout    = 10 * time.Second
)

// Bounds of the pulls a relay makes and serves. A relay pulls a relay at
// most once an interval; a pull that fails, is invalid, leaves the sets
// apart or was not needed doubles that gap, up to pullMaxBackoff
// intervals. It serves one peer pullServeRate pulls/s (burst
// pullServeBurst) and pullServeConcurrent pulls at once.
const (
	pullDelay           = 100 * time.Millisecond // a mismatch waits for deltas in flight
	pullWorkers         = 4
	pullMaxBackoff      = 8
	pullServeRate       = 1.0
	pullServeBurst      = 4
	pullServeConcurrent = 8
)

// setDigest is the digest of a relay's node set: the XOR of nodeHash over
// its members. XOR makes it incremental (a join or a leave toggles one
// hash) and independent of order.
type setDigest [16]byte

// nodeHash is the first 16 bytes of
// sha256("gsio-presence/1" 0x00 || uvarint(len(id)) || id || uint64be(ts)),
// ts the node's proof ts (a key id), 0 for other ids.
func nodeHash(id string, ts int64) setDigest {
	h := sha256.New()
	var b [binary.MaxVarintLen64 + 8]byte
	_, _ = h.Write([]byte("gsio-presence/1\x00"))
	_, _ = h.Write(binary.AppendUvarint(b[:0], uint64(len(id))))
	_, _ = h.Write([]byte(id))
	_, _ = h.Write(binary.BigEndian.AppendUint64(b[:0], uint64(ts)))
	var out setDigest
	copy(out[:], h.Sum(b[:0]))
	return out
}

// toggle adds (or removes) the member (id, ts).
func (d *setDigest) toggle(id string, ts int64) {
	x := nodeHash(id, ts)
	for i := range d {
		d[i] ^= x[i]
	}
}

// String is the wire form: base64url without padding (22 characters).
func (d setDigest) String() string { return base64.RawURLEncoding.EncodeToString(d[:]) }

func parseDigest(s string) (setDigest, bool) {
	var d setDigest
	if len(s) != 22 {
		return d, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != len(d) {
		return d, false
	}
	copy(d[:], b)
	return d, true
}

// pullPage is one page of a pulled set. Every page repeats the header
// (relay, epoch, seq, count, digest, pages), which must be the same in all
// pages of one answer.
type pullPage struct {
	Relay  string                    `json:"relay"`
	Epoch  int64                     `json:"epoch"`
	Seq    uint64                    `json:"seq"`
	Count  int                       `json:"count"`  // ids in the whole set
	Digest string                    `json:"digest"` // of the whole set
	Page   int                       `json:"page"`
	Pages  int                       `json:"pages"`
	Nodes  []string                  `json:"nodes"`            // strictly ascending (byte order) across the pages
	Proofs map[string]nodeauth.Proof `json:"proofs,omitempty"` // as in a join (5.5)
}

// parsePullPage decodes and checks one page on its own; it returns a
// reason label for a page to refuse.
func parsePullPage(data []byte) (*pullPage, peer.ID, setDigest, string) {
	var pg pullPage
	if len(data) > maxPullPage {
		return nil, "", setDigest{}, "too_large"
	}
	if err := json.Unmarshal(data, &pg); err != nil {
		return nil, "", setDigest{}, message.CodeInvalidJSON
	}
	relay, err := peer.Decode(pg.Relay)
	if err != nil {
		return nil, "", setDigest{}, "bad_relay"
	}
	if pg.Epoch <= 0 || pg.Seq == 0 {
		return nil, "", setDigest{}, "bad_sequence"
	}
	dig, ok := parseDigest(pg.Digest)
	if !ok || pg.Count < 0 || pg.Count > maxPullNodes {
		return nil, "", setDigest{}, "bad_digest"
	}
	if pg.Pages < 1 || pg.Pages > maxPullPages || pg.Page < 0 || pg.Page >= pg.Pages {
		return nil, "", setDigest{}, "bad_parts"
	}
	if len(pg.Nodes) > maxPresenceNodes || len(pg.Nodes) > pg.Count {
		return nil, "", setDigest{}, "too_many_nodes"
	}
	if len(pg.Proofs) > len(pg.Nodes) {
		return nil, "", setDigest{}, "bad_proofs"
	}
	for i, id := range pg.Nodes {
		if id == "" || len(id) > message.MaxIDLen || !utf8.ValidString(id) {
			return nil, "", setDigest{}, "bad_node_id"
		}
		if i > 0 && pg.Nodes[i-1] >= id {
			return nil, "", setDigest{}, "not_sorted"
		}
	}
	return &pg, relay, dig, ""
}

// pulled is a relay's set as one pull received it, its key ids proven.
type pulled struct {
	epoch  int64
	seq    uint64
	digest setDigest // the set's, as sent (and checked)
	set    map[string]int64
	cut    bool // ids beyond MaxNodesPerRelay (or unproven) were left out
}

// errPull labels a failed pull for the metrics.
type errPull struct {
	result string
	err    error
}

func (e *errPull) Error() string { return e.result + ": " + e.err.Error() }
func (e *errPull) Unwrap() error { return e.err }

func pullErr(result string, format string, args ...any) error {
	return &errPull{result: result, err: fmt.Errorf(format, args...)}
}

// pull fetches relay r's set over PresenceProtocol, dialling r's presence
// addresses when it is not connected. A connection it dialled is closed
// after the pull unless another component protected it meanwhile
// (direct routing): pulls must not turn a partial mesh into a full one.
func (p *presence) pull(r peer.ID) (*pulled, error) {
	ctx, cancel := context.WithTimeout(p.ctx, pullTimeout)
	defer cancel()
	dialled, err := connectRelay(ctx, p.host, p.dir, r, "gsio presence")
	if dialled {
		defer func() {
			if !p.host.ConnManager().IsProtected(r, "") {
				_ = p.host.Network().ClosePeer(r)
			}
		}()
	}
	if err != nil {
		return nil, pullErr("dial", "%w", err)
	}
	st, err := p.host.NewStream(ctx, r, PresenceProtocol)
	if err != nil {
		return nil, pullErr("stream", "open %s stream to %s: %w", PresenceProtocol, r, err)
	}
	defer func() { _ = st.Reset() }() // a no-op after a clean end (runs before the close above)
	dl, _ := ctx.Deadline()
	_ = st.SetDeadline(dl)
	if _, err := st.Write(appendFrame(nil, framePullRequest, []byte("{}"))); err != nil {
		return nil, pullErr("stream", "write pull request: %w", err)
	}
	_ = st.CloseWrite()
	res, err := p.readPull(r, bufio.NewReader(st))
	if err != nil {
		return nil, err
	}
	_ = st.Close()
	return res, nil
}

// pullReader is what readPull reads frames from.
type pullReader interface {
	ReadByte() (byte, error)
	Read([]byte) (int, error)
}

// readPull reads and checks the pages of one answer of relay r: every
// bound of the wire, the same header in every page, pages in order, ids
// ascending across pages, as many ids as count, and the set's digest the
// announced one (a set that does not hash to its digest is refused
// whole). Key ids without a valid proof for r are left out (proven), as
// in presence messages.
func (p *presence) readPull(r peer.ID, br *bufio.Reader) (*pulled, error) {
	var (
		first *pullPage
		dig   setDigest
		got   setDigest
		last  string
		total int
		bytes int
		res   = &pulled{set: map[string]int64{}}
		pages []*pullPage
	)
	for page := 0; ; page++ {
		kind, body, err := readFrame(br, maxPullPage)
		if err != nil {
			if errors.Is(err, errFrameTooLarge) {
				return nil, pullErr("too_large", "%w", err)
			}
			return nil, pullErr("stream", "read page %d: %w", page, err)
		}
		bytes += len(body)
		p.m.presenceBytes.WithLabelValues("pull").Add(float64(len(body) + 4))
		if bytes > maxPullBytes {
			return nil, pullErr("too_large", "answer over %d bytes", maxPullBytes)
		}
		if kind != framePullPage {
			return nil, pullErr("invalid", "frame kind %#x", kind)
		}
		pg, relay, d, reason := parsePullPage(body)
		if reason != "" {
			return nil, pullErr("invalid", "page %d: %s", page, reason)
		}
		if first == nil {
			if relay != r {
				return nil, pullErr("invalid", "answer for relay %s", relay)
			}
			first, dig = pg, d
			res.epoch, res.seq, res.digest = pg.Epoch, pg.Seq, d
		} else if pg.Relay != first.Relay || pg.Epoch != first.Epoch || pg.Seq != first.Seq ||
			pg.Count != first.Count || d != dig || pg.Pages != first.Pages {
			return nil, pullErr("invalid", "page %d: header differs from page 0", page)
		}
		if pg.Page != page {
			return nil, pullErr("invalid", "page %d numbered %d", page, pg.Page)
		}
		if len(pg.Nodes) > 0 && last != "" && pg.Nodes[0] <= last {
			return nil, pullErr("invalid", "page %d: ids not ascending across pages", page)
		}
		total += len(pg.Nodes)
		if total > first.Count {
			return nil, pullErr("invalid", "more ids than count %d", first.Count)
		}
		for _, id := range pg.Nodes {
			got.toggle(id, pg.Proofs[id].TS)
		}
		if len(pg.Nodes) > 0 {
			last = pg.Nodes[len(pg.Nodes)-1]
		}
		pages = append(pages, pg)
		if page == first.Pages-1 {
			break
		}
	}
	if total != first.Count {
		return nil, pullErr("invalid", "%d ids, count %d", total, first.Count)
	}
	if got != dig {
		return nil, pullErr("invalid", "the set's digest is %s, announced %s", got, dig)
	}
	// Only a consistent answer costs signature checks: of what the
	// directory may hold (MaxNodesPerRelay), and no more pages once
	// maxPullProofFailures key ids failed (a relay that sends forged
	// proofs gets the rest left out, not minutes of CPU).
	fails := 0
	for _, pg := range pages {
		if len(res.set) >= p.cfg.Presence.MaxNodesPerRelay || fails > maxPullProofFailures {
			res.cut = true
			break
		}
		proven := p.proven(r, &presenceMessage{Relay: first.Relay, Nodes: pg.Nodes, Proofs: pg.Proofs})
		if len(proven) < len(pg.Nodes) {
			res.cut = true
			fails += len(pg.Nodes) - len(proven)
		}
		for _, id := range proven {
			if len(res.set) >= p.cfg.Presence.MaxNodesPerRelay {
				res.cut = true
				break
			}
			res.set[id] = pg.Proofs[id].TS
		}
	}
	return res, nil
}

// maxPullProofFailures: key ids of one pulled answer whose proofs may
// fail before its remaining pages go unchecked (left out). An honest
// relay announces only proofs it verified itself.
const maxPullProofFailures = 64

// localSet is a consistent copy of this relay's set for an answer: seq is
// read with the set, under p.mu, so every change announced at or before
// seq is in it (a later delta re-applies idempotently).
func (p *presence) localSet() (ids []string, proofs map[string]nodeauth.Proof, seq uint64) {
	p.mu.Lock()
	seq = p.seq.Load()
	ids = make([]string, 0, len(p.local))
	proofs = map[string]nodeauth.Proof{}
	for id, pr := range p.local {
		ids = append(ids, id)
		if pr != nil {
			proofs[id] = *pr
		}
	}
	p.mu.Unlock()
	slices.Sort(ids)
	return ids, proofs, seq
}

// answerPages encodes this relay's set as the pages of one answer.
func (p *presence) answerPages() ([][]byte, error) {
	ids, proofs, seq := p.localSet()
	chunks := chunkNodes(ids, maxPullPage+4096+maxAddrsPerRelay*256-2048)
	if len(chunks) == 0 {
		chunks = [][]string{{}}
	}
	if len(chunks) > maxPullPages {
		p.log.Error("presence set too large; answering with the first pages only", "pages", len(chunks))
		chunks = chunks[:maxPullPages]
	}
	var dig setDigest
	count := 0
	for _, c := range chunks {
		for _, id := range c {
			dig.toggle(id, proofs[id].TS)
		}
		count += len(c)
	}
	if seq == 0 {
		seq = 1 // nothing announced yet: the set is empty or about to be
	}
	out := make([][]byte, 0, len(chunks))
	for i, c := range chunks {
		b, err := json.Marshal(&pullPage{Relay: p.self.String(), Epoch: p.epoch, Seq: seq, Count: count,
			Digest: dig.String(), Page: i, Pages: len(chunks), Nodes: c, Proofs: proofsOf(c, proofs)})
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// handlePull answers one pull: bounded per peer and in all, one request
// frame, the pages, close.
func (p *presence) handlePull(s network.Stream) {
	from := s.Conn().RemotePeer()
	refuse := func(result string) {
		p.m.presenceServed.WithLabelValues(result).Inc()
		_ = s.Reset()
	}
	if !p.allow.allowed(from) {
		refuse("not_allowed")
		return
	}
	if p.serveRate.take(from, 1, false, time.Now()) == 0 {
		refuse("rate")
		return
	}
	select {
	case p.serveSem <- struct{}{}:
		defer func() { <-p.serveSem }()
	default:
		refuse("busy")
		return
	}
	_ = s.SetDeadline(time.Now().Add(pullTimeout))
	kind, _, err := readFrame(bufio.NewReader(s), maxPullRequest)
	if err != nil || kind != framePullRequest {
		refuse("bad_request")
		return
	}
	pages, err := p.answerPages()
	if err != nil {
		p.log.Error("encode presence answer", "err", err)
		refuse("encode")
		return
	}
	w := bufio.NewWriterSize(s, 64<<10)
	for _, b := range pages {
		if _, err := w.Write(appendFrame(nil, framePullPage, b)); err != nil {
			refuse("write")
			return
		}
	}
	if err := w.Flush(); err != nil {
		refuse("write")
		return
	}
	p.m.presenceServed.WithLabelValues("ok").Inc()
	_ = s.Close()
}

// pullState is the schedule of pulls from one relay.
type pullState struct {
	due     time.Time // wanted at; zero: not wanted
	next    time.Time // not before (the gap and backoff)
	running bool
	fails   int
}

// pulls schedules pulls: want marks a relay, pullLoop runs the due ones
// on at most pullWorkers goroutines. One mutex, mu, taken alone.
type pulls struct {
	mu   sync.Mutex
	st   map[peer.ID]*pullState
	kick chan struct{}
}

// want asks for a pull of r (a heartbeat mismatched, or first contact).
func (p *presence) wantPull(r peer.ID) {
	now := time.Now()
	p.pl.mu.Lock()
	s := p.pl.st[r]
	if s == nil {
		if len(p.pl.st) >= 2*p.cfg.Presence.MaxRelays {
			p.pl.mu.Unlock()
			return
		}
		s = &pullState{}
		p.pl.st[r] = s
	}
	if s.due.IsZero() {
		s.due = now.Add(pullDelay)
	}
	p.pl.mu.Unlock()
	select {
	case p.pl.kick <- struct{}{}:
	default:
	}
}

// pullLoop starts the due pulls.
func (p *presence) pullLoop() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	running := 0
	done := make(chan struct{}, pullWorkers)
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-done:
			running--
		case <-p.pl.kick:
		case <-t.C:
		}
		now := time.Now()
		var start []peer.ID
		p.pl.mu.Lock()
		for r, s := range p.pl.st {
			if running+len(start) >= pullWorkers {
				break
			}
			if s.running || s.due.IsZero() || now.Before(s.due) || now.Before(s.next) {
				continue
			}
			s.running, s.due = true, time.Time{}
			start = append(start, r)
		}
		// Forget relays neither wanted nor backing off (a relay that
		// failed is remembered for the longest backoff after its gap).
		for r, s := range p.pl.st {
			if !s.running && s.due.IsZero() && now.After(s.next.Add(time.Duration(min(s.fails, 1))*pullMaxBackoff*p.cfg.Presence.Interval)) {
				delete(p.pl.st, r)
			}
		}
		p.pl.mu.Unlock()
		for _, r := range start {
			running++
			p.spawn(func() {
				ok := p.pullOnce(r)
				p.pl.mu.Lock()
				if s := p.pl.st[r]; s != nil {
					s.running = false
					if ok {
						s.fails = 0
					} else {
						s.fails = min(s.fails+1, 10)
					}
					gap := p.cfg.Presence.Interval << min(s.fails, 3)
					s.next = time.Now().Add(min(gap, pullMaxBackoff*p.cfg.Presence.Interval))
				}
				p.pl.mu.Unlock()
				done <- struct{}{}
			})
		}
	}
}

// pullOnce pulls r if the directory still needs it and applies the set.
// It reports whether that went as an honest relay's pull goes: a valid
// answer that was needed, and after which the two sets agree.
func (p *presence) pullOnce(r peer.ID) bool {
	need, annSeq, annDig := p.dir.needsPull(r)
	if !need {
		p.m.presencePulls.WithLabelValues("skipped").Inc()
		return true
	}
	res, err := p.pull(r)
	if err != nil {
		result := "stream"
		var pe *errPull
		if errors.As(err, &pe) {
			result = pe.result
		}
		p.m.presencePulls.WithLabelValues(result).Inc()
		if p.ctx.Err() == nil {
			p.log.Debug("presence pull failed", "remote", r.String(), "err", err)
		}
		return false
	}
	stale := p.dir.older(r, res)
	had, complete := p.dir.applyPull(r, res, p.good(r), time.Now())
	switch {
	case stale:
		// An answer older than what we hold: fine if deltas made the
		// pull unneeded meanwhile; otherwise it counts as a failure (a
		// relay that answers with old sets backs off like any other).
		if need, _, _ := p.dir.needsPull(r); need {
			p.m.presencePulls.WithLabelValues("stale").Inc()
			return false
		}
	case res.seq == annSeq && res.digest != annDig:
		// The heartbeat announced another set at the same seq: a lie.
		p.m.presencePulls.WithLabelValues("invalid").Inc()
		p.log.Debug("presence heartbeat and set disagree", "remote", r.String(), "seq", annSeq)
		return false
	case had:
		// We held that set already: the heartbeat was wrong.
		p.m.presencePulls.WithLabelValues("unneeded").Inc()
		return false
	case !complete:
		p.m.presencePulls.WithLabelValues("incomplete").Inc()
		return false
	}
	p.m.presencePulls.WithLabelValues("ok").Inc()
	return true
}
