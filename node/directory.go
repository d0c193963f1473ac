package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
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
	entries int           // sum of len(relay.nodes)
	changed chan struct{} // closed and replaced on every change
}

type relayEntry struct {
	epoch    int64
	seq      uint64 // last applied
	lastSeen time.Time
	expiry   time.Duration
	addrs    []ma.Multiaddr
	nodes    map[string]int64     // held nodes: a key id's proof ts, 0 for other ids
	left     map[string]time.Time // nodes that left recently
	snap     *snapAssembly
}

// snapAssembly collects the parts of a multi-part snapshot.
type snapAssembly struct {
	seq   uint64
	parts int
	got   map[int]bool
	nodes map[string]int64
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

func (d *directory) addLocked(r peer.ID, e *relayEntry, id string, ts int64) bool {
	if _, ok := e.nodes[id]; ok {
		e.nodes[id] = max(e.nodes[id], ts)
		return true
	}
	if len(e.nodes) >= d.maxPerRel || d.entries >= d.maxEntries {
		return false
	}
	e.nodes[id] = ts
	delete(e.left, id)
	d.entries++
	h := d.holders[id]
	if h == nil {
		h = map[peer.ID]struct{}{}
		d.holders[id] = h
	}
	h[r] = struct{}{}
	return true
}

func (d *directory) removeLocked(r peer.ID, e *relayEntry, id string, now time.Time) {
	if _, ok := e.nodes[id]; !ok {
		return
	}
	delete(e.nodes, id)
	d.entries--
	if len(e.left) < d.maxPerRel {
		e.left[id] = now
	}
	if h := d.holders[id]; h != nil {
		delete(h, r)
		if len(h) == 0 {
			delete(d.holders, id)
		}
	}
}

// replaceLocked makes set the nodes of relay r.
func (d *directory) replaceLocked(r peer.ID, e *relayEntry, set map[string]int64, now time.Time) (refused int) {
	for id := range e.nodes {
		if _, ok := set[id]; !ok {
			d.removeLocked(r, e, id, now)
		}
	}
	for id, ts := range set {
		if !d.addLocked(r, e, id, ts) {
			refused++
		}
	}
	return refused
}

// apply records a validated presence message of relay r.
func (d *directory) apply(r peer.ID, p *presenceMessage, addrs []ma.Multiaddr, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.relays[r]
	if e == nil {
		if len(d.relays) >= d.maxRelays {
			d.m.dirRefused.Inc()
			return
		}
		e = &relayEntry{epoch: p.Epoch, nodes: map[string]int64{}, left: map[string]time.Time{}}
		d.relays[r] = e
	}
	switch {
	case p.Epoch < e.epoch:
		return // from before the relay restarted
	case p.Epoch > e.epoch:
		// The relay restarted: its old nodes are gone.
		for id := range e.nodes {
			d.removeLocked(r, e, id, now)
		}
		e.epoch, e.seq, e.snap = p.Epoch, 0, nil
	}
	e.lastSeen = now
	e.expiry = d.expiryFor(p.IntervalMS)
	if len(addrs) > 0 {
		e.addrs = addrs
	}
	refused := 0
	if p.Seq > e.seq {
		switch p.Type {
		case presenceJoin:
			for _, id := range p.Nodes {
				if !d.addLocked(r, e, id, p.Proofs[id].TS) {
					refused++
				}
			}
			e.seq = p.Seq
		case presenceLeave:
			for _, id := range p.Nodes {
				d.removeLocked(r, e, id, now)
			}
			e.seq = p.Seq
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
					}
				}
			}
			if len(e.snap.got) == e.snap.parts {
				refused = d.replaceLocked(r, e, e.snap.nodes, now)
				e.seq, e.snap = p.Seq, nil
			}
		}
	}
	if refused > 0 {
		d.m.dirRefused.Add(float64(refused))
	}
	d.notifyLocked()
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
				d.removeLocked(r, e, id, now)
			}
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
	if len(gone) > 0 {
		d.notifyLocked()
	}
	return gone
}

// speakVerdict is what the directory knows about (origin, node).
type speakVerdict struct {
	held          bool // origin announces node, or did within the grace
	originKnown   bool // origin is a relay in the directory
	heldElsewhere bool // another relay announces node
	changed       <-chan struct{}
}

func (d *directory) speaks(origin peer.ID, node string, now time.Time) speakVerdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := speakVerdict{changed: d.changed}
	if e := d.relays[origin]; e != nil {
		v.originKnown = true
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
