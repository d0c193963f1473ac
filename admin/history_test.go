package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/testnet"
)

// startHistoryAdmin starts an admin server with WithHistory(h) (and a
// token) in front of a standalone relay recording into store.
func startHistoryAdmin(t *testing.T, h admin.HistoryStats, opts ...relay.Option) (*admin.Server, *testnet.Standalone) {
	t.Helper()
	r := testnet.StartStandalone(t, nil, nil, opts...)
	srv := testnet.StartAdmin(t, admin.Config{Listen: "127.0.0.1:0", Token: "s3cret"},
		admin.WithSource(&admin.RelaySource{Router: r.Router, WS: r.WS, Version: "test"}), admin.WithHistory(h))
	return srv, r
}

func TestHistoryEndpoint(t *testing.T) {
	store := testnet.OpenHistory(t)
	srv, r := startHistoryAdmin(t, store, relay.WithHistory(store))
	defer http.DefaultClient.CloseIdleConnections()
	start := time.Now().UnixMilli()
	a := testnet.Dial(t, r.URL+"?node_id=node-a", "node-a")
	for i := range 3 {
		a.Send("EntryAnnounce", fmt.Sprint("e", i), "", `{"entry":1}`)
	}
	a.Send("NodeAnnounce", "n0", "", "")
	a.Send("EntryRequest", "direct", "node-a", "") // direct: not history
	a.Expect("EntryRequest")

	cl, _ := admin.NewClient(srv.URL(), "s3cret", 5*time.Second)
	defer cl.Close()
	var doc admin.History
	var raw []byte
	testnet.Eventually(t, testnet.Wait, "4 broadcasts stored", func() bool {
		var err error
		doc, raw, err = cl.History(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return doc.Count == 4
	})
	w := doc.Window
	if !doc.Enabled || doc.Writes != 4 || doc.Bytes <= 0 || doc.OldestMS < start || doc.NewestMS < doc.OldestMS ||
		w.Count != 4 || w.Bytes != doc.Bytes || w.Counted != 4 || w.Partial || w.OtherTypes != 0 ||
		w.Types["EntryAnnounce"] != 3 || w.Types["NodeAnnounce"] != 1 || len(w.Types) != 2 {
		t.Fatalf("document:\n%s", raw)
	}
	// A new store has a gap from 0 to its creation: the window from 0 is
	// not complete, the window from its first broadcast is.
	if w.Complete || len(w.Gaps) != 1 || w.Gaps[0].FromMS != 0 || w.Gaps[0].ToMS > doc.OldestMS {
		t.Fatalf("window from 0: complete %v, gaps %+v", w.Complete, w.Gaps)
	}
	recent, _, err := cl.History(context.Background(), doc.OldestMS)
	if err != nil {
		t.Fatal(err)
	}
	if !recent.Window.Complete || len(recent.Window.Gaps) != 0 || recent.Window.SinceMS != doc.OldestMS || recent.Window.Count != 4 {
		t.Fatalf("window from the oldest broadcast: %+v", recent.Window)
	}
	future, _, _ := cl.History(context.Background(), doc.NewestMS+1)
	if future.Window.Count != 0 || future.Count != 4 {
		t.Fatalf("window after the newest: %+v", future)
	}

	// The JSON keys are the documented ones; lists are never null.
	var keys map[string]any
	json.Unmarshal(raw, &keys)
	for _, k := range []string{"enabled", "count", "bytes", "oldest_ms", "newest_ms", "writes", "dropped", "duplicates", "queued", "low_disk", "failed", "window"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("no %q in %s", k, raw)
		}
	}
	win, _ := keys["window"].(map[string]any)
	for _, k := range []string{"since_ms", "count", "bytes", "complete", "gaps", "types", "other_types", "counted", "partial", "counted_from_ms"} {
		if _, ok := win[k]; !ok {
			t.Errorf("no window.%q in %s", k, raw)
		}
	}

	for _, tc := range []struct {
		path, token string
		code        int
		want        string
	}{
		{"/api/v1/history", "", http.StatusUnauthorized, "bearer token"},
		{"/api/v1/history?since_ms=-1", "s3cret", http.StatusBadRequest, "since_ms"},
		{"/api/v1/history?since_ms=10m", "s3cret", http.StatusBadRequest, "since_ms"},
	} {
		if code, body := get(t, srv.URL()+tc.path, tc.token); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d %s, want %d and %q", tc.path, code, body, tc.code, tc.want)
		}
	}
}

func TestHistoryEndpointDisabled(t *testing.T) {
	srv, _ := startHistoryAdmin(t, nil)
	defer http.DefaultClient.CloseIdleConnections()
	cl, _ := admin.NewClient(srv.URL(), "s3cret", 5*time.Second)
	defer cl.Close()
	doc, raw, err := cl.History(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Enabled || doc.Window.SinceMS != 5 || strings.Contains(string(raw), "null") {
		t.Fatalf("without a store:\n%s", raw)
	}
}
