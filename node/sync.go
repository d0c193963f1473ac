package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/syncproto"
)

// SyncProtocol reconciles two relays' histories (docs/PROTOCOL.md 11):
// after a partition, a restart, and at a low rate, so that every relay's
// history converges to the union of the broadcasts within retention.
const SyncProtocol = "/gsio/sync/1.0.0"

// HistoryStore is the relay's history as reconciliation needs it
// (history.Store implements it). The messages it learns are not written
// here but handed to the Receiver, which stores and delivers them as it
// does gossip.
type HistoryStore interface {
	syncproto.Store
	Flush(ctx context.Context) error
	Horizon() int64
	Gaps() []history.Gap
	ClearGaps(from, to int64)
}

// WithHistory gives the node the relay's history: it then answers and
// runs SyncProtocol (unless Sync.Enable is false).
func WithHistory(h HistoryStore) Option { return func(o *options) { o.history = h } }

// SyncConfig is SyncProtocol: when sessions run and what bounds them.
type SyncConfig struct {
	// Enable runs and answers SyncProtocol when the node has a history.
	// Default true.
	Enable bool
	// Interval: every Interval (±25 % jitter) a session with one relay
	// peer chosen at random. Sessions also run when a relay peer
	// (re)connects. Default 60 s.
	Interval time.Duration
	// Window is how far back a session compares: the history's retention.
	// Default 24 h.
	Window time.Duration
	// Settle: the last Settle before now is never compared (live gossip
	// may still be arriving). Default 5 s.
	Settle time.Duration
	// Timeout bounds one session, either role. Default 2 min.
	Timeout time.Duration
	// MaxSessions bounds the sessions running at once, both roles, all
	// peers; a peer has at most one at a time. Default 4.
	MaxSessions int
	// Backoff: no session with a peer for this long after one with it
	// failed; ten times as long when it misbehaved (a hostile error).
	// Default 30 s.
	Backoff time.Duration
	// Limits bound one session (syncproto.DefaultLimits).
	Limits syncproto.Limits
}

func defaultSyncConfig() SyncConfig {
	return SyncConfig{
		Enable: true, Interval: time.Minute, Window: 24 * time.Hour, Settle: 5 * time.Second,
		Timeout: 2 * time.Minute, MaxSessions: 4, Backoff: 30 * time.Second, Limits: syncproto.DefaultLimits(),
	}
}

func (c SyncConfig) validate(maxMessage int) error {
	if !c.Enable {
		return nil
	}
	var errs []error
	if c.Interval < 10*time.Millisecond || c.Window < time.Second || c.Settle < 0 || c.Timeout < time.Second || c.Backoff < 0 {
		errs = append(errs, fmt.Errorf("--sync-interval %v (at least 10ms), --history-retention %v, --sync-settle %v, --sync-timeout %v (at least 1s), --sync-backoff %v: out of range",
			c.Interval, c.Window, c.Settle, c.Timeout, c.Backoff))
	}
	if c.MaxSessions < 1 {
		errs = append(errs, fmt.Errorf("--sync-max-sessions %d: at least 1", c.MaxSessions))
	}
	return errors.Join(append(errs, c.Limits.Validate(maxMessage))...)
}

// Sync bookkeeping bounds.
const (
	syncPendingTTL  = time.Minute // a peer waits at most this long to become eligible
	syncMaxPeers    = 4096        // entries of backoff and pending
	syncHostileMult = 10          // backoff multiplier for a misbehaving peer
)

// syncer is the reconciliation component: it answers SyncProtocol and
// starts sessions with relay peers in good standing when they connect,
// after it learned something (toward its other peers), and periodically.
// Goroutines: syncLoop, and one per outbound session (counted in
// MaxSessions); libp2p runs handle for inbound ones, tracked by hwg.
// Lock: mu (sessions, backoff, pending, inbound streams), taken alone.
type syncer struct {
	core
	routines
	store   HistoryStore
	scfg    SyncConfig
	g       *gossip
	dir     *directory
	isLocal func(string) bool
	isRelay func(peer.ID) bool
	good    func(peer.ID) bool
	recv    Receiver
	notifee *network.NotifyBundle // connections, set by start
	kick    chan struct{}

	mu     sync.Mutex
	active map[sessionKey]bool // a session runs with a peer in a role

	backoff map[peer.ID]time.Time
	// unreconciled counts each peer's consecutive unreconciled sessions.
	unreconciled map[peer.ID]int
	pending      map[peer.ID]pendingSync
	inbound      map[network.Stream]struct{}
	closed       bool
	hwg          sync.WaitGroup
}

type pendingSync struct{ notBefore, expires time.Time }

// sessionKey: a peer has at most one session with us in each role (two
// relays that start one with each other at once both run; the second
// finds nothing left to do).
type sessionKey struct {
	p       peer.ID
	inbound bool
}

func newSyncer(parent context.Context, c core, store HistoryStore, g *gossip, dir *directory,
	isLocal func(string) bool, isRelay, good func(peer.ID) bool) *syncer {
	return &syncer{
		core: c, routines: newRoutines(parent), store: store, scfg: c.cfg.Sync, g: g, dir: dir,
		isLocal: isLocal, isRelay: isRelay, good: good, kick: make(chan struct{}, 1),
		active: map[sessionKey]bool{}, backoff: map[peer.ID]time.Time{}, pending: map[peer.ID]pendingSync{},
		unreconciled: map[peer.ID]int{},
		inbound:      map[network.Stream]struct{}{},
	}
}

// start answers SyncProtocol, watches connections and starts syncLoop.
// nil-safe.
func (y *syncer) start(r Receiver) {
	if y == nil {
		return
	}
	y.recv = r
	y.host.SetStreamHandler(SyncProtocol, y.handle)
	y.notifee = &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		y.connected(c.RemotePeer())
	}}
	y.host.Network().Notify(y.notifee)
	for _, p := range y.host.Network().Peers() {
		y.connected(p)
	}
	y.spawn(y.loop)
}

// close stops answering, resets inbound streams, ends the goroutines
// (outbound sessions end with the context) and waits for the handlers.
// nil-safe.
func (y *syncer) close() {
	if y == nil {
		return
	}
	y.host.RemoveStreamHandler(SyncProtocol)
	if y.notifee != nil {
		y.host.Network().StopNotify(y.notifee)
	}
	y.mu.Lock()
	y.closed = true
	for st := range y.inbound {
		_ = st.Reset()
	}
	y.mu.Unlock()
	y.stop()
	y.hwg.Wait()
}

// connected queues a session with a peer that just connected, once it is
// a relay in good standing: from the side with the lower peer id, or
// from a side that has gaps to repair (both may then start one; the
// second is refused as busy).
func (y *syncer) connected(p peer.ID) {
	if p == y.self || (y.self > p && !y.hasGaps()) {
		return
	}
	y.schedule(p, time.Now())
}

// heard queues a session with a relay that presence hears after a
// silence. From this side whatever the peer ids: after a one-way
// partition only the side that stopped hearing the other knows, and it is
// the side that missed broadcasts (both may start one; the second is
// refused as busy). Only a peer that is or becomes eligible gets one.
func (y *syncer) heard(p peer.ID) {
	if p != y.self {
		y.schedule(p, time.Now())
	}
}

// schedule queues a session with p from notBefore on, for at most
// syncPendingTTL.
func (y *syncer) schedule(p peer.ID, notBefore time.Time) {
	y.mu.Lock()
	if len(y.pending) >= syncMaxPeers && y.pending[p] == (pendingSync{}) {
		// Full (any peer that connects is queued until presence says
		// whether it is a relay): make room from those that are not
		// relays now, so that throwaway peers cannot crowd relays out.
		// (The directory is asked without mu: mu is taken alone.)
		queued := make([]peer.ID, 0, len(y.pending))
		for q := range y.pending {
			queued = append(queued, q)
		}
		y.mu.Unlock()
		var drop []peer.ID
		for _, q := range queued {
			if !y.isRelay(q) {
				drop = append(drop, q)
			}
		}
		y.mu.Lock()
		for _, q := range drop {
			delete(y.pending, q)
		}
	}
	if len(y.pending) < syncMaxPeers || y.pending[p] != (pendingSync{}) {
		y.pending[p] = pendingSync{notBefore: notBefore, expires: notBefore.Add(syncPendingTTL)}
	}
	y.mu.Unlock()
	select {
	case y.kick <- struct{}{}:
	default:
	}
}

// hasGaps reports whether our history has a gap within the window.
func (y *syncer) hasGaps() bool {
	w := y.window(time.Now())
	for _, g := range y.store.Gaps() {
		if g.To > w.From && g.From < w.To {
			return true
		}
	}
	return false
}

// hasGapsAfter reports whether our history has a gap ending after t
// (unix ms).
func (y *syncer) hasGapsAfter(t int64) bool {
	for _, g := range y.store.Gaps() {
		if g.To > t {
			return true
		}
	}
	return false
}

// noteUnreconciled counts p's consecutive unreconciled sessions (reset by
// a reconciled one) and returns the count.
func (y *syncer) noteUnreconciled(p peer.ID, unreconciled bool) int {
	y.mu.Lock()
	defer y.mu.Unlock()
	if !unreconciled {
		delete(y.unreconciled, p)
		return 0
	}
	if _, ok := y.unreconciled[p]; !ok && len(y.unreconciled) >= syncMaxPeers {
		clear(y.unreconciled)
	}
	y.unreconciled[p]++
	return y.unreconciled[p]
}

// window is what a session compares now.
func (y *syncer) window(now time.Time) syncproto.Window {
	return syncproto.Propose(now, y.scfg.Window, y.scfg.Settle, y.store.Horizon())
}

// eligible: a relay of the directory, in good standing, directly
// connected.
func (y *syncer) eligible(p peer.ID) bool {
	return y.isRelay(p) && y.good(p) && y.g.directlyConnected(p)
}

// speaksSync reports false for a peer that identify says does not speak
// SyncProtocol (a relay run with --history=false or --sync=false, an
// older one): no session is started with it.
func (y *syncer) speaksSync(p peer.ID) bool {
	protos, err := y.host.Peerstore().GetProtocols(p)
	return err != nil || len(protos) == 0 || slices.Contains(protos, SyncProtocol)
}

// loop starts the pending sessions whose peer is eligible, and the
// periodic one.
func (y *syncer) loop() {
	tick := time.NewTicker(min(y.scfg.Interval/4, 250*time.Millisecond))
	defer tick.Stop()
	next := time.Now().Add(jitter(y.scfg.Interval))
	for {
		select {
		case <-y.ctx.Done():
			return
		case <-tick.C:
		case <-y.kick:
		}
		now := time.Now()
		y.startPending(now)
		if now.After(next) {
			next = now.Add(jitter(y.scfg.Interval))
			y.startPeriodic()
		}
	}
}

func jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}

func (y *syncer) startPending(now time.Time) {
	y.mu.Lock()
	var ready []peer.ID
	for p, ps := range y.pending {
		switch {
		case now.After(ps.expires):
			delete(y.pending, p)
		case now.After(ps.notBefore):
			ready = append(ready, p)
		}
	}
	y.mu.Unlock()
	for _, p := range ready {
		if !y.eligible(p) || !y.speaksSync(p) {
			continue
		}
		if y.begin(p, false, now) {
			y.mu.Lock()
			delete(y.pending, p)
			y.mu.Unlock()
			y.spawn(func() { y.initiate(p) })
		}
	}
}

// startPeriodic starts a session with one eligible relay peer at random.
func (y *syncer) startPeriodic() {
	peers := y.host.Network().Peers()
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for _, p := range peers {
		if y.eligible(p) && y.speaksSync(p) && y.begin(p, false, time.Now()) {
			y.spawn(func() { y.initiate(p) })
			return
		}
	}
}

// begin claims a session slot with p in a role: none runs with it in
// that role, it is not backing off, fewer than MaxSessions run.
func (y *syncer) begin(p peer.ID, inbound bool, now time.Time) bool {
	y.mu.Lock()
	defer y.mu.Unlock()
	k := sessionKey{p, inbound}
	if y.closed || y.active[k] || len(y.active) >= y.scfg.MaxSessions || now.Before(y.backoff[p]) {
		return false
	}
	y.active[k] = true
	return true
}

func (y *syncer) end(p peer.ID, inbound bool) {
	y.mu.Lock()
	delete(y.active, sessionKey{p, inbound})
	y.mu.Unlock()
}

// side is what this relay brings to a session with p.
func (y *syncer) side(p peer.ID, now time.Time) syncproto.Side {
	return syncproto.Side{
		Store: y.store, Limits: y.scfg.Limits, Horizon: y.store.Horizon(),
		Until: now.Add(-y.scfg.Settle).UnixMilli(), Gaps: y.store.Gaps(),
		Accept: func(frame []byte, want *history.Entry, w syncproto.Window) error {
			return y.accept(p, frame, want, w)
		},
		Settle: func() error {
			ctx, cancel := context.WithTimeout(y.ctx, y.scfg.Timeout)
			defer cancel()
			return y.store.Flush(ctx)
		},
	}
}

// initiate runs one outbound session with p.
func (y *syncer) initiate(p peer.ID) {
	defer y.end(p, false)
	ctx, cancel := context.WithTimeout(y.ctx, y.scfg.Timeout)
	defer cancel()
	now := time.Now()
	st, err := y.host.NewStream(network.WithNoDial(ctx, "sync"), p, SyncProtocol)
	if err != nil {
		y.m.syncErrors.WithLabelValues("stream").Inc()
		y.setBackoff(p, y.scfg.Backoff)
		y.log.Debug("sync stream", "remote", p.String(), "err", err)
		return
	}
	dl, _ := ctx.Deadline()
	_ = st.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	res, err := syncproto.Initiate(st, y.side(p, now), y.window(now))
	y.finish(p, "initiator", res, err, st)
}

// handle answers one inbound SyncProtocol stream.
func (y *syncer) handle(st network.Stream) {
	p := st.Conn().RemotePeer()
	if st.Conn().Stat().Limited || !y.eligible(p) {
		y.m.syncErrors.WithLabelValues("forbidden").Inc()
		_ = st.Reset()
		return
	}
	if !y.enter(st, p) {
		y.m.syncErrors.WithLabelValues("busy").Inc()
		_ = st.Reset()
		return
	}
	defer y.leave(st, p)
	_ = st.SetDeadline(time.Now().Add(y.scfg.Timeout))
	res, err := syncproto.Respond(st, y.side(p, time.Now()))
	y.finish(p, "responder", res, err, st)
}

// enter claims a session slot for an inbound stream.
func (y *syncer) enter(st network.Stream, p peer.ID) bool {
	if !y.begin(p, true, time.Now()) {
		return false
	}
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.closed {
		delete(y.active, sessionKey{p, true})
		return false
	}
	y.inbound[st] = struct{}{}
	y.hwg.Add(1)
	return true
}

func (y *syncer) leave(st network.Stream, p peer.ID) {
	y.mu.Lock()
	delete(y.inbound, st)
	delete(y.active, sessionKey{p, true})
	y.mu.Unlock()
	y.hwg.Done()
}

func (y *syncer) setBackoff(p peer.ID, d time.Duration) {
	y.mu.Lock()
	defer y.mu.Unlock()
	if len(y.backoff) >= syncMaxPeers {
		now := time.Now()
		for q, t := range y.backoff {
			if now.After(t) {
				delete(y.backoff, q)
			}
		}
	}
	if len(y.backoff) < syncMaxPeers {
		y.backoff[p] = time.Now().Add(d)
	}
}

// finish accounts for a session and acts on its outcome: gaps cleared
// when it reconciled, a backoff when it failed (a long one, and the
// stream reset, when the peer misbehaved), sessions with our other peers
// when it taught us something.
func (y *syncer) finish(p peer.ID, role string, res syncproto.Result, err error, st network.Stream) {
	m := y.m
	m.syncRounds.Add(float64(res.Rounds))
	m.syncBytes.WithLabelValues("sent").Add(float64(res.BytesSent))
	m.syncBytes.WithLabelValues("received").Add(float64(res.BytesRecv))
	m.syncMessages.WithLabelValues("received").Add(float64(res.Received))
	m.syncMessages.WithLabelValues("sent").Add(float64(res.Sent))
	m.syncMessages.WithLabelValues("ignored").Add(float64(res.Ignored))
	log := y.log.With("remote", p.String(), "role", role, "window_from", res.Window.From, "window_to", res.Window.To,
		"rounds", res.Rounds, "received", res.Received, "sent", res.Sent, "bytes_sent", res.BytesSent, "bytes_received", res.BytesRecv)
	var se *syncproto.Error
	switch {
	case errors.As(err, &se):
		m.syncSessions.WithLabelValues(role, "error").Inc()
		m.syncErrors.WithLabelValues(se.Reason).Inc()
		if se.Reason == syncproto.ReasonIO {
			_ = st.Reset()
		} else {
			_ = st.Close() // after our Error frame (a reset could drop it); the deadline bounds it
		}
		if se.Hostile() {
			y.setBackoff(p, syncHostileMult*y.scfg.Backoff)
			log.Warn("sync peer cut off", "err", err)
		} else {
			y.setBackoff(p, y.scfg.Backoff)
			log.Debug("sync session failed", "err", err)
		}
		return
	case err != nil:
		m.syncSessions.WithLabelValues(role, "error").Inc()
		m.syncErrors.WithLabelValues("other").Inc()
		_ = st.Reset()
		y.setBackoff(p, y.scfg.Backoff)
		return
	}
	_ = st.Close()
	if !res.Reconciled {
		m.syncSessions.WithLabelValues(role, "unreconciled").Inc()
		log.Debug("sync session ended unreconciled")
		// Again after settle + 1 s; from the fourth in a row, doubling
		// while sessions with p keep ending unreconciled (a difference
		// one side refuses to take, a peer that wastes our rounds): at
		// most one an interval.
		n := y.noteUnreconciled(p, true)
		y.schedule(p, time.Now().Add(min((y.scfg.Settle+time.Second)<<min(max(n-3, 0), 16), y.scfg.Interval)))
	} else {
		m.syncSessions.WithLabelValues(role, "reconciled").Inc()
		y.noteUnreconciled(p, false)
		y.clearGaps(res.Window, res.PeerGaps)
		if y.hasGapsAfter(res.Window.To) {
			// What is left lies past the window's end (the time we were
			// down, up to a moment ago): once it has settled. A gap inside
			// the window that the peer shares waits for another peer.
			y.schedule(p, time.Now().Add(y.scfg.Settle+time.Second))
		}
	}
	if res.Received > 0 {
		log.Info("sync learned broadcasts")
		for _, q := range y.host.Network().Peers() {
			if q != p && y.eligible(q) {
				y.schedule(q, time.Now())
			}
		}
	} else {
		log.Debug("sync session done", "reconciled", res.Reconciled)
	}
}

// clearGaps clears our gaps within w except where the peer has gaps of
// its own: a window is complete here once reconciled with a peer that
// holds it completely (docs/PROTOCOL.md 11.4).
func (y *syncer) clearGaps(w syncproto.Window, peerGaps []history.Gap) {
	gs := slices.Clone(peerGaps)
	slices.SortFunc(gs, func(a, b history.Gap) int { return int(min(max(a.From-b.From, -1), 1)) })
	from := w.From
	for _, g := range gs {
		if g.From > from {
			y.store.ClearGaps(from, g.From)
		}
		from = max(from, g.To)
	}
	if from < w.To {
		y.store.ClearGaps(from, w.To)
	}
}

// accept judges a message received by sync from p with the gossip
// validator's checks (checkEnvelope: size, JSON shape, message_id,
// reserved ids and types, no direct message), then the sync rules: it is
// the entry asked for (or, pushed, lies in the window), and the speak-for
// rule as far as history allows (docs/PROTOCOL.md 11.3). Accepted, it
// goes to the Receiver as gossip does: stored with its ts, delivered to
// the local nodes that have not had it.
func (y *syncer) accept(p peer.ID, frame []byte, want *history.Entry, w syncproto.Window) error {
	env, reason := checkEnvelope(frame, y.cfg.MaxMessageSize, false)
	hostile := true
	switch {
	case reason == "too_large":
		hostile = false // a relay in good standing with a larger limit (3)
	case reason != "":
	case env.TS < w.From || env.TS >= w.To:
		reason = "bad_ts"
	case want != nil && (want.TS != env.TS || want.Key != history.MsgKey(env.Sender, env.ID)):
		reason = "not_asked"
	case !y.mayHold(env.Sender, p):
		reason, hostile = "speak_for", false
	}
	if reason != "" {
		verdict := "reject"
		if !hostile {
			verdict = "ignore"
		}
		y.m.validation.WithLabelValues("sync", verdict, reason).Inc()
		return &syncproto.Refusal{Reason: reason, Hostile: hostile}
	}
	y.m.validation.WithLabelValues("sync", "accept", "").Inc()
	y.m.delivered.WithLabelValues("broadcast").Inc()
	y.recv.Learned(&env)
	return nil
}

// mayHold is the speak-for rule for a message from history: its author's
// gossip signature is gone, so the rule cannot ask which relay held the
// sender when it was published. A key id (a node with a proven key) is
// accepted only while some relay (this one, the peer, or another in the
// directory) holds it or left it within SpeakForWait; any other id as
// the peer, a relay in good standing, vouches for it.
func (y *syncer) mayHold(sender string, p peer.ID) bool {
	if !nodeauth.IsKeyID(sender) || y.isLocal(sender) {
		return true
	}
	v := y.dir.speaks(p, sender, time.Now())
	return v.held || v.heldElsewhere
}
