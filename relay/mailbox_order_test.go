package relay

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/gsio-net/gsio-relay/message"
)

// xLeft opens node b on rs[1] and node x on rs[0], has b reach x once
// (so that both relays saw x), and closes x's session.
func xLeft(t *testing.T, rs []*Router) (b *memConn) {
	t.Helper()
	b = open(t, rs[1], "node_id=b")
	x := open(t, rs[0], "node_id=x")
	b.send("EntryRequest", "d0", "b", "x", `{}`)
	x.expectOne(t, "EntryRequest")
	x.session.Closed()
	return b
}

// receive waits until c has received the direct messages want, in that
// order, and nothing else.
func receive(t *testing.T, c *memConn, want ...string) {
	t.Helper()
	var got []string
	testutil.Eventually(t, 5*time.Second, func() bool {
		for _, m := range c.take(t) {
			got = append(got, m.ID)
		}
		return len(got) >= len(want)
	}, "%v, got %v", want, got)
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestMailboxNACKWhileTheRecipientBindsHere: a direct message NACKed by
// the relay its recipient left is kept just as the recipient binds on the
// sender's relay (after Undeliverable looked for it here, before the
// message is in the mailbox): it is delivered, before what is sent next.
// Before: it stayed in a mailbox nobody emptied, and the next message
// arrived alone.
func TestMailboxNACKWhileTheRecipientBindsHere(t *testing.T) {
	var hook atomic.Pointer[func()]
	var calls atomic.Int64
	clock := func() time.Time {
		// The second reading of the clock in Undeliverable is keepAt's,
		// after its look for a local session.
		if h := hook.Load(); h != nil && calls.Add(1) == 2 {
			hook.Store(nil)
			(*h)()
		}
		return time.Now()
	}
	rs, fed := newFedWith(t, 2, nil, func(i int) func() time.Time {
		return map[bool]func() time.Time{true: clock, false: time.Now}[i == 1]
	})
	b := xLeft(t, rs)
	fed.meshes[1].mu.Lock()
	fed.meshes[1].stale = map[string]bool{"x": true} // routed to where x was
	fed.meshes[1].mu.Unlock()
	b.send("EntryRequest", "d1", "b", "x", `{}`)
	fed.meshes[1].mu.Lock()
	fed.meshes[1].stale = nil
	fed.meshes[1].mu.Unlock()
	var x2 *memConn
	bind := func() { x2 = open(t, rs[1], "node_id=x") }
	hook.Store(&bind)
	rs[1].Undeliverable("b", "d1", "x") // x binds here in the middle
	if x2 == nil {
		t.Fatal("the bind did not run inside Undeliverable")
	}
	b.send("EntryRequest", "d2", "b", "x", `{}`)
	receive(t, x2, "d1", "d2")
	b.expectNone(t)
}

// TestMailboxNotOvertakenOnAnotherRelay: messages kept for a node that
// went away are delivered before those sent after it bound on another
// relay. Before: new messages went over the mesh at once and the kept
// ones followed at the next poll.
func TestMailboxNotOvertakenOnAnotherRelay(t *testing.T) {
	rs, _ := newFed(t, 2)
	b := xLeft(t, rs)
	b.send("EntryRequest", "d1", "b", "x", `{}`) // kept at b's relay: x is nowhere
	b.expectNone(t)
	x2 := open(t, rs[0], "node_id=x")
	b.send("EntryRequest", "d2", "b", "x", `{}`)
	b.send("EntryRequest", "d3", "b", "x", `{}`)
	receive(t, x2, "d1", "d2", "d3")
	b.expectNone(t)
}

// TestMailboxAtTheRecipientsRelay: a direct message that reaches the
// recipient's relay just after the recipient left it is kept there and
// follows the node to the relay it binds on next. Before: dropped, with
// no answer to anyone.
func TestMailboxAtTheRecipientsRelay(t *testing.T) {
	rs, _ := newFed(t, 2)
	xLeft(t, rs)
	// What the mesh hands over for x after it left.
	e, err := message.Parse(message.Build("EntryRequest", "late", "far", "x", []byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	rs[0].Deliver(&e)
	x2 := open(t, rs[1], "node_id=x")
	receive(t, x2, "late")
}
