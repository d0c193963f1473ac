package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/testnet"
)

func TestParseSince(t *testing.T) {
	now := time.UnixMilli(1_764_633_600_000)
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true},
		{"10m", now.UnixMilli() - 600_000, true},
		{"1h30m", now.UnixMilli() - 5_400_000, true},
		{"1764633000000", 1_764_633_000_000, true},
		{"0", 0, true},
		{"2025-12-02T00:00:00Z", 1_764_633_600_000, true},
		{"2025-12-02T00:00:00.5+01:00", 1_764_630_000_500, true},
		{"-5", 0, false},
		{"-1m", 0, false},
		{"0s", 0, false},
		{"yesterday", 0, false},
	} {
		got, err := parseSince(tc.in, now)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSince(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestHistoryCommand: a relay run with --history, a few broadcasts, then
// `gsio-relay history` as a table and as JSON, and the store's metrics.
func TestHistoryCommand(t *testing.T) {
	p := start(t, nil, "run", "--standalone", "--history", "--data-dir", t.TempDir(),
		"--ws-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	a := testnet.Dial(t, "ws://"+p.WS+"/ws?node_id=node-a", "node-a")
	for i := range 3 {
		a.Send("EntryAnnounce", fmt.Sprint("e", i), "", `{"entry":"x"}`)
	}
	a.Send("NodeAnnounce", "n1", "", "")
	a.Send("EntryRequest", "d1", "node-a", "") // direct: not kept
	a.Expect("EntryRequest")

	var doc admin.History
	testnet.Eventually(t, testnet.Wait, "4 broadcasts in the relay's history", func() bool {
		inspectJSON(t, p, &doc, "history")
		return doc.Count == 4
	})
	if !doc.Enabled || doc.Window.Count != 4 || doc.Window.Types["EntryAnnounce"] != 3 || doc.Window.Types["NodeAnnounce"] != 1 {
		t.Fatalf("history --json: %+v", doc)
	}

	out := inspect(t, p, "history", "--since", "10m")
	fits(t, "history", out)
	for _, re := range []string{
		`(?m)^Stored\s+4 broadcasts, \d+ B$`,
		`(?m)^Oldest\s+20\d\d-\d\d-\d\dT[0-9:.]+Z \(\d+s ago\)$`,
		`(?m)^Since start\s+4 written, 0 dropped, 0 duplicates$`,
		`(?m)^Window\s+since 20\d\d-`,
		// The store is seconds old: the 10 minutes before are a gap.
		`(?m)^Complete\s+no: 1 gap$`,
		`(?m)^GAP FROM\s+TO\s+LENGTH$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("history: no match for %s in:\n%s", re, out)
		}
	}
	if rows := tableRows(out, "TYPE"); len(rows) != 2 || strings.Join(rows[0], " ") != "EntryAnnounce 3" || strings.Join(rows[1], " ") != "NodeAnnounce 1" {
		t.Errorf("history: type rows %q in:\n%s", rows, out)
	}

	// From the oldest broadcast on, the window is complete.
	var from admin.History
	inspectJSON(t, p, &from, "history", "--since", fmt.Sprint(doc.OldestMS))
	if !from.Window.Complete || len(from.Window.Gaps) != 0 || from.Window.SinceMS != doc.OldestMS || from.Window.Count != 4 {
		t.Errorf("history --since %d: %+v", doc.OldestMS, from.Window)
	}
	if out := inspect(t, p, "history", "--since", fmt.Sprint(doc.OldestMS)); !regexp.MustCompile(`(?m)^Complete\s+yes$`).MatchString(out) {
		t.Errorf("history --since oldest:\n%s", out)
	}

	// The store's metrics.
	resp, err := http.Get("http://" + p.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"gsio_history_messages 4\n", "gsio_history_writes_total 4\n", "gsio_history_dropped_total 0\n", "gsio_history_bytes ", "gsio_history_oldest_timestamp_seconds 1."} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %q", want)
		}
	}

	_, stderr, code := runCLI(t, nil, "history", "--admin", p.Admin, "--since", "soon")
	if code == 0 {
		t.Error("history --since soon: exit 0")
	}
	oneLine(t, "history --since soon", stderr, "--since")
}

func TestHistoryCommandWithoutHistory(t *testing.T) {
	p := start(t, nil, "run", "--standalone", "--history=false", "--data-dir", t.TempDir(),
		"--ws-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	if out := inspect(t, p, "history"); !strings.Contains(out, "keeps no history") {
		t.Errorf("history of a relay without: %q", out)
	}
}
