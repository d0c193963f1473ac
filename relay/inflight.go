package relay

import (
	"sync"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// In-flight direct messages: a direct message handed to the mesh for a
// recipient on another relay is remembered here for a short while, so that
// when that relay answers "not here" (the recipient left it just before
// the message arrived, and our directory was a presence delta behind) the
// message goes to the recipient's mailbox instead of back to its sender as
// recipient_unknown. Nothing acknowledges a delivered direct message, so
// entries leave by age or by the bounds, oldest first; a NACK that comes
// after its entry left gets the old answer, recipient_unknown.
const (
	inflightTTL      = 5 * time.Second // far above a NACK's round trip
	inflightMax      = 8192            // messages
	inflightMaxBytes = 32 << 20        // of their frames
)

type inflightMsg struct {
	env  message.Envelope
	f    *wsframe.Frame
	at   time.Time // when the sender's relay took it: its place in a mailbox
	sent time.Time // when it went to the mesh: its age here
}

// inflight is a FIFO of recently sent direct messages with an index by
// (sender, message_id). Removing by key leaves the FIFO slot behind; it is
// skipped when it comes to the front.
type inflight struct {
	mu    sync.Mutex
	byKey map[dedupKey]*inflightMsg
	fifo  []inflightSlot
	head  int
	bytes int
}

type inflightSlot struct {
	k dedupKey
	m *inflightMsg
}

// add remembers env, sent to the mesh at now, until it ages out or is
// taken; at is when the relay took it (now, or when a mailbox kept it).
func (q *inflight) add(env *message.Envelope, f *wsframe.Frame, at, now time.Time) {
	if f.Len() > inflightMaxBytes {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.byKey == nil {
		q.byKey = make(map[dedupKey]*inflightMsg)
	}
	k := dedupKey{env.Sender, env.ID}
	if old := q.byKey[k]; old != nil {
		q.bytes -= old.f.Len()
	}
	m := &inflightMsg{env: *env, f: f, at: at, sent: now}
	q.byKey[k] = m
	q.fifo = append(q.fifo, inflightSlot{k, m})
	q.bytes += f.Len()
	q.expireLocked(now)
}

// take removes and returns the message (sender, id), or nil.
func (q *inflight) take(sender, id string, now time.Time) *inflightMsg {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(now)
	k := dedupKey{sender, id}
	m := q.byKey[k]
	if m != nil {
		delete(q.byKey, k)
		q.bytes -= m.f.Len()
	}
	return m
}

// expireLocked drops entries from the front while they are older than
// inflightTTL or the bounds are exceeded, and compacts the FIFO.
func (q *inflight) expireLocked(now time.Time) {
	for q.head < len(q.fifo) {
		s := q.fifo[q.head]
		live := q.byKey[s.k] == s.m
		if live && now.Sub(s.m.sent) <= inflightTTL && len(q.byKey) <= inflightMax && q.bytes <= inflightMaxBytes {
			break
		}
		if live {
			delete(q.byKey, s.k)
			q.bytes -= s.m.f.Len()
		}
		q.fifo[q.head] = inflightSlot{}
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.fifo) {
		n := copy(q.fifo, q.fifo[q.head:])
		clear(q.fifo[n:])
		q.fifo = q.fifo[:n]
		q.head = 0
	}
}

// len reports the messages remembered (tests).
func (q *inflight) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.byKey)
}
