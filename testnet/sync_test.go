package testnet

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/relay"
)

// fastSync makes the relays reconcile every second.
func fastSync(_ int, c *node.Config) { c.Sync.Interval = time.Second }

// stored counts relay r's stored broadcasts with ts >= since whose
// message_id starts with prefix.
func stored(t *testing.T, r *Relay, since int64, prefix string) int {
	t.Helper()
	n := 0
	for {
		res, err := r.History.Range(since, 0, 0, "", func(_ int64, _ string, frame []byte) error {
			if strings.Contains(string(frame), `"message_id":"`+prefix) {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.NextSince == 0 {
			return n
		}
		since = res.NextSince
	}
}

// receiveOnce reads c until it has every id of want once, failing on a
// duplicate of one of them; other messages are returned.
func receiveOnce(t *testing.T, c *Client, want map[string]bool) {
	t.Helper()
	got := map[string]int{}
	for len(got) < len(want) {
		m := c.Next()
		if !want[m.ID] {
			continue
		}
		if got[m.ID]++; got[m.ID] > 1 {
			t.Fatalf("%s got %s twice", c.NodeID, m.ID)
		}
	}
}

func ids(prefix string, n int) map[string]bool {
	m := map[string]bool{}
	for i := range n {
		m[fmt.Sprint(prefix, i)] = true
	}
	return m
}

// TestSyncHealsPartition: four relays cut into {0,1} and {2,3}; each
// side's nodes broadcast; after the heal every relay's history holds the
// union, and a node that stayed connected on each side gets the other
// side's broadcasts, each exactly once.
func TestSyncHealsPartition(t *testing.T) {
	h := StartHarness(t, 4, Full, WithNodeConfig(fastSync))
	cs := clients(t, h)
	since := time.Now().UnixMilli()
	h.Partition([]int{0, 1}, []int{2, 3})
	const n = 25
	for i := range n {
		cs[0].Send("EntryAnnounce", fmt.Sprint("A-", i), "", fmt.Sprintf(`{"i":%d}`, i))
		cs[2].Send("EntryAnnounce", fmt.Sprint("B-", i), "", fmt.Sprintf(`{"i":%d}`, i))
	}
	// Each side's broadcasts reach its own side.
	receiveOnce(t, cs[1], ids("A-", n))
	receiveOnce(t, cs[3], ids("B-", n))
	for i, r := range h.Relays {
		if a, b := stored(t, r, since, "A-"), stored(t, r, since, "B-"); (i < 2 && b != 0) || (i >= 2 && a != 0) {
			t.Fatalf("relay %d holds %d A and %d B during the partition", i, a, b)
		}
	}
	start := time.Now()
	h.Heal()
	Eventually(t, 20*time.Second, "every relay to hold both sides' broadcasts", func() bool {
		for _, r := range h.Relays {
			if stored(t, r, since, "A-") != n || stored(t, r, since, "B-") != n {
				return false
			}
		}
		return true
	})
	t.Logf("healed in %v", time.Since(start).Round(time.Millisecond))
	receiveOnce(t, cs[0], ids("B-", n))
	receiveOnce(t, cs[1], ids("B-", n))
	receiveOnce(t, cs[2], ids("A-", n))
	receiveOnce(t, cs[3], ids("A-", n))
	// No duplicate follows: a marker from each side arrives after
	// whatever reconciliation still delivers (none expected).
	h.WaitMesh()
	cs[0].Send("EntryAnnounce", "end-A", "", `{}`)
	cs[3].Send("EntryAnnounce", "end-B", "", `{}`)
	for i, c := range cs {
		want := map[string]bool{"end-A": i != 0, "end-B": i != 3}
		seen := 0
		for seen < 2-btoi(i == 0 || i == 3) {
			m := c.Next()
			switch {
			case want[m.ID]:
				seen++
			case strings.HasPrefix(m.ID, "A-"), strings.HasPrefix(m.ID, "B-"):
				t.Fatalf("%s: %s delivered again", c.NodeID, m.ID)
			}
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSyncAfterRestart: a relay down while the others broadcast restarts
// with the same data dir, reconciles, holds the union, and its gap is
// cleared: a HistoryRequest over the downtime is complete.
func TestSyncAfterRestart(t *testing.T) {
	h := StartHarness(t, 3, Full, WithNodeConfig(fastSync))
	a := Dial(t, h.Relays[0].URL+"?node_id=a", "a")
	b := Dial(t, h.Relays[1].URL+"?node_id=b", "b")
	h.WaitNodes(10*time.Second, "a", "b")
	a.Send("EntryAnnounce", "before", "", `{}`)
	b.Expect("EntryAnnounce")
	since := time.Now().UnixMilli() - 1
	Eventually(t, 10*time.Second, "relay 2 to store the first broadcast", func() bool {
		return stored(t, h.Relays[2], 0, "before") == 1
	})
	h.Relays[2].Stop(t)
	const n = 30
	for i := range n {
		a.Send("EntryAnnounce", fmt.Sprint("down-", i), "", `{}`)
		b.Send("EntryAnnounce", fmt.Sprint("down-b", i), "", `{}`)
	}
	receiveOnce(t, b, ids("down-", n))
	h.Restart(2)
	if gaps := h.Relays[2].History.Gaps(); len(gaps) == 0 {
		t.Fatal("no gap recorded for the downtime")
	}
	Eventually(t, 20*time.Second, "relay 2 to hold what it missed", func() bool {
		return stored(t, h.Relays[2], since, "down-") == 2*n
	})
	c := Dial(t, h.Relays[2].URL+"?node_id=c", "c")
	// HistoryRequest is answered twice a second: asked faster, the relay
	// refuses with rate_limited, which only means "ask again".
	Eventually(t, 20*time.Second, "relay 2's history to be complete over the downtime", func() bool {
		c.Send(relay.TypeHistoryRequest, fmt.Sprint("h", time.Now().UnixNano()), "relay", fmt.Sprintf(`{"since_ms":%d}`, since))
		got := 0
		for {
			m := c.Next()
			switch m.Type {
			case message.TypeRelayError:
				if !strings.Contains(string(m.Payload), message.CodeRateLimited) {
					t.Fatalf("c: %s", m.Payload)
				}
				return false
			case relay.TypeRelayHistoryEnd:
				var end historyEnd
				if err := json.Unmarshal(m.Payload, &end); err != nil {
					t.Fatal(err)
				}
				return end.Complete && got >= 2*n
			}
			if strings.HasPrefix(m.ID, "down-") {
				got++
			}
		}
	})
}
