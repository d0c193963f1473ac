package relay

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// Mailboxes (SPEC 7, docs/CLIENT.md "Mailboxes"): a direct message for a
// node that is connected nowhere, but was connected somewhere in the
// federation within MailboxTTL, is kept by the relay its sender is on and
// delivered, in the order sent, when the node binds again: at once when
// it binds here, else when the federation's presence shows it (checked
// every mailboxPoll). Mailboxes live in memory: they last while the
// keeping relay is up.

// CodeMailboxFull is the RelayError code of a direct message refused
// because its recipient's mailbox is full.
const CodeMailboxFull = "mailbox_full"

// Bounds of the mailboxes of one relay beyond MailboxMax per recipient.
const (
	mailboxMaxBytes   = 256 << 20 // all kept messages
	mailboxMaxSeen    = 1 << 20   // node ids remembered as seen
	mailboxPoll       = 500 * time.Millisecond
	mailboxSeenExpiry = time.Minute // how often old sightings are forgotten
)

// mailboxes is the router's mailbox state. Its goroutine (poll) is
// started with the first kept message and ended by Router.Close.
type mailboxes struct {
	mu       sync.RWMutex
	boxes    map[string][]kept    // by recipient, in the order sent
	flushing map[string]bool      // a box being emptied (deliverMailbox, forwardMailbox)
	bytes    int                  // of all kept frames
	seen     map[string]time.Time // node id -> last seen connected anywhere
	swept    time.Time
	running  bool
}

type kept struct {
	env message.Envelope // Raw is the frame's message
	f   *wsframe.Frame
	at  time.Time
}

// sawNode records that id was connected (a bind, a leave, presence, a
// direct message routed to it). It is on the direct-message path: a
// sighting fresher than one poll is left alone under the read lock.
func (r *Router) sawNode(id string, now time.Time) {
	m := &r.mail
	m.mu.RLock()
	t, ok := m.seen[id]
	m.mu.RUnlock()
	if ok && now.Sub(t) < mailboxPoll {
		return
	}
	m.mu.Lock()
	if m.seen == nil {
		m.seen = map[string]time.Time{}
	}
	if _, ok := m.seen[id]; ok || len(m.seen) < mailboxMaxSeen {
		m.seen[id] = now
	}
	m.mu.Unlock()
}

// keep puts a direct message for an absent recipient in its mailbox. It
// reports "" when kept, CodeMailboxFull when the mailbox is full, and
// CodeRecipientUnknown when the recipient was not seen within MailboxTTL
// (or mailboxes are off).
func (r *Router) keep(env *message.Envelope, f *wsframe.Frame) string {
	return r.keepAt(env, f, r.now())
}

// keepAt is keep for a message its sender's relay took at sent: a message
// that comes back from the mesh (a NACK) takes its place in the mailbox by
// that time, before messages kept after it was sent.
func (r *Router) keepAt(env *message.Envelope, f *wsframe.Frame, sent time.Time) string {
	lim := r.limits.Load()
	if lim.MailboxMax <= 0 {
		return message.CodeRecipientUnknown
	}
	now := r.now()
	m := &r.mail
	m.mu.Lock()
	if t, ok := m.seen[env.Recipient]; !ok || now.Sub(t) > lim.MailboxTTL {
		m.mu.Unlock()
		return message.CodeRecipientUnknown
	}
	code := r.insertLocked(env, f, sent, lim)
	m.mu.Unlock()
	if code == "" {
		// Its recipient may have bound here since the caller looked.
		r.flushIfLocal(env.Recipient)
	}
	return code
}

// queueBehind keeps a direct message in its recipient's mailbox when that
// mailbox holds messages or is being emptied: it must not overtake them.
// held is false when there is no such mailbox (the caller routes the
// message); otherwise code is "" (kept) or CodeMailboxFull.
func (r *Router) queueBehind(env *message.Envelope, f *wsframe.Frame) (code string, held bool) {
	if !r.mailBusy(env.Recipient) {
		return "", false
	}
	m := &r.mail
	m.mu.Lock()
	if !m.busyLocked(env.Recipient) {
		m.mu.Unlock() // emptied meanwhile: route it
		return "", false
	}
	code = r.insertLocked(env, f, r.now(), r.limits.Load())
	m.mu.Unlock()
	if code == "" {
		r.flushIfLocal(env.Recipient)
	}
	return code, true
}

// mailBusy reports whether id's mailbox holds messages or is being
// emptied.
func (r *Router) mailBusy(id string) bool {
	m := &r.mail
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.busyLocked(id)
}

func (m *mailboxes) busyLocked(id string) bool { return len(m.boxes[id]) > 0 || m.flushing[id] }

// insertLocked puts a message taken at sent in its recipient's mailbox, at
// its place by time. mail.mu held.
func (r *Router) insertLocked(env *message.Envelope, f *wsframe.Frame, sent time.Time, lim *Limits) string {
	m := &r.mail
	box := m.boxes[env.Recipient]
	if len(box) >= lim.MailboxMax || m.bytes+f.Len() > mailboxMaxBytes {
		return CodeMailboxFull
	}
	if m.boxes == nil {
		m.boxes = map[string][]kept{}
	}
	i := len(box)
	for i > 0 && box[i-1].at.After(sent) {
		i--
	}
	m.boxes[env.Recipient] = slices.Insert(box, i, kept{env: *env, f: f, at: sent})
	m.bytes += f.Len()
	r.metrics.MailboxIn.Inc()
	r.metrics.MailboxKept.Set(float64(m.bytes))
	if !m.running {
		m.running = true
		r.wg.Go(r.pollMailboxes)
	}
	return ""
}

// flushIfLocal delivers id's mailbox when id is bound here.
func (r *Router) flushIfLocal(id string) {
	if s := r.local(id); s != nil {
		r.deliverMailbox(s, id)
	}
}

// takeLocked removes and returns id's mailbox. mail.mu held.
func (r *Router) takeLocked(id string) []kept {
	m := &r.mail
	box := m.boxes[id]
	delete(m.boxes, id)
	for _, k := range box {
		m.bytes -= k.f.Len()
	}
	r.metrics.MailboxKept.Set(float64(m.bytes))
	return box
}

// flush empties id's mailbox through send, in order, while messages
// kept meanwhile (queueBehind) join it and follow; send reports how many
// of a batch went out, and the rest goes back to the head of the
// mailbox. One flush per id at a time: a second caller returns, the
// running one takes what it added.
func (r *Router) flush(id string, send func([]kept) int) {
	m := &r.mail
	m.mu.Lock()
	if m.flushing[id] {
		m.mu.Unlock()
		return
	}
	for {
		box := r.takeLocked(id)
		if len(box) == 0 {
			delete(m.flushing, id)
			m.mu.Unlock()
			return
		}
		if m.flushing == nil {
			m.flushing = map[string]bool{}
		}
		m.flushing[id] = true
		m.mu.Unlock()
		n := send(box)
		m.mu.Lock()
		if n < len(box) {
			r.requeueLocked(id, box[n:])
			delete(m.flushing, id)
			m.mu.Unlock()
			return
		}
	}
}

// deliverMailbox sends id's kept messages to its local session s.
func (r *Router) deliverMailbox(s *Session, id string) {
	r.flush(id, func(box []kept) int {
		for _, k := range box {
			if r.send(s, k.f) {
				r.metrics.countOut(k.env.Type, RouteLocal, len(k.env.Raw), 1)
			}
		}
		return len(box)
	})
}

// forwardMailbox sends id's kept messages to the relay that holds id,
// in order; when that relay is gone again, the rest stays.
func (r *Router) forwardMailbox(id string) {
	r.flush(id, func(box []kept) int {
		for i, k := range box {
			if !r.toMesh(&k.env, k.f, k.at) {
				return i
			}
		}
		return len(box)
	})
}

// pollMailboxes watches the federation's presence: a recipient held by
// another relay gets its kept messages over the mesh, in order; expired
// messages and sightings are dropped.
func (r *Router) pollMailboxes() {
	t := time.NewTicker(mailboxPoll)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		now := r.now()
		remote := map[string]bool{}
		if r.mesh != nil {
			for _, id := range r.mesh.RemoteNodes() {
				remote[id] = true
				r.sawNode(id, now)
			}
		}
		m := &r.mail
		m.mu.Lock()
		var ready []string
		for id, box := range m.boxes {
			// Expired messages go first.
			n := 0
			for n < len(box) && now.Sub(box[n].at) > r.limits.Load().MailboxTTL {
				m.bytes -= box[n].f.Len()
				n++
			}
			if box = box[n:]; len(box) == 0 {
				delete(m.boxes, id)
				continue
			}
			m.boxes[id] = box
			ready = append(ready, id)
		}
		if now.Sub(m.swept) > mailboxSeenExpiry {
			for id, at := range m.seen {
				if now.Sub(at) > r.limits.Load().MailboxTTL {
					delete(m.seen, id)
				}
			}
			m.swept = now
		}
		r.metrics.MailboxKept.Set(float64(m.bytes))
		m.mu.Unlock()
		// Outside mail.mu: r.mu comes first (Closed calls sawNode).
		for _, id := range ready {
			switch s := r.local(id); {
			case s != nil: // bound here (a bind that raced a keep)
				r.deliverMailbox(s, id)
			case remote[id]:
				r.forwardMailbox(id)
			}
		}
	}
}

// requeueLocked puts messages back at the head of id's mailbox, before
// any kept meanwhile. mail.mu held.
func (r *Router) requeueLocked(id string, box []kept) {
	m := &r.mail
	if m.boxes == nil {
		m.boxes = map[string][]kept{}
	}
	m.boxes[id] = append(box, m.boxes[id]...)
	for _, k := range box {
		m.bytes += k.f.Len()
	}
	r.metrics.MailboxKept.Set(float64(m.bytes))
}

// Close stops the router's mailbox goroutine (if one runs). Idempotent.
func (r *Router) Close(ctx context.Context) error {
	r.cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
