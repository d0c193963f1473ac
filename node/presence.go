package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/gsio-net/gsio-relay/internal/ttlset"
	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// Presence message types.
const (
	presenceDigest = "digest" // the heartbeat: count and digest of the set, no ids
	presenceJoin   = "join"
	presenceLeave  = "leave"
	// presenceSnapshot is the full set on the topic, as relays before the
	// digest heartbeat published it every interval. Still accepted (from
	// such relays and other implementations); no longer sent.
	presenceSnapshot = "snapshot"
)

// Wire limits of presence messages (the same for every relay, so that no
// honest relay's message is rejected by another's configuration).
const (
	// maxPresenceNodes bounds the node ids in one presence message.
	maxPresenceNodes = 10000
	// maxAddrsPerRelay bounds the addresses of one presence message.
	maxAddrsPerRelay = 16
	// maxSnapshotParts bounds the parts of one snapshot.
	maxSnapshotParts = 64
	// proofJSONBytes bounds the JSON of one proof in presence (relay id,
	// 43-byte nonce, ts, 86-byte sig and the keys).
	proofJSONBytes = 400
	// maxWSURLLen bounds the ws_url of one presence message.
	maxWSURLLen = 512
)

// presenceMessage is the JSON carried on the presence topic
// (docs/PROTOCOL.md "Presence"). A relay only speaks about itself: Relay
// must be the GossipSub author of the message.
type presenceMessage struct {
	Type       string   `json:"type"`            // digest, join or leave (snapshot: received only)
	Relay      string   `json:"relay"`           // the publishing relay's peer id
	Epoch      int64    `json:"epoch"`           // relay boot time, unix ms; > 0
	Seq        uint64   `json:"seq"`             // per epoch, +1 per presence message; > 0
	IntervalMS int64    `json:"interval_ms"`     // the relay's snapshot interval; > 0
	Addrs      []string `json:"addrs,omitempty"` // snapshot: multiaddrs to dial the relay at (no /p2p)
	Nodes      []string `json:"nodes"`           // snapshot: all (this part's) nodes; join/leave: the change
	Part       int      `json:"part,omitempty"`  // snapshot: 0-based part index
	Parts      int      `json:"parts,omitempty"` // snapshot: number of parts; absent = 1
	// Proofs: for each key id in Nodes (snapshot, join), the node's proof
	// that it bound to this relay (docs/PROTOCOL.md 5.5).
	Proofs map[string]nodeauth.Proof `json:"proofs,omitempty"`
	// Count and Digest: digest only, the relay's set after every delta up
	// to Seq-1 (docs/PROTOCOL.md 5.1).
	Count  int    `json:"count,omitempty"`
	Digest string `json:"digest,omitempty"`
	// WSURL: digest (and snapshot): the relay's public WebSocket URL
	// (--public-ws-url), given to the nodes of a draining relay
	// (docs/PROTOCOL.md 5.1).
	WSURL string `json:"ws_url,omitempty"`

	dig setDigest // Digest, parsed
}

// presence owns the presence topic, the directory built from it and the
// pull protocol (/gsio/presence/1.0.0, presencepull.go). It announces this
// relay's local nodes (NodeJoined/NodeLeft) as deltas and a digest
// heartbeat, reads the other relays' presence into the directory, and
// pulls a relay's set when its heartbeat disagrees with the directory.
// Goroutines: the subscription reader (readSub, handing to apply),
// presenceLoop (join/leave deltas at once, a heartbeat every interval),
// presenceEvents (a heartbeat when a peer joins the topic), sweepLoop
// (directory expiry), pullLoop and the pulls it starts (at most
// pullWorkers), and the inbound pull handlers (pullServeConcurrent).
type presence struct {
	core
	routines
	g     *gossip
	dir   *directory
	good  func(peer.ID) bool // standing.good
	allow *allowList         // who may pull; nil: anyone
	epoch int64              // this run's boot time, unix ms
	seq   atomic.Uint64      // the last seq announced; written by presenceLoop only
	// heard, when set, is told of a relay heard after a silence (first
	// contact, back after expiry, a digest that does not match): what the
	// silence cost in broadcasts is for reconciliation to find (sync.go).
	heard atomic.Pointer[func(peer.ID)]

	mu      sync.Mutex
	local   map[string]*nodeauth.Proof // local nodes; a key id's proof, nil for other ids
	pending map[string]bool            // join (true) or leave (false) not yet announced
	dig     setDigest                  // of local

	pl        pulls
	serveRate *buckets      // pulls served per peer
	serveSem  chan struct{} // pulls served at once

	kick     chan struct{} // pending changed
	snapKick chan struct{} // a peer joined the topic

	verified *ttlset.Set[proofKey] // presence claims whose proof verified
}

func newPresence(parent context.Context, c core, dir *directory, g *gossip, good func(peer.ID) bool, allow *allowList) *presence {
	return &presence{
		core:      c,
		routines:  newRoutines(parent),
		g:         g,
		dir:       dir,
		good:      good,
		allow:     allow,
		pl:        pulls{st: map[peer.ID]*pullState{}, kick: make(chan struct{}, 1)},
		serveRate: newBuckets(pullServeRate, pullServeBurst, 4096),
		serveSem:  make(chan struct{}, pullServeConcurrent),
		epoch:     time.Now().UnixMilli(),
		local:     map[string]*nodeauth.Proof{},
		pending:   map[string]bool{},
		kick:      make(chan struct{}, 1),
		snapKick:  make(chan struct{}, 1),
		verified:  ttlset.New[proofKey](1<<16, time.Hour, nil),
	}
}

// start starts the goroutines (the topic is joined).
func (p *presence) start() {
	p.spawn(func() { readSub(p.ctx, p.self, p.g.pres.sub, p.apply) })
	p.spawn(p.presenceLoop)
	p.spawn(p.presenceEvents)
	p.spawn(p.sweepLoop)
	p.spawn(p.pullLoop)
	p.host.SetStreamHandler(PresenceProtocol, p.handlePull)
}

func (p *presence) close() {
	p.host.RemoveStreamHandler(PresenceProtocol)
	p.stop()
}

// parsePresence decodes and checks a presence message; it returns a reason
// label for a message to reject.
func parsePresence(data []byte, maxSize int) (*presenceMessage, peer.ID, []ma.Multiaddr, string) {
	if len(data) > maxSize {
		return nil, "", nil, "too_large"
	}
	var p presenceMessage
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, "", nil, message.CodeInvalidJSON
	}
	switch p.Type {
	case presenceDigest:
		d, ok := parseDigest(p.Digest)
		if !ok || p.Count < 0 || p.Count > maxPullNodes || len(p.Nodes) > 0 || len(p.Proofs) > 0 {
			return nil, "", nil, "bad_digest"
		}
		p.dig = d
	case presenceSnapshot, presenceJoin, presenceLeave:
	default:
		return nil, "", nil, "bad_type"
	}
	relay, err := peer.Decode(p.Relay)
	if err != nil {
		return nil, "", nil, "bad_relay"
	}
	if p.Epoch <= 0 || p.Seq == 0 || p.IntervalMS <= 0 {
		return nil, "", nil, "bad_sequence"
	}
	if p.Parts == 0 {
		p.Parts = 1
	}
	if p.Parts < 0 || p.Parts > maxSnapshotParts || p.Part < 0 || p.Part >= p.Parts ||
		(p.Type != presenceSnapshot && p.Parts != 1) {
		return nil, "", nil, "bad_parts"
	}
	if len(p.Nodes) > maxPresenceNodes {
		return nil, "", nil, "too_many_nodes"
	}
	if len(p.Proofs) > len(p.Nodes) || (p.Type == presenceLeave && len(p.Proofs) > 0) {
		return nil, "", nil, "bad_proofs"
	}
	for _, id := range p.Nodes {
		if id == "" || len(id) > message.MaxIDLen || !utf8.ValidString(id) {
			return nil, "", nil, "bad_node_id"
		}
	}
	if len(p.Addrs) > maxAddrsPerRelay {
		return nil, "", nil, "too_many_addrs"
	}
	if p.WSURL != "" && CheckWSURL(p.WSURL) != nil {
		return nil, "", nil, "bad_ws_url"
	}
	addrs := make([]ma.Multiaddr, 0, len(p.Addrs))
	for _, s := range p.Addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, "", nil, "bad_addr"
		}
		addrs = append(addrs, a)
	}
	return &p, relay, addrs, ""
}

// publicAddrs keeps the public addresses of addrs (manet.IsPublicAddr:
// no loopback, private, link-local, CGNAT, unspecified or documentation
// IP, no localhost name); a dialable DNS name stays, resolved when it is
// dialled.
func publicAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := addrs[:0]
	for _, a := range addrs {
		if manet.IsPublicAddr(a) {
			out = append(out, a)
		}
	}
	return out
}

// presenceData is the validated content handed from validate to apply.
type presenceData struct {
	msg   *presenceMessage
	relay peer.ID
	addrs []ma.Multiaddr
}

// validate is the presence topic validator: shape, bounds, and the rule
// that a relay speaks only about itself (relay == author).
func (p *presence) validate(_ context.Context, src peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	if src == p.self {
		return pubsub.ValidationAccept
	}
	msg, relay, addrs, reason := parsePresence(m.GetData(), p.cfg.MaxMessageSize)
	if reason == "too_large" && !p.dir.lastSeen(src).IsZero() && p.good(src) {
		// A relay in good standing with a larger --max-message-size.
		p.m.validated("presence", pubsub.ValidationIgnore, reason)
		return pubsub.ValidationIgnore
	}
	if reason != "" {
		p.m.validated("presence", pubsub.ValidationReject, reason)
		p.log.Debug("presence rejected", "remote", src.String(), "reason", reason)
		return pubsub.ValidationReject
	}
	if o := p.g.origin(m); o != "" && o != relay {
		p.m.validated("presence", pubsub.ValidationReject, "not_origin")
		p.log.Debug("presence rejected", "remote", src.String(), "reason", "not_origin", "relay", msg.Relay)
		return pubsub.ValidationReject
	}
	if relay == p.self {
		p.m.validated("presence", pubsub.ValidationIgnore, "own_origin")
		return pubsub.ValidationIgnore
	}
	if !p.cfg.Presence.AllowPrivateAddrs {
		addrs = publicAddrs(addrs)
	}
	if msg.Type == presenceJoin || msg.Type == presenceSnapshot {
		msg.Nodes = p.proven(relay, msg)
	}
	m.ValidatorData = &presenceData{msg: msg, relay: relay, addrs: addrs}
	p.m.validated("presence", pubsub.ValidationAccept, "")
	return pubsub.ValidationAccept
}

// proven returns msg's nodes less the key ids whose proof for relay is
// missing or invalid (a claim the relay cannot back: ignored, counted).
// A verified (relay, key id, sig) is remembered, so a snapshot repeating
// a proof costs a map look-up, not an Ed25519 verification.
func (p *presence) proven(relay peer.ID, msg *presenceMessage) []string {
	out := msg.Nodes[:0:0]
	now := time.Now()
	for _, id := range msg.Nodes {
		if !nodeauth.IsKeyID(id) {
			out = append(out, id)
			continue
		}
		proof, ok := msg.Proofs[id]
		if !ok {
			p.m.unproven.Inc()
			continue
		}
		k := proofKey{relay, id, proof.Sig, proof.TS}
		if !p.verified.Has(k) {
			if err := proof.VerifyClaim(id, msg.Relay, now); err != nil {
				p.m.unproven.Inc()
				p.log.Debug("key id claim without a valid proof ignored", "remote", relay.String(), "node", id, "err", err)
				continue
			}
			p.verified.Add(k)
		}
		out = append(out, id)
	}
	return out
}

// proofKey identifies a verified presence claim.
type proofKey struct {
	relay peer.ID
	id    string
	sig   string
	ts    int64
}

// apply records an accepted presence message in the directory.
func (p *presence) apply(m *pubsub.Message) {
	d, ok := m.ValidatorData.(*presenceData)
	if !ok {
		return
	}
	if len(d.addrs) > 0 {
		// Keep the addresses so that Direct can dial a relay that is not
		// a neighbour.
		p.host.Peerstore().AddAddrs(d.relay, d.addrs, 2*p.dir.expiryFor(d.msg.IntervalMS))
	}
	if p.dir.apply(d.relay, d.msg, d.addrs, p.good(d.relay), time.Now()) {
		p.wantPull(d.relay)
		if f := p.heard.Load(); f != nil {
			(*f)(d.relay)
		}
	}
}

// joined records a local node (with a key id's proof, nil otherwise);
// presenceLoop announces it. A node that binds again with a newer proof is
// announced again.
func (p *presence) joined(nodeID string, proof *nodeauth.Proof) {
	p.mu.Lock()
	if old, ok := p.local[nodeID]; ok {
		p.dig.toggle(nodeID, proofTS(old))
	}
	p.local[nodeID] = proof
	p.dig.toggle(nodeID, proofTS(proof))
	p.pending[nodeID] = true
	p.mu.Unlock()
	p.kickLoop()
}

// left removes a local node; presenceLoop announces it.
func (p *presence) left(nodeID string) {
	p.mu.Lock()
	if old, ok := p.local[nodeID]; ok {
		p.dig.toggle(nodeID, proofTS(old))
		delete(p.local, nodeID)
	}
	p.pending[nodeID] = false
	p.mu.Unlock()
	p.kickLoop()
}

func (p *presence) kickLoop() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *presence) isLocal(nodeID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.local[nodeID]
	return ok
}

// deltaGap is the least time between two flushes of presence deltas.
const deltaGap = 50 * time.Millisecond

// presenceLoop publishes our presence: join/leave deltas as soon as
// joined/left kick it (at most one flush per deltaGap), and a heartbeat (count and digest of the set, no
// ids) at start, every Presence.Interval and when a peer joins the topic.
// It is the only writer of p.seq.
func (p *presence) presenceLoop() {
	topic := p.g.pres.topic
	interval := p.cfg.Presence.Interval
	send := func(msg *presenceMessage) {
		data, err := json.Marshal(msg)
		if err != nil {
			p.log.Error("encode presence", "err", err)
			return
		}
		if err := topic.Publish(p.ctx, data); err != nil && p.ctx.Err() == nil {
			p.log.Warn("publish presence", "topic", p.g.pres.name, "err", err)
		}
	}
	// flush publishes the pending deltas and returns the set's digest and
	// size with them applied (taken with them, under p.mu).
	flush := func() (setDigest, int) {
		p.mu.Lock()
		var joins, leaves []string
		proofs := map[string]nodeauth.Proof{}
		for id, joined := range p.pending {
			if !joined {
				leaves = append(leaves, id)
				continue
			}
			if pr, ok := p.local[id]; ok {
				joins = append(joins, id)
				if pr != nil {
					proofs[id] = *pr
				}
			}
		}
		clear(p.pending)
		dig, count := p.dig, len(p.local)
		p.mu.Unlock()
		for _, kind := range []struct {
			typ string
			ids []string
		}{{presenceLeave, leaves}, {presenceJoin, joins}} {
			for _, c := range chunkNodes(kind.ids, p.cfg.MaxMessageSize) {
				send(&presenceMessage{Type: kind.typ, Relay: p.self.String(), Epoch: p.epoch, Seq: p.seq.Add(1),
					IntervalMS: interval.Milliseconds(), Addrs: p.addrs(), Nodes: c, Proofs: proofsOf(c, proofs)})
			}
		}
		return dig, count
	}
	heartbeat := func() {
		dig, count := flush()
		send(&presenceMessage{Type: presenceDigest, Relay: p.self.String(), Epoch: p.epoch, Seq: p.seq.Add(1),
			IntervalMS: interval.Milliseconds(), Addrs: p.addrs(), Nodes: []string{}, Count: count, Digest: dig.String(),
			WSURL: p.cfg.Presence.PublicWSURL})
	}

	t := time.NewTicker(interval)
	defer t.Stop()
	// Deltas go out at once, but at most one flush per deltaGap: nodes
	// that connect together (a relay restarting, 10,000 clients coming
	// back) make a few joins of many ids, not one gossip message each.
	gap := min(deltaGap, interval/4)
	coalesce := time.NewTimer(time.Hour)
	coalesce.Stop()
	defer coalesce.Stop()
	var lastFlush time.Time
	armed := false
	heartbeat()
	last := time.Now()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
			if wait := gap - time.Since(lastFlush); wait > 0 {
				if !armed {
					coalesce.Reset(wait)
					armed = true
				}
				continue
			}
			flush()
			lastFlush = time.Now()
		case <-coalesce.C:
			armed = false
			flush()
			lastFlush = time.Now()
		case <-p.snapKick:
			// A new peer on the presence topic: tell it our state now
			// rather than at the next tick, at most 4 times an interval.
			if time.Since(last) >= interval/4 {
				heartbeat()
				last = time.Now()
			}
		case <-t.C:
			heartbeat()
			last = time.Now()
		}
	}
}

// presenceEvents kicks a heartbeat when a peer joins the presence topic.
func (p *presence) presenceEvents() {
	h := p.g.pres.events
	for {
		ev, err := h.NextPeerEvent(p.ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			select {
			case p.snapKick <- struct{}{}:
			default:
			}
		}
	}
}

// sweepLoop expires directory entries and refreshes the relays' standing,
// four times a presence interval.
func (p *presence) sweepLoop() {
	t := time.NewTicker(max(p.cfg.Presence.Interval/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			for _, r := range p.dir.expire(now) {
				p.log.Info("relay presence expired", "remote", r.String())
			}
			p.dir.refreshStanding(p.good)
		}
	}
}

// addrs are the addresses announced in presence: the announce addresses
// if configured, else the host's (interface-expanded) listen addresses,
// at most maxAddrsPerRelay.
func (p *presence) addrs() []string {
	var out []string
	for _, a := range p.host.Addrs() {
		if len(out) == maxAddrsPerRelay {
			break
		}
		out = append(out, a.String())
	}
	return out
}

// proofsOf picks the proofs of ids (nil when none is a key id).
func proofsOf(ids []string, all map[string]nodeauth.Proof) map[string]nodeauth.Proof {
	var out map[string]nodeauth.Proof
	for _, id := range ids {
		if pr, ok := all[id]; ok {
			if out == nil {
				out = map[string]nodeauth.Proof{}
			}
			out[id] = pr
		}
	}
	return out
}

// chunkNodes splits ids into lists whose JSON encoding stays well within
// maxSize (the rest of a presence message is < 4 KiB).
func chunkNodes(ids []string, maxSize int) [][]string {
	limit := maxSize - 4096 - maxAddrsPerRelay*256
	var out [][]string
	var cur []string
	size := 0
	for _, id := range ids {
		b, _ := json.Marshal(id)
		n := len(b) + 1
		if nodeauth.IsKeyID(id) {
			n += 2*len(b) + proofJSONBytes // the key again, and its proof
		}
		if len(cur) > 0 && (size+n > limit || len(cur) >= maxPresenceNodes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, id)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// proofTS is the ts a member is hashed with: its proof's, 0 without one.
func proofTS(pr *nodeauth.Proof) int64 {
	if pr == nil {
		return 0
	}
	return pr.TS
}

func (p *presenceMessage) String() string {
	return fmt.Sprintf("%s relay=%s epoch=%d seq=%d nodes=%d", p.Type, p.Relay, p.Epoch, p.Seq, len(p.Nodes))
}

// CheckWSURL accepts a relay's public WebSocket URL: ws:// or wss:// with
// a host, no user info or fragment, valid UTF-8, at most 512 bytes
// (--public-ws-url, and the ws_url of presence).
func CheckWSURL(s string) error {
	if len(s) > maxWSURLLen || !utf8.ValidString(s) {
		return fmt.Errorf("%.64q: at most %d bytes of UTF-8", s, maxWSURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q: want ws://HOST[:PORT][/PATH] or wss://…", s)
	}
	return nil
}
