package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/libp2p/go-libp2p/core/network"
)

// TestDirectLine: A-B-C, A and C not connected. A direct message from A to
// a node on C goes over /gsio/direct/1.0.0, dialled with the addresses of
// C's presence snapshot, and only C delivers it.
func TestDirectLine(t *testing.T) {
	a, b, c := newNode(t, "a", nil), newNode(t, "b", nil), newNode(t, "c", nil)
	connectLine(t, a, b, c)
	if a.Host().Network().Connectedness(c.ID()) == network.Connected {
		t.Fatal("a and c must not be connected at start")
	}
	a.NodeJoined("alice", nil)
	c.NodeJoined("carol", nil)
	waitRemote(t, a, "carol", true, 5*time.Second)
	waitRemote(t, c, "alice", true, 5*time.Second)

	for i := range 3 {
		env := envelope(t, "EntryRequest", fmt.Sprintf("d-%d", i), "alice", "carol", `{"hash":"abc"}`)
		if !a.Direct(env) {
			t.Fatal("Direct reported no relay for carol")
		}
		waitDelivered(t, c, "alice", env.ID, 1)
	}
	// And back, on C's own stream.
	env := envelope(t, "EntryResponse", "r-1", "carol", "alice", `{"entry":{}}`)
	if !c.Direct(env) {
		t.Fatal("Direct reported no relay for alice")
	}
	waitDelivered(t, a, "carol", "r-1", 1)

	testutil.Stays(t, 300*time.Millisecond, func() error {
		if k := b.rec.total(); k != 0 {
			return fmt.Errorf("b (not on the way) delivered %d messages", k)
		}
		if k := c.rec.count("alice", "d-0"); k != 1 {
			return fmt.Errorf("c delivered d-0 %d times", k)
		}
		return nil
	})
	if a.Host().Network().Connectedness(c.ID()) != network.Connected {
		t.Fatal("a did not dial c")
	}
	if len(a.rec.undeliverables()) != 0 {
		t.Fatalf("undeliverable: %v", a.rec.undeliverables())
	}
}

// TestDirectUnknown: no relay holds the recipient.
func TestDirectUnknown(t *testing.T) {
	a, b := newNode(t, "a", nil), newNode(t, "b", nil)
	connectFull(t, a, b)
	if a.Direct(envelope(t, "EntryRequest", "x-1", "alice", "nobody", `{}`)) {
		t.Fatal("Direct to an unknown node reported true")
	}
}

// TestDirectNACK: the relay the directory names no longer holds the
// recipient (it left before the leave reached us): it answers with a NACK
// and the origin reports Undeliverable.
func TestDirectNACK(t *testing.T) {
	slow := func(c *Config) { c.Presence.Interval = 5 * time.Second }
	a, b := newNode(t, "a", slow), newNode(t, "b", slow)
	connectFull(t, a, b)
	a.NodeJoined("alice", nil)
	b.NodeJoined("ghost", nil)
	waitRemote(t, a, "ghost", true, 5*time.Second)
	waitRemote(t, b, "alice", true, 5*time.Second)

	// ghost leaves b without b announcing it yet.
	b.presence.mu.Lock()
	delete(b.presence.local, "ghost")
	b.presence.mu.Unlock()

	env := envelope(t, "EntryRequest", "n-1", "alice", "ghost", `{}`)
	if !a.Direct(env) {
		t.Fatal("Direct reported no relay for ghost")
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		u := a.rec.undeliverables()
		if len(u) != 1 || u[0] != (undeliverable{"alice", "n-1", "ghost"}) {
			return fmt.Errorf("undeliverable = %v", u)
		}
		return nil
	})
	if b.rec.total() != 0 {
		t.Fatal("b delivered a message for a node it does not hold")
	}
}

// TestDirectDialFailure: the holder's addresses are dead; the message is
// reported undeliverable after the dial fails.
func TestDirectDialFailure(t *testing.T) {
	quick := func(c *Config) { c.Direct.DialTimeout = time.Second; c.Presence.Interval = 5 * time.Second }
	a, b := newNode(t, "a", quick), newNode(t, "b", quick)
	connectFull(t, a, b)
	a.NodeJoined("alice", nil)
	b.NodeJoined("bob", nil)
	waitRemote(t, a, "bob", true, 5*time.Second)
	waitRemote(t, b, "alice", true, 5*time.Second)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if a.Host().Network().Connectedness(b.ID()) == network.Connected {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	if !a.Direct(envelope(t, "EntryRequest", "f-1", "alice", "bob", `{}`)) {
		t.Fatal("Direct reported no relay for bob (expiry is 15 s)")
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if u := a.rec.undeliverables(); len(u) != 1 || u[0].messageID != "f-1" {
			return fmt.Errorf("undeliverable = %v", u)
		}
		return nil
	})
}
