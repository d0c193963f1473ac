package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gsio-net/gsio-relay/message"
)

// Presence message types.
const (
	PresenceSnapshot = "snapshot"
	PresenceJoin     = "join"
	PresenceLeave    = "leave"
)

// Wire limits of presence messages (the same for every relay, so that no
// honest relay's message is rejected by another's configuration).
const (
	// MaxPresenceNodes bounds the node ids in one presence message.
	MaxPresenceNodes = 10000
	// maxSnapshotParts bounds the parts of one snapshot.
	maxSnapshotParts = 64
)

// PresenceMessage is the JSON carried on the presence topic
// (docs/PROTOCOL.md "Presence"). A relay only speaks about itself: Relay
// must be the GossipSub author of the message.
type PresenceMessage struct {
	Type       string   `json:"type"`            // snapshot, join or leave
	Relay      string   `json:"relay"`           // the publishing relay's peer id
	Epoch      int64    `json:"epoch"`           // relay boot time, unix ms; > 0
	Seq        uint64   `json:"seq"`             // per epoch, +1 per presence message; > 0
	IntervalMS int64    `json:"interval_ms"`     // the relay's snapshot interval; > 0
	Addrs      []string `json:"addrs,omitempty"` // snapshot: multiaddrs to dial the relay at (no /p2p)
	Nodes      []string `json:"nodes"`           // snapshot: all (this part's) nodes; join/leave: the change
	Part       int      `json:"part,omitempty"`  // snapshot: 0-based part index
	Parts      int      `json:"parts,omitempty"` // snapshot: number of parts; absent = 1
}

// parsePresence decodes and checks a presence message; it returns a reason
// label for a message to reject.
func (n *Node) parsePresence(data []byte) (*PresenceMessage, peer.ID, []ma.Multiaddr, string) {
	if len(data) > n.cfg.MaxMessageSize {
		return nil, "", nil, "too_large"
	}
	var p PresenceMessage
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, "", nil, message.CodeInvalidJSON
	}
	switch p.Type {
	case PresenceSnapshot, PresenceJoin, PresenceLeave:
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
		(p.Type != PresenceSnapshot && p.Parts != 1) {
		return nil, "", nil, "bad_parts"
	}
	if len(p.Nodes) > MaxPresenceNodes {
		return nil, "", nil, "too_many_nodes"
	}
	for _, id := range p.Nodes {
		if id == "" || len(id) > message.MaxIDLen || !utf8.ValidString(id) {
			return nil, "", nil, "bad_node_id"
		}
	}
	if len(p.Addrs) > MaxAddrsPerRelay {
		return nil, "", nil, "too_many_addrs"
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

// presenceData is the validated content handed from the validator to
// onPresence.
type presenceData struct {
	msg   *PresenceMessage
	relay peer.ID
	addrs []ma.Multiaddr
}

// validatePresence is the presence topic validator: shape, bounds, and the
// rule that a relay speaks only about itself (relay == author).
func (n *Node) validatePresence(_ context.Context, src peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	if src == n.self {
		return pubsub.ValidationAccept
	}
	p, relay, addrs, reason := n.parsePresence(m.GetData())
	if reason != "" {
		n.countValidation("presence", pubsub.ValidationReject, reason)
		n.log.Debug("presence rejected", "remote", src.String(), "reason", reason)
		return pubsub.ValidationReject
	}
	if o := n.origin(m); o != "" && o != relay {
		n.countValidation("presence", pubsub.ValidationReject, "not_origin")
		n.log.Debug("presence rejected", "remote", src.String(), "reason", "not_origin", "relay", p.Relay)
		return pubsub.ValidationReject
	}
	if relay == n.self {
		n.countValidation("presence", pubsub.ValidationIgnore, "own_origin")
		return pubsub.ValidationIgnore
	}
	m.ValidatorData = &presenceData{msg: p, relay: relay, addrs: addrs}
	n.countValidation("presence", pubsub.ValidationAccept, "")
	return pubsub.ValidationAccept
}

func (n *Node) onPresence(m *pubsub.Message) {
	d, ok := m.ValidatorData.(*presenceData)
	if !ok {
		return
	}
	if len(d.addrs) > 0 {
		// Keep the addresses so that Direct can dial a relay that is not
		// a neighbour.
		n.host.Peerstore().AddAddrs(d.relay, d.addrs, 2*n.dir.expiryFor(d.msg.IntervalMS))
	}
	n.dir.apply(d.relay, d.msg, d.addrs, time.Now())
}

// NodeJoined records a local node and announces it at once (a join
// message) and in every snapshot. It never blocks.
func (n *Node) NodeJoined(nodeID string) {
	n.localMu.Lock()
	n.local[nodeID] = struct{}{}
	n.localPending[nodeID] = true
	n.localMu.Unlock()
	n.kickPresence()
}

// NodeLeft removes a local node and announces the leave at once.
func (n *Node) NodeLeft(nodeID string) {
	n.localMu.Lock()
	delete(n.local, nodeID)
	n.localPending[nodeID] = false
	n.localMu.Unlock()
	n.kickPresence()
}

func (n *Node) kickPresence() {
	select {
	case n.presenceKick <- struct{}{}:
	default:
	}
}

func (n *Node) isLocal(nodeID string) bool {
	n.localMu.Lock()
	defer n.localMu.Unlock()
	_, ok := n.local[nodeID]
	return ok
}

// RemoteNodes lists the node ids held by other relays, each once.
func (n *Node) RemoteNodes() []string { return n.dir.remoteNodes() }

// RemoteRelays lists the node ids each other relay announces (for the
// admin API).
func (n *Node) RemoteRelays() map[peer.ID][]string { return n.dir.snapshot() }

// presenceLoop publishes our presence: a snapshot now and every
// PresenceInterval, and join/leave deltas as soon as NodeJoined/NodeLeft
// kick it. seq is owned by this goroutine.
func (n *Node) presenceLoop() {
	var seq uint64
	publish := func(p *PresenceMessage) {
		seq++
		p.Relay, p.Epoch, p.Seq = n.self.String(), n.epoch, seq
		p.IntervalMS = n.cfg.PresenceInterval.Milliseconds()
		p.Addrs = n.presenceAddrs()
		data, err := json.Marshal(p)
		if err != nil {
			n.log.Error("encode presence", "err", err)
			return
		}
		if err := n.presTopic.Publish(n.ctx, data); err != nil && n.ctx.Err() == nil {
			n.log.Warn("publish presence", "topic", n.presTopic.String(), "err", err)
		}
	}
	flush := func() {
		n.localMu.Lock()
		var joins, leaves []string
		for id, joined := range n.localPending {
			if joined {
				joins = append(joins, id)
			} else {
				leaves = append(leaves, id)
			}
		}
		clear(n.localPending)
		n.localMu.Unlock()
		for _, c := range n.chunkNodes(leaves) {
			publish(&PresenceMessage{Type: PresenceLeave, Nodes: c})
		}
		for _, c := range n.chunkNodes(joins) {
			publish(&PresenceMessage{Type: PresenceJoin, Nodes: c})
		}
	}
	snapshot := func() {
		n.localMu.Lock()
		nodes := make([]string, 0, len(n.local))
		for id := range n.local {
			nodes = append(nodes, id)
		}
		n.localMu.Unlock()
		slices.Sort(nodes)
		addrs := n.presenceAddrs()
		chunks := n.chunkNodes(nodes)
		if len(chunks) == 0 {
			chunks = [][]string{{}}
		}
		if len(chunks) > maxSnapshotParts {
			n.log.Error("presence snapshot too large; announcing the first parts only", "parts", len(chunks))
			chunks = chunks[:maxSnapshotParts]
		}
		// All parts of one snapshot share a seq: take it once.
		seq++
		for i, c := range chunks {
			p := &PresenceMessage{
				Type: PresenceSnapshot, Relay: n.self.String(), Epoch: n.epoch, Seq: seq,
				IntervalMS: n.cfg.PresenceInterval.Milliseconds(), Addrs: addrs, Nodes: c,
			}
			if len(chunks) > 1 {
				p.Part, p.Parts = i, len(chunks)
			}
			data, err := json.Marshal(p)
			if err != nil {
				n.log.Error("encode presence", "err", err)
				return
			}
			if err := n.presTopic.Publish(n.ctx, data); err != nil && n.ctx.Err() == nil {
				n.log.Warn("publish presence", "topic", n.presTopic.String(), "err", err)
			}
		}
	}

	t := time.NewTicker(n.cfg.PresenceInterval)
	defer t.Stop()
	flush()
	snapshot()
	last := time.Now()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.presenceKick:
			flush()
		case <-n.snapshotKick:
			// A new peer on the presence topic: tell it our state now
			// rather than at the next tick, at most 4 times an interval.
			if time.Since(last) >= n.cfg.PresenceInterval/4 {
				flush()
				snapshot()
				last = time.Now()
			}
		case <-t.C:
			flush()
			snapshot()
			last = time.Now()
		}
	}
}

// presenceEvents kicks a snapshot when a peer joins the presence topic.
func (n *Node) presenceEvents(h *pubsub.TopicEventHandler) {
	for {
		ev, err := h.NextPeerEvent(n.ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			select {
			case n.snapshotKick <- struct{}{}:
			default:
			}
		}
	}
}

// presenceAddrs are the addresses announced in snapshots: the announce
// addresses if configured, else the host's (interface-expanded) listen
// addresses, at most MaxAddrsPerRelay.
func (n *Node) presenceAddrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		if len(out) == MaxAddrsPerRelay {
			break
		}
		out = append(out, a.String())
	}
	return out
}

// chunkNodes splits ids into lists whose JSON encoding stays well within
// MaxMessageSize (the rest of a presence message is < 4 KiB).
func (n *Node) chunkNodes(ids []string) [][]string {
	limit := n.cfg.MaxMessageSize - 4096 - MaxAddrsPerRelay*256
	var out [][]string
	var cur []string
	size := 0
	for _, id := range ids {
		b, _ := json.Marshal(id)
		if len(cur) > 0 && (size+len(b)+1 > limit || len(cur) >= MaxPresenceNodes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, id)
		size += len(b) + 1
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (p *PresenceMessage) String() string {
	return fmt.Sprintf("%s relay=%s epoch=%d seq=%d nodes=%d", p.Type, p.Relay, p.Epoch, p.Seq, len(p.Nodes))
}
