package node

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gsio-net/gsio-relay/internal/ttlset"
)

// Presence timing bounds (docs/PROTOCOL.md "Presence"): a relay's
// announced interval is clamped to [minPresenceInterval,
// maxPresenceInterval], and the expiry it implies to maxPresenceExpiry,
// inside the 30 s of the SPEC.
const (
	maxPresenceInterval = 8 * time.Second
	minPresenceInterval = 50 * time.Millisecond
	maxPresenceExpiry   = 25 * time.Second
)

// directory maps node ids to the other relays that hold them, from the
// presence topic. One mutex (mu) guards all of it; it is never held while
// calling out of the directory.
//
// Its bounds are shared fairly (docs/PROTOCOL.md 5.3): a relay in good
// standing (standing.good) is never refused a relay slot or an entry
// because of relays that are not: it takes the place of the relay not in
// good standing with the most entries (the newest of those), or one entry
// of it. Relays not in good standing share what is left max-min fairly:
// one takes an entry from another only while that one has at least two
// more. A relay whose claims were refused or evicted is marked over (its
// set is incomplete): the speak-for rule ignores, rather than holds and
// rejects, a message of it for a node it is not known to hold, so that no
// honest forwarder is penalised for what our bounds did.
type directory struct {
	missed     int
	maxRelays  int
	maxPerRel  int
	maxEntries int
	grace      time.Duration // how long a left node may still be spoken for
	m          *metrics

	mu      sync.Mutex
	relays  map[peer.ID]*relayEntry
	holders map[string]map[peer.ID]struct{}
	peak    int           // the most holders since the map was last copied (shrink)
	entries int           // sum of len(relay.nodes)
	heldIDs int           // ids in held deltas, all relays
	changed chan struct{} // closed and replaced on every change
	// refused are relays recently refused (or evicted) by the relay
	// bound: like an entry that is over, what they hold is unknown.
	refused *ttlset.Set[peer.ID]
}

type relayEntry struct {
	epoch    int64
	seq      uint64 // last applied
	lastSeen time.Time
	expiry   time.Duration
	addrs    []ma.Multiaddr
	wsURL    string               // the public WebSocket URL of its last heartbeat; "" none
	nodes    map[string]int64     // held nodes: a key id's proof ts, 0 for other ids
	left     map[string]time.Time // nodes that left recently
	snap     *snapAssembly
	peak     int                         // the most nodes since the map was last copied (shrink)
	added    time.Time                   // when the relay entered the directory
	good     bool                        // a relay in good standing (set by apply and refreshStanding)
	over     bool                        // claims of it were refused or evicted by a bound: its set is incomplete
	held     map[uint64]*presenceMessage // deltas waiting for the seqs before them (holdLocked)
	dig      setDigest                   // of nodes (maintained by addLocked and removeLocked)
	// The last heartbeat applied: the relay's set at annSeq.
	annSeq   uint64
	annDig   setDigest
	annCount int
}

// matchesLocked reports whether e's set is the one its last heartbeat
// announced.
func (e *relayEntry) matchesLocked() bool {
	return e.dig == e.annDig && len(e.nodes) == e.annCount
}

// snapAssembly collects the parts of a multi-part snapshot.
type snapAssembly struct {
	seq   uint64
	parts int
	got   map[int]bool
	nodes map[string]int64
	cut   bool // ids beyond MaxNodesPerRelay were left out
}

func newDirectory(cfg PresenceConfig, m *metrics) *directory {
	return &directory{
		missed:     cfg.Missed,
		maxRelays:  cfg.MaxRelays,
		maxPerRel:  cfg.MaxNodesPerRelay,
		maxEntries: cfg.MaxDirectoryEntries,
		grace:      cfg.SpeakForWait,
		m:          m,
		relays:     map[peer.ID]*relayEntry{},
		holders:    map[string]map[peer.ID]struct{}{},
		changed:    make(chan struct{}),
		refused:    ttlset.New[peer.ID](4*max(cfg.MaxRelays, 64), maxPresenceExpiry, nil),
	}
}

// expiryFor is the expiry of a relay announcing intervalMS:
// missed * clamp(interval, 50 ms, 8 s), at most 25 s.
func (d *directory) expiryFor(intervalMS int64) time.Duration {
	iv := min(max(time.Duration(intervalMS)*time.Millisecond, minPresenceInterval), maxPresenceInterval)
	return min(time.Duration(d.missed)*iv, maxPresenceExpiry)
}

// notifyLocked wakes speak-for waiters and updates the gauges.
func (d *directory) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
	d.m.dirNodes.Set(float64(len(d.holders)))
	d.m.dirRelays.Set(float64(len(d.relays)))
}

// addState is what one apply learnt: no entry can be made room for.
type addState struct{ noRoom bool }

func (d *directory) addLocked(r peer.ID, e *relayEntry, id string, ts int64, st *addState) bool {
	if old, ok := e.nodes[id]; ok {
		if ts > old {
			e.dig.toggle(id, old)
			e.dig.toggle(id, ts)
			e.nodes[id] = ts
		}
		return true
	}
	if len(e.nodes) >= d.maxPerRel {
		e.over = true
		return false
	}
	if d.entries >= d.maxEntries && (st.noRoom || !d.evictEntryLocked(r, e)) {
		// Nothing changes within this apply that would make room.
		st.noRoom = true
		e.over = true
		return false
	}
	e.nodes[id] = ts
	e.dig.toggle(id, ts)
	e.peak = max(e.peak, len(e.nodes))
	delete(e.left, id)
	d.entries++
	h := d.holders[id]
	if h == nil {
		h = map[peer.ID]struct{}{}
		d.holders[id] = h
		d.peak = max(d.peak, len(d.holders))
	}
	h[r] = struct{}{}
	return true
}

// removeLocked removes id from relay r; left records it as a node that
// left (it may still be spoken for within the grace).
func (d *directory) removeLocked(r peer.ID, e *relayEntry, id string, now time.Time, left bool) {
	ts, ok := e.nodes[id]
	if !ok {
		return
	}
	delete(e.nodes, id)
	e.dig.toggle(id, ts)
	d.entries--
	if left && len(e.left) < d.maxPerRel {
		e.left[id] = now
	}
	if h := d.holders[id]; h != nil {
		delete(h, r)
		if len(h) == 0 {
			delete(d.holders, id)
		}
	}
}

// victimLocked is the relay not in good standing, other than r, with the
// most entries (of those, the newest): the one that makes room.
func (d *directory) victimLocked(r peer.ID) (peer.ID, *relayEntry) {
	var (
		vr peer.ID
		v  *relayEntry
	)
	for q, e := range d.relays {
		if q == r || e.good {
			continue
		}
		if v == nil || len(e.nodes) > len(v.nodes) || (len(e.nodes) == len(v.nodes) && e.added.After(v.added)) {
			vr, v = q, e
		}
	}
	return vr, v
}

// evictEntryLocked makes room for one entry of relay r (e), the directory
// being full: it evicts one entry of the victim, if r is in good standing
// or the victim has at least two entries more than r. It reports whether
// it did.
func (d *directory) evictEntryLocked(r peer.ID, e *relayEntry) bool {
	vr, v := d.victimLocked(r)
	if v == nil || len(v.nodes) == 0 || (!e.good && len(v.nodes) <= len(e.nodes)+1) {
		return false
	}
	for id := range v.nodes {
		d.removeLocked(vr, v, id, time.Time{}, false)
		break
	}
	v.over = true
	d.m.dirEvicted.Inc()
	return true
}

// evictRelayLocked makes room for one relay in good standing, the
// directory holding MaxRelays: it removes the victim. It reports whether
// there was one.
func (d *directory) evictRelayLocked() bool {
	vr, v := d.victimLocked("")
	if v == nil {
		return false
	}
	for id := range v.nodes {
		d.removeLocked(vr, v, id, time.Time{}, false)
	}
	d.dropHeldLocked(v)
	delete(d.relays, vr)
	d.refused.Add(vr)
	d.m.dirEvicted.Inc()
	return true
}

// replaceLocked makes set the nodes of relay r. A set that fits whole
// makes r's set complete again (not over).
func (d *directory) replaceLocked(r peer.ID, e *relayEntry, set map[string]int64, now time.Time) (refused int) {
	for id := range e.nodes {
		if _, ok := set[id]; !ok {
			d.removeLocked(r, e, id, now, true)
		}
	}
	var st addState
	for id, ts := range set {
		if !d.addLocked(r, e, id, ts, &st) {
			refused++
		}
	}
	if refused == 0 {
		e.over = false
	}
	return refused
}

// apply records a validated presence message of relay r; good is r's
// standing (standing.good, taken before the call). It reports whether
// r's set should be pulled: a heartbeat newer than what was applied
// announced another set.
func (d *directory) apply(r peer.ID, p *presenceMessage, addrs []ma.Multiaddr, good bool, now time.Time) (pull bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.relays[r]
	if e == nil {
		if len(d.relays) >= d.maxRelays && (!good || !d.evictRelayLocked()) {
			d.m.dirRefused.Inc()
			d.refused.Add(r)
			return false
		}
		e = &relayEntry{epoch: p.Epoch, nodes: map[string]int64{}, left: map[string]time.Time{}, added: now}
		d.relays[r] = e
		d.refused.Remove(r)
	}
	e.good = good
	switch {
	case p.Epoch < e.epoch:
		return false // from before the relay restarted
	case p.Epoch > e.epoch:
		// The relay restarted: its old nodes are gone.
		for id := range e.nodes {
			d.removeLocked(r, e, id, now, true)
		}
		e.epoch, e.seq, e.snap, e.over, e.wsURL = p.Epoch, 0, nil, false, ""
		e.annSeq, e.annDig, e.annCount = 0, setDigest{}, 0
		d.dropHeldLocked(e)
	}
	e.lastSeen = now
	e.expiry = d.expiryFor(p.IntervalMS)
	if len(addrs) > 0 {
		e.addrs = addrs
	}
	if p.Type == presenceSnapshot || p.Type == presenceDigest {
		e.wsURL = p.WSURL
	}
	refused := 0
	if p.Seq > e.seq {
		switch p.Type {
		case presenceDigest:
			if p.Seq > e.annSeq {
				e.annSeq, e.annDig, e.annCount = p.Seq, p.dig, p.Count
			}
			if !e.matchesLocked() {
				return true
			}
			e.seq = p.Seq
			refused += d.drainLocked(r, e, now)
		case presenceJoin, presenceLeave:
			if e.seq > 0 && p.Seq > e.seq+1 && d.holdLocked(e, p) {
				// An earlier message of r is still on its way (pubsub
				// validates on several workers, so one relay's messages
				// can overtake each other): wait for it. (Before the
				// first message applied, there is no earlier one to
				// wait for.)
				return false
			}
			refused += d.deltaLocked(r, e, p, now)
			refused += d.drainLocked(r, e, now)
		case presenceSnapshot:
			parts := max(p.Parts, 1)
			if parts == 1 {
				set := make(map[string]int64, len(p.Nodes))
				for _, id := range p.Nodes {
					set[id] = p.Proofs[id].TS
				}
				refused = d.replaceLocked(r, e, set, now)
				e.seq, e.snap = p.Seq, nil
				break
			}
			if e.snap == nil || e.snap.seq < p.Seq {
				e.snap = &snapAssembly{seq: p.Seq, parts: parts, got: map[int]bool{}, nodes: map[string]int64{}}
			}
			if e.snap.seq != p.Seq || e.snap.parts != parts {
				break
			}
			if !e.snap.got[p.Part] {
				e.snap.got[p.Part] = true
				for _, id := range p.Nodes {
					if len(e.snap.nodes) < d.maxPerRel {
						e.snap.nodes[id] = p.Proofs[id].TS
					} else {
						refused++
					}
				}
			}
			if len(e.snap.got) == e.snap.parts {
				cut := refused > 0 || e.snap.cut
				refused += d.replaceLocked(r, e, e.snap.nodes, now)
				e.over = e.over || cut
				e.seq, e.snap = p.Seq, nil
			} else if refused > 0 {
				e.snap.cut = true
			}
		}
	}
	if refused > 0 {
		d.m.dirRefused.Add(float64(refused))
	}
	d.notifyLocked()
	return false
}

// Bounds of the deltas held back until the ones before them arrive.
const (
	maxHeldDeltas   = 32    // per relay
	maxHeldDeltaIDs = 65536 // ids of held deltas, all relays together
)

// holdLocked keeps delta p of e until the seqs before it arrive; it
// reports false (apply it now, out of order) when a bound is reached.
func (d *directory) holdLocked(e *relayEntry, p *presenceMessage) bool {
	if len(e.held) >= maxHeldDeltas || d.heldIDs+len(p.Nodes) > maxHeldDeltaIDs {
		return false
	}
	if e.held == nil {
		e.held = map[uint64]*presenceMessage{}
	}
	if _, dup := e.held[p.Seq]; !dup {
		e.held[p.Seq] = p
		d.heldIDs += len(p.Nodes)
	}
	return true
}

// deltaLocked applies a join or leave of r and advances r's seq.
func (d *directory) deltaLocked(r peer.ID, e *relayEntry, p *presenceMessage, now time.Time) (refused int) {
	if p.Type == presenceJoin {
		var st addState
		for _, id := range p.Nodes {
			if !d.addLocked(r, e, id, p.Proofs[id].TS, &st) {
				refused++
			}
		}
	} else {
		for _, id := range p.Nodes {
			d.removeLocked(r, e, id, now, true)
		}
	}
	e.seq = max(e.seq, p.Seq)
	return refused
}

// drainLocked applies the held deltas that are next in seq, and the last
// heartbeat when the set it announced is reached; held deltas at or
// below the seq are dropped (a pull or heartbeat covered them).
func (d *directory) drainLocked(r peer.ID, e *relayEntry, now time.Time) (refused int) {
	for {
		if e.annSeq == e.seq+1 && e.matchesLocked() {
			e.seq = e.annSeq
		}
		q, ok := e.held[e.seq+1]
		if !ok {
			break
		}
		delete(e.held, q.Seq)
		d.heldIDs -= len(q.Nodes)
		refused += d.deltaLocked(r, e, q, now)
	}
	for sq, q := range e.held {
		if sq <= e.seq {
			delete(e.held, sq)
			d.heldIDs -= len(q.Nodes)
		}
	}
	return refused
}

// dropHeldLocked forgets e's held deltas (r restarted or expired).
func (d *directory) dropHeldLocked(e *relayEntry) {
	for _, q := range e.held {
		d.heldIDs -= len(q.Nodes)
	}
	e.held = nil
}

// needsPull reports whether r's set still disagrees with its last
// heartbeat (deltas in flight may have arrived since), with that
// heartbeat's seq and digest.
func (d *directory) needsPull(r peer.ID) (bool, uint64, setDigest) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.relays[r]
	if e == nil || e.annSeq <= e.seq {
		return false, 0, setDigest{}
	}
	if e.matchesLocked() {
		e.seq = e.annSeq
		if n := d.drainLocked(r, e, time.Now()); n > 0 {
			d.m.dirRefused.Add(float64(n))
		}
		d.notifyLocked()
		return false, 0, setDigest{}
	}
	return true, e.annSeq, e.annDig
}

// older reports whether a pulled set is older than what r's entry holds
// (or r expired): applyPull then learns nothing from it.
func (d *directory) older(r peer.ID, res *pulled) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.relays[r]
	return e == nil || res.epoch < e.epoch || (res.epoch == e.epoch && res.seq < e.seq)
}

// applyPull makes a pulled set r's set, unless deltas newer than it were
// applied meanwhile or r restarted since. It reports whether r's set
// was that one already (had), and whether it is now (complete: nothing
// left out by a bound or for a missing proof).
func (d *directory) applyPull(r peer.ID, res *pulled, good bool, now time.Time) (had, complete bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.relays[r]
	if e == nil || res.epoch < e.epoch || (res.epoch == e.epoch && res.seq < e.seq) {
		return false, true // expired, refused or stale: nothing learnt
	}
	e.good = good
	if res.epoch > e.epoch {
		for id := range e.nodes {
			d.removeLocked(r, e, id, now, true)
		}
		e.epoch, e.seq, e.snap, e.over = res.epoch, 0, nil, false
		e.annSeq, e.annDig, e.annCount = 0, setDigest{}, 0
		d.dropHeldLocked(e)
	}
	had = e.dig == res.digest
	refused := d.replaceLocked(r, e, res.set, now)
	if res.cut {
		e.over = true
	}
	e.seq = max(e.seq, res.seq)
	refused += d.drainLocked(r, e, now)
	if refused > 0 {
		d.m.dirRefused.Add(float64(refused))
	}
	d.notifyLocked()
	return had, e.dig == res.digest
}

// expire drops relays not heard from within their expiry, and forgets
// left nodes older than the grace. It returns the expired relays.
func (d *directory) expire(now time.Time) []peer.ID {
	d.mu.Lock()
	defer d.mu.Unlock()
	var gone []peer.ID
	for r, e := range d.relays {
		if now.Sub(e.lastSeen) > e.expiry {
			for id := range e.nodes {
				d.removeLocked(r, e, id, now, true)
			}
			d.dropHeldLocked(e)
			delete(d.relays, r)
			gone = append(gone, r)
			continue
		}
		for id, t := range e.left {
			if now.Sub(t) > d.grace {
				delete(e.left, id)
			}
		}
	}
	d.holders = shrink(d.holders, &d.peak)
	for _, e := range d.relays {
		e.nodes = shrink(e.nodes, &e.peak)
	}
	if len(gone) > 0 {
		d.notifyLocked()
	}
	return gone
}

// shrink returns m, or a copy of it once it holds less than a quarter of
// its peak (of more than 1024): a Go map keeps its buckets when entries
// are deleted, and an attacker's expired claims must not leave their
// memory behind.
func shrink[K comparable, V any](m map[K]V, peak *int) map[K]V {
	if *peak <= 1024 || len(m) >= *peak/4 {
		return m
	}
	*peak = len(m)
	c := make(map[K]V, len(m)) // maps.Clone would keep the buckets
	maps.Copy(c, m)
	return c
}

// speakVerdict is what the directory knows about (origin, node).
type speakVerdict struct {
	held          bool // origin announces node, or did within the grace
	originKnown   bool // origin is a relay in the directory
	originOver    bool // what origin holds is not all known: a bound refused or evicted claims of it
	heldElsewhere bool // another relay announces node
	changed       <-chan struct{}
}

func (d *directory) speaks(origin peer.ID, node string, now time.Time) speakVerdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := speakVerdict{changed: d.changed}
	if e := d.relays[origin]; e == nil {
		v.originOver = d.refused.Has(origin)
	} else {
		v.originKnown, v.originOver = true, e.over
		if _, ok := e.nodes[node]; ok {
			v.held = true
		} else if t, ok := e.left[node]; ok && now.Sub(t) <= d.grace {
			v.held = true
		}
	}
	for r := range d.holders[node] {
		if r != origin {
			v.heldElsewhere = true
			break
		}
	}
	return v
}

// holdersOf returns the relays holding node. For a key id, only those
// whose proof is the newest (the node's latest bind) are returned: a relay
// the node left cannot draw its direct traffic from the relay it is on.
func (d *directory) holdersOf(node string) []peer.ID {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]peer.ID, 0, len(d.holders[node]))
	var newest int64
	for r := range d.holders[node] {
		ts := d.relays[r].nodes[node]
		switch {
		case ts > newest:
			newest, out = ts, append(out[:0], r)
		case ts == newest:
			out = append(out, r)
		}
	}
	return out
}

// refreshStanding sets each relay's standing anew (good is called
// without the lock held).
func (d *directory) refreshStanding(good func(peer.ID) bool) {
	d.mu.Lock()
	ids := make([]peer.ID, 0, len(d.relays))
	for r := range d.relays {
		ids = append(ids, r)
	}
	d.mu.Unlock()
	gs := make([]bool, len(ids))
	for i, r := range ids {
		gs[i] = good(r)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, r := range ids {
		if e := d.relays[r]; e != nil {
			e.good = gs[i]
		}
	}
}

// entryCount is the number of (node, relay) entries.
func (d *directory) entryCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.entries
}

// relayCount is the number of relays in the directory.
func (d *directory) relayCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.relays)
}

// lastSeen returns when relay r was last heard of (zero if unknown).
func (d *directory) lastSeen(r peer.ID) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.relays[r]; e != nil {
		return e.lastSeen
	}
	return time.Time{}
}

// addrsOf returns the addresses relay r announced.
func (d *directory) addrsOf(r peer.ID) []ma.Multiaddr {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.relays[r]; e != nil {
		return append([]ma.Multiaddr(nil), e.addrs...)
	}
	return nil
}

func (d *directory) remoteNodes() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.holders))
	for id := range d.holders {
		out = append(out, id)
	}
	return out
}

func (d *directory) snapshot() map[peer.ID][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[peer.ID][]string, len(d.relays))
	for r, e := range d.relays {
		ids := make([]string, 0, len(e.nodes))
		for id := range e.nodes {
			ids = append(ids, id)
		}
		out[r] = ids
	}
	return out
}

// wsURLs returns the public WebSocket URLs the relays in the directory
// announce (relays without one left out), sorted.
func (d *directory) wsURLs() []string {
	d.mu.Lock()
	out := make([]string, 0, len(d.relays))
	for _, e := range d.relays {
		if e.wsURL != "" {
			out = append(out, e.wsURL)
		}
	}
	d.mu.Unlock()
	slices.Sort(out)
	return slices.Compact(out)
}
