package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
)

// TestpresenceJoinLeave: with the default 2 s interval, a join and a leave
// on one relay are known at the others (line A-B-C) well within 5 s.
func TestPresenceJoinLeave(t *testing.T) {
	def := func(c *Config) {
		c.Presence.Interval = DefaultConfig().Presence.Interval
		c.Presence.SpeakForWait = DefaultConfig().Presence.SpeakForWait
	}
	a, b, c := newNode(t, "a", def), newNode(t, "b", def), newNode(t, "c", def)
	connectLine(t, a, b, c)

	a.NodeJoined("node-x", nil)
	dc := waitRemote(t, c, "node-x", true, 5*time.Second)
	db := waitRemote(t, b, "node-x", true, 5*time.Second)
	t.Logf("join seen at c after %v, at b after %v", dc, db)
	if hasRemote(a, "node-x") {
		t.Fatal("a lists its own node as remote")
	}

	a.NodeLeft("node-x")
	dc = waitRemote(t, c, "node-x", false, 5*time.Second)
	db = waitRemote(t, b, "node-x", false, 5*time.Second)
	t.Logf("leave seen at c after %v, at b after %v", dc, db)

	// A relay that joins later learns the existing nodes from the next
	// snapshot.
	a.NodeJoined("node-y", nil)
	waitRemote(t, c, "node-y", true, 5*time.Second)
	d := newNode(t, "d", def)
	connect(t, d, c)
	dd := waitRemote(t, d, "node-y", true, 5*time.Second)
	t.Logf("late relay learned node-y after %v", dd)
}

// TestPresenceExpiry: a relay closed without a word; its nodes expire at
// the others within the bound (3 missed snapshots). Measured at the default
// 2 s interval.
func TestPresenceExpiry(t *testing.T) {
	def := func(c *Config) {
		c.Presence.Interval = DefaultConfig().Presence.Interval
		c.Presence.SpeakForWait = DefaultConfig().Presence.SpeakForWait
	}
	a, b, c := newNode(t, "a", def), newNode(t, "b", def), newNode(t, "c", def)
	connectFull(t, a, b, c)
	c.NodeJoined("c-1", nil)
	c.NodeJoined("c-2", nil)
	waitRemote(t, a, "c-2", true, 5*time.Second)
	waitRemote(t, b, "c-2", true, 5*time.Second)

	// Close at a random point of c's snapshot cycle.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	// The documented bound is 3 intervals + one sweep (6.5 s); allow 1 s
	// of scheduling slack on a loaded machine.
	bound := 3*DefaultConfig().Presence.Interval + DefaultConfig().Presence.Interval/4 + time.Second
	for _, n := range []*tnode{a, b} {
		testutil.CheckFor(t, bound, func() error {
			if hasRemote(n, "c-1") || hasRemote(n, "c-2") {
				return fmt.Errorf("%s still lists c's nodes", n.name)
			}
			return nil
		})
		t.Logf("%s: c's nodes expired %v after c closed (bound %v)", n.name, time.Since(closed), bound)
	}
}

// TestRestartSameIdentity: a relay restarted on the same data directory has
// the same peer ID, rejoins via bootstrap, and the others replace its old
// nodes with the new ones at once (new epoch).
func TestRestartSameIdentity(t *testing.T) {
	a := newNode(t, "a", nil)
	dir := t.TempDir()
	b := newNode(t, "b", func(c *Config) {
		c.DataDir = dir
		c.Discovery.Bootstrap = []string{a.Addrs()[0].String()}
	})
	waitMesh(t, a, b)
	b.NodeJoined("old", nil)
	waitRemote(t, a, "old", true, 5*time.Second)
	oldID := b.ID()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := newNode(t, "b2", func(c *Config) {
		c.DataDir = dir
		c.Discovery.Bootstrap = []string{a.Addrs()[0].String()}
		// Long interval: the old node must go because of the new epoch,
		// not because of expiry.
		c.Presence.Interval = 5 * time.Second
	})
	if b2.ID() != oldID {
		t.Fatalf("peer id after restart %s, want %s", b2.ID(), oldID)
	}
	waitMesh(t, a, b2)
	b2.NodeJoined("new", nil)
	waitRemote(t, a, "new", true, 5*time.Second)
	if hasRemote(a, "old") {
		t.Fatal("a still lists the node of b's previous run")
	}
	// Traffic flows both ways again.
	testBroadcastOnce(t, b2, a)
	testBroadcastOnce(t, a, b2)
}
