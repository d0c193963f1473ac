package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/testnet"
)

// meshDOM is what the /ui page shows: the relays drawn in the graph, the
// rows of the table, the links, the status.
type meshDOM struct {
	Status string `json:"status"` // body[data-status]: live or error
	Text   string `json:"text"`   // #status
	Search string `json:"search"` // location.search
	Links  int    `json:"links"`
	Relays []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Nodes string `json:"nodes"`
		Badge string `json:"badge"`
	} `json:"relays"`
	Rows []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"rows"`
}

const meshDOMScript = `JSON.stringify({
	status: document.body.dataset.status || "",
	text: document.getElementById("status").textContent,
	search: location.search,
	links: document.querySelectorAll("#graph line.link").length,
	relays: [...document.querySelectorAll("#graph g.relay")].map(g => ({
		id: g.dataset.id, state: g.dataset.state, nodes: g.dataset.nodes,
		badge: g.querySelector(".badge")?.textContent ?? ""})),
	rows: [...document.querySelectorAll("#relays tbody tr")].map(r => ({id: r.dataset.id, state: r.dataset.state})),
})`

// dom reads what the page shows.
func (tb *tab) dom() meshDOM {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageWait)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](meshDOMScript))
	var d meshDOM
	if err == nil {
		err = json.Unmarshal([]byte(s), &d)
	}
	if err != nil {
		tb.t.Fatalf("read the page: %v", err)
	}
	return d
}

// waitDOM waits until the page shows what ok accepts.
func (tb *tab) waitDOM(what string, ok func(meshDOM) bool) meshDOM {
	tb.t.Helper()
	var d meshDOM
	deadline := time.Now().Add(pageWait)
	for {
		if d = tb.dom(); ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("the page does not show %s within %v; it shows %+v", what, pageWait, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nodesShown maps relay id -> node count drawn (state ok only).
func (d meshDOM) nodesShown() map[string]string {
	out := map[string]string{}
	for _, r := range d.Relays {
		if r.State == "ok" {
			out[r.ID] = r.Nodes
		}
	}
	return out
}

// TestMeshPage loads /ui from relay 0 of a three-relay federation: three
// relays drawn (and in the table) with their links; the node counts
// follow WebSocket clients connecting; a stopped relay is shown
// unreachable or gone. With an admin token, the page works from
// /ui/?token=… (and takes the token out of its address), and says what is
// missing without it. Set GSIO_UPDATE_DOCS=1 to refresh docs/mesh-ui.png.
func TestMeshPage(t *testing.T) {
	chromium := findChromium(t)
	h := testnet.StartHarness(t, 3, testnet.Full, testnet.WithAdmin())
	browser := startBrowser(t, chromium)
	ids := []string{h.Relays[0].Node.ID().String(), h.Relays[1].Node.ID().String(), h.Relays[2].Node.ID().String()}

	t.Run("live", func(t *testing.T) {
		tab := openTab(t, browser)
		tab.viewport(1100, 980)
		tab.navigate(h.Relays[0].AdminURL+"/ui/", url.Values{"interval": {"400"}})
		d := tab.waitDOM("three relays, all ok, three links", func(d meshDOM) bool {
			return len(d.Relays) == 3 && len(d.Rows) == 3 && d.Links == 3 && len(d.nodesShown()) == 3
		})
		if d.Status != "live" || d.Relays[0].ID != ids[0] {
			t.Errorf("status %q, first relay %s (want relay 0, %s)", d.Status, d.Relays[0].ID, ids[0])
		}
		for _, r := range d.Relays {
			if !slices.Contains(ids, r.ID) {
				t.Errorf("unknown relay %s drawn", r.ID)
			}
		}

		// Clients: two on relay 1, one on relay 2.
		a := testnet.Dial(t, h.Relays[1].URL+"?node_id=node-a", "node-a")
		testnet.Dial(t, h.Relays[1].URL+"?node_id=node-b", "node-b")
		c := testnet.Dial(t, h.Relays[2].URL+"?node_id=node-c", "node-c")
		testnet.Reach(t, a, c)
		want := map[string]string{ids[0]: "0", ids[1]: "2", ids[2]: "1"}
		tab.waitDOM(fmt.Sprintf("node counts %v", want), func(d meshDOM) bool {
			return fmt.Sprint(d.nodesShown()) == fmt.Sprint(want)
		})
		for i := range 40 { // some traffic, for the rates in the picture
			a.Send("EntryAnnounce", fmt.Sprintf("e-%d", i), "", `{"entry":{"n":1}}`)
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(1500 * time.Millisecond)
		png := tab.fullScreenshot(filepath.Join(t.ArtifactDir(), "mesh-ui.png"))
		if os.Getenv("GSIO_UPDATE_DOCS") != "" && png != nil {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", "mesh-ui.png"), png, 0o644); err != nil {
				t.Errorf("update docs/mesh-ui.png: %v", err)
			}
		}

		// Relay 2 stops: shown unreachable, then gone; its link goes.
		h.Relays[2].Stop(t)
		d = tab.waitDOM("relay 2 unreachable or gone, one link left", func(d meshDOM) bool {
			for _, r := range d.Relays {
				if r.ID == ids[2] {
					return (r.State == "unreachable" || r.State == "gone") && r.Badge != "" && d.Links == 1
				}
			}
			return false
		})
		for _, r := range d.Rows {
			if r.ID == ids[2] && r.State != "unreachable" && r.State != "gone" {
				t.Errorf("table row of relay 2: %s", r.State)
			}
		}
		if n := d.nodesShown(); len(n) != 2 || n[ids[1]] != "2" {
			t.Errorf("node counts after relay 2 stopped: %v", n)
		}
	})

	t.Run("token", func(t *testing.T) {
		r := h.Relays[0]
		srv := testnet.StartAdmin(t, admin.Config{Listen: "127.0.0.1:0", Token: "s3cret"},
			admin.WithSource(&admin.RelaySource{Node: r.Node, Router: r.Router, WS: r.WS, Version: "test"}))
		tab := openTab(t, browser)
		tab.navigate(srv.URL()+"/ui", url.Values{"interval": {"400"}})
		d := tab.waitDOM("an error about the token", func(d meshDOM) bool { return d.Status == "error" })
		if want := "requires its admin token"; !strings.Contains(d.Text, want) {
			t.Errorf("status %q, want it to say %q", d.Text, want)
		}
		tab.navigate(srv.URL()+"/ui", url.Values{"interval": {"400"}, "token": {"s3cret"}})
		d = tab.waitDOM("the relays, with the token", func(d meshDOM) bool { return d.Status == "live" && len(d.Relays) >= 2 })
		if d.Search != "?interval=400" {
			t.Errorf("the page keeps the token in its address: %q", d.Search)
		}
	})
}

// viewport sets the tab's viewport size.
func (tb *tab) viewport(w, h int64) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageWait)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		tb.t.Fatalf("viewport: %v", err)
	}
}

// fullScreenshot saves the whole page as PNG to path and returns it.
func (tb *tab) fullScreenshot(path string) []byte {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, pageWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Errorf("screenshot: %v", err)
		return nil
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Errorf("save screenshot: %v", err)
		return nil
	}
	tb.t.Logf("screenshot of the page: %s", path)
	return png
}
