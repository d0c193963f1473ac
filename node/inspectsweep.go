package node

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// RelayState is what a sweep found of one relay.
type RelayState string

const (
	// RelayOK answered this sweep.
	RelayOK RelayState = "ok"
	// RelayUnreachable is in our presence directory but could not be
	// asked (dial, stream, timeout): cut off from us.
	RelayUnreachable RelayState = "unreachable"
	// RelayRefused answered with a refusal (forbidden, rate_limited, …).
	RelayRefused RelayState = "refused"
	// RelayGone left our presence directory (it stopped, or its presence
	// no longer reaches us) and is not connected. Listed for
	// InspectConfig.Forget.
	RelayGone RelayState = "gone"
	// RelayPartitioned is not in our presence directory, but a relay that
	// answered is connected to it, and we could not ask it: the
	// federation is split as far as presence goes.
	RelayPartitioned RelayState = "partitioned"
)

// maxPartitioned bounds the relays a sweep adds because other relays are
// connected to them.
const maxPartitioned = 64

// MeshView is the whole federation as one relay sees it: itself, every
// relay of its presence directory (asked over InspectProtocol), relays
// that left recently, and relays other relays are connected to that it
// does not know. It is shared: never modify it.
type MeshView struct {
	Self    peer.ID
	Network string
	At      time.Time     // when the sweep started
	Took    time.Duration // how long it took
	Relays  []RelayView   // this relay first, then by peer id
}

// RelayView is one relay of a MeshView.
type RelayView struct {
	ID          peer.ID
	Self        bool
	State       RelayState
	Err         string    // why it is not RelayOK
	InDirectory bool      // in our presence directory
	LastSeen    time.Time // its last presence message (zero if not in the directory, and for Self)
	DirNodes    int       // the nodes our directory lists for it
	RTT         time.Duration
	AnsweredAt  time.Time // when Summary was received; zero if never
	// Summary is its last answer: from this sweep when State is RelayOK,
	// from an earlier one otherwise (nil if it never answered).
	Summary *Summary
}

// relayMemory is what the sweeps remember of a relay.
type relayMemory struct {
	last     RelayView
	seen     time.Time // last in the directory or answering
	failures int       // consecutive failed asks while not connected
	nextTry  time.Time // no dial before (connected relays are always asked)
}

// dirRelay is one relay of the directory.
type dirRelay struct {
	id       peer.ID
	lastSeen time.Time
	nodes    int
}

// relayList lists the relays of the directory.
func (d *directory) relayList() []dirRelay {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]dirRelay, 0, len(d.relays))
	for id, e := range d.relays {
		out = append(out, dirRelay{id: id, lastSeen: e.lastSeen, nodes: len(e.nodes)})
	}
	return out
}

// MeshView returns the federation as this relay sees it: a view younger
// than Inspect.CacheTTL as it is, else a new sweep (one at a time: a
// caller arriving during a sweep waits for it). ctx bounds the wait, not
// the sweep.
func (n *Node) MeshView(ctx context.Context) (*MeshView, error) {
	n.mu.Lock()
	started, closed := n.started, n.closed
	n.mu.Unlock()
	switch {
	case closed:
		return nil, errClosed
	case !started:
		return nil, errNotStarted
	}
	return n.insp.meshView(ctx)
}

// InspectPeer asks relay p for its Summary over InspectProtocol (dialling
// it by its presence addresses when not connected) and returns the round
// trip of the request. A refusal is an *InspectRefusedError.
func (n *Node) InspectPeer(ctx context.Context, p peer.ID) (*Summary, time.Duration, error) {
	return n.insp.ask(ctx, p, true)
}

func (s *inspectService) meshView(ctx context.Context) (*MeshView, error) {
	s.viewMu.Lock()
	if v := s.view; v != nil && time.Since(v.At) < s.icfg.CacheTTL {
		s.viewMu.Unlock()
		return v, nil
	}
	if s.viewClosed {
		s.viewMu.Unlock()
		return nil, errClosed
	}
	if s.sweeping == nil {
		done := make(chan struct{})
		s.sweeping = done
		s.spawn(func() {
			v := s.sweep()
			s.viewMu.Lock()
			s.view, s.sweeping = v, nil
			s.viewMu.Unlock()
			close(done)
		})
	}
	done := s.sweeping
	s.viewMu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, errClosed
	}
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	return s.view, nil
}

// target is one relay a sweep reports on, and how to ask it.
type target struct {
	v    RelayView
	ask  bool // ask it this sweep
	dial bool // may dial it
}

// sweep asks every relay of the directory (and those remembered, and
// those other relays are connected to) for its summary, SweepParallel at
// once, each within Timeout. The sweep owns s.memory.
func (s *inspectService) sweep() *MeshView {
	start := time.Now()
	view := &MeshView{Self: s.self, Network: s.cfg.Network, At: start}
	self := RelayView{ID: s.self, Self: true, State: RelayOK, AnsweredAt: start, Summary: s.summary(start)}
	self.DirNodes = self.Summary.LocalNodes

	targets := map[peer.ID]*target{}
	inDir := map[peer.ID]bool{s.self: true}
	for _, r := range s.dir.relayList() {
		if r.id == s.self {
			continue
		}
		inDir[r.id] = true
		t := &target{v: RelayView{ID: r.id, InDirectory: true, LastSeen: r.lastSeen, DirNodes: r.nodes}, ask: true, dial: true}
		if m := s.memory[r.id]; m != nil && !s.connected(r.id) && start.Before(m.nextTry) {
			t.ask = false // dialled in vain recently: show what we had
		}
		targets[r.id] = t
	}
	for id, m := range s.memory {
		switch {
		case inDir[id]:
		case start.Sub(m.seen) > s.icfg.Forget:
			delete(s.memory, id)
		default:
			targets[id] = &target{v: RelayView{ID: id}, ask: s.connected(id)}
		}
	}
	s.askAll(targets)

	// Relays that answering relays are connected to but our directory
	// does not list.
	seenBy := map[peer.ID][]peer.ID{}
	for _, v := range append([]RelayView{self}, views(targets)...) {
		if v.State != RelayOK {
			continue
		}
		for _, p := range v.Summary.Peers {
			if id, err := peer.Decode(p.ID); err == nil && p.Relay && !inDir[id] {
				seenBy[id] = append(seenBy[id], v.ID)
			}
		}
	}
	extra := map[peer.ID]*target{}
	for id := range seenBy {
		if targets[id] == nil && len(extra) < maxPartitioned && len(targets)+len(extra) < maxRelayMemory {
			extra[id] = &target{v: RelayView{ID: id}, ask: s.connected(id)}
		}
	}
	s.askAll(extra)
	maps.Copy(targets, extra)

	s.remember(targets, seenBy, start)
	view.Relays = append(append(view.Relays, self), views(targets)...)
	slices.SortFunc(view.Relays[1:], func(a, b RelayView) int { return strings.Compare(string(a.ID), string(b.ID)) })
	view.Took = time.Since(start)
	return view
}

func views(ts map[peer.ID]*target) []RelayView {
	out := make([]RelayView, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.v)
	}
	return out
}

func (s *inspectService) connected(p peer.ID) bool {
	return s.host.Network().Connectedness(p) == network.Connected
}

// askAll asks the targets that are to be asked, SweepParallel at once,
// and sets each one's State.
func (s *inspectService) askAll(targets map[peer.ID]*target) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.icfg.SweepParallel)
	for _, t := range targets {
		if !t.ask {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-s.ctx.Done():
		}
		if s.ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			sum, rtt, err := s.ask(s.ctx, t.v.ID, t.dial)
			now := time.Now()
			var refused *InspectRefusedError
			switch {
			case err == nil:
				t.v.State, t.v.Summary, t.v.RTT, t.v.AnsweredAt, t.v.Err = RelayOK, sum, rtt, now, ""
			case errors.As(err, &refused):
				t.v.State, t.v.RTT, t.v.Err = RelayRefused, rtt, refused.Reason
			default:
				t.v.Err = err.Error()
			}
		})
	}
	wg.Wait()
}

// maxRelayMemory bounds the relays the sweeps remember.
const maxRelayMemory = 1024

// remember completes each target's view with the sweeps' memory (the
// last answer of a relay that did not answer now) and its state, and
// updates the memory.
func (s *inspectService) remember(targets map[peer.ID]*target, seenBy map[peer.ID][]peer.ID, now time.Time) {
	for id, t := range targets {
		m := s.memory[id]
		if m == nil {
			m = &relayMemory{}
		}
		v := &t.v
		if v.State != RelayOK && v.Summary == nil {
			v.Summary, v.AnsweredAt = m.last.Summary, m.last.AnsweredAt
		}
		if v.State == "" {
			if v.Err == "" && m.last.State != RelayOK {
				v.Err = m.last.Err
			}
			switch by := seenBy[id]; {
			case v.InDirectory:
				v.State = RelayUnreachable
			case len(by) > 0:
				v.State = RelayPartitioned
				v.Err = "not in our presence directory; connected to " + shortPeers(by)
			default:
				v.State = RelayGone
				v.Err = "left the presence directory"
			}
		}
		switch {
		case v.State == RelayOK:
			m.failures, m.nextTry = 0, time.Time{}
		case t.ask && t.dial:
			m.failures++
			m.nextTry = now.Add(min(time.Second<<min(m.failures-1, 10), s.icfg.RetryMax))
		}
		if v.InDirectory || v.State == RelayOK || v.State == RelayRefused || len(seenBy[id]) > 0 || m.seen.IsZero() {
			m.seen = now
		}
		m.last = *v
		s.memory[id] = m
	}
}

// shortPeers names up to three peers by the end of their ids.
func shortPeers(ps []peer.ID) string {
	var out []string
	for i, p := range ps {
		if i == 3 {
			out = append(out, "…")
			break
		}
		id := p.String()
		out = append(out, id[max(0, len(id)-6):])
	}
	return strings.Join(out, ", ")
}
