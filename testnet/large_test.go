package testnet

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestLargeDirectAcrossRelays: a ledger sync answer of almost 16 MiB
// crosses two relays byte for byte; a broadcast over 1 MiB is refused
// with too_large and the session goes on.
func TestLargeDirectAcrossRelays(t *testing.T) {
	// 16 MiB under -race, and presence plus a mailbox poll, on a loaded
	// 2-core machine: a longer wait than the package's default.
	defer func(w time.Duration) { Wait = w }(Wait)
	Wait = 45 * time.Second
	h := StartHarness(t, 2, Full)
	a := Dial(t, h.Relays[0].URL+"?node_id=a", "a")
	b := Dial(t, h.Relays[1].URL+"?node_id=b", "b")
	h.WaitNodes(10*time.Second, "a", "b")
	payload := `{"entries":"` + strings.Repeat("x", 16<<20-4096) + `"}`
	start := time.Now()
	a.Send("LedgerSyncResponse", "big-1", "b", payload)
	m := b.Expect("LedgerSyncResponse")
	if m.ID != "big-1" || !bytes.Equal(m.Payload, []byte(payload)) {
		t.Fatalf("got %s of %d bytes, want the %d-byte payload", m.ID, len(m.Payload), len(payload))
	}
	t.Logf("%d MiB direct across 2 relays in %v", len(m.Raw)>>20, time.Since(start).Round(time.Millisecond))

	a.Send("EntryAnnounce", "too-big", "", `{"x":"`+strings.Repeat("y", 1<<20)+`"}`)
	if e := a.ExpectError("too_large"); e.Ref != "too-big" {
		t.Fatalf("too_large for %q", e.Ref)
	}
	a.Send("EntryAnnounce", "small", "", `{}`)
	if m := b.Expect("EntryAnnounce"); m.ID != "small" {
		t.Fatalf("got %s", m.ID)
	}
}
