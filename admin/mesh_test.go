package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/testnet"
)

// meshRelay finds a relay of the view.
func meshRelay(m admin.Mesh, id string) (admin.MeshRelay, bool) {
	for _, r := range m.Relays {
		if r.ID == id {
			return r, true
		}
	}
	return admin.MeshRelay{}, false
}

// TestMeshThreeRelays: relay 0's /api/v1/mesh lists the three relays
// with their nodes, three links in both meshes, rates once traffic flows;
// relay 2 stops and is shown unreachable or gone.
func TestMeshThreeRelays(t *testing.T) {
	h := testnet.StartHarness(t, 3, testnet.Full, testnet.WithAdmin())
	r0, r1, r2 := h.Relays[0], h.Relays[1], h.Relays[2]
	a := testnet.Dial(t, r1.URL+"?node_id=node-a", "node-a")
	c := testnet.Dial(t, r2.URL+"?node_id=node-c", "node-c")
	testnet.Dial(t, r2.URL+"?node_id=node-d", "node-d")
	testnet.Reach(t, a, c)
	cl := client(t, r0)
	ctx := context.Background()
	ids := []string{r0.Node.ID().String(), r1.Node.ID().String(), r2.Node.ID().String()}

	var m admin.Mesh
	testnet.Eventually(t, 15*time.Second, "relay 0 to see three relays with 0, 1, 2 nodes, three links and rates", func() bool {
		var err error
		if m, _, err = cl.Mesh(ctx); err != nil {
			t.Fatal(err)
		}
		if len(m.Relays) != 3 || len(m.Links) != 3 || m.Totals.Nodes != 3 {
			return false
		}
		for i, id := range ids {
			r, ok := meshRelay(m, id)
			if !ok || r.State != "ok" || r.LocalNodes != i || r.Rates == nil || r.RelayPeers != 2 {
				return false
			}
		}
		for _, l := range m.Links {
			if l.Ends != 2 || !slices.Equal(l.Mesh, []string{"broadcast", "presence"}) || l.LatencyMS == nil {
				return false
			}
		}
		return true
	})
	if m.Relay != ids[0] || m.Network != "gsio" || !m.Relays[0].Self || m.Relays[0].ID != ids[0] || m.Totals.Reachable != 3 {
		t.Errorf("mesh %+v", m)
	}
	for _, r := range m.Relays[1:] {
		if r.Self || !r.InDirectory || r.RTTMS == nil || r.PresenceAgeSeconds == nil || r.Version != "test" || r.Stale || r.AnsweredAt == nil {
			t.Errorf("relay %+v", r)
		}
	}
	if r, _ := meshRelay(m, ids[1]); r.Counters == nil || r.Counters.MessagesIn == 0 {
		t.Errorf("relay 1 counted no messages: %+v", r.Counters)
	}

	r2.Stop(t)
	testnet.Eventually(t, 15*time.Second, "relay 0 to show relay 2 unreachable or gone", func() bool {
		var err error
		if m, _, err = cl.Mesh(ctx); err != nil {
			t.Fatal(err)
		}
		r, ok := meshRelay(m, ids[2])
		return ok && (r.State == "unreachable" || r.State == "gone") && r.Stale && len(m.Links) == 1 && m.Totals.Reachable == 2
	})
}

// TestMeshTokenAndPage: with a token, /api/v1/mesh needs it; the page's
// files do not (they carry no data) and come with a strict policy.
func TestMeshTokenAndPage(t *testing.T) {
	srv, _ := startAdmin(t, admin.Config{Listen: "127.0.0.1:0", Token: "s3cret"})
	base := srv.URL()
	if code, _ := get(t, base+"/api/v1/mesh", ""); code != http.StatusUnauthorized {
		t.Errorf("mesh without token: %d", code)
	}
	code, body := get(t, base+"/api/v1/mesh", "s3cret")
	var m admin.Mesh
	if code != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil || len(m.Relays) != 1 || !m.Relays[0].Self || m.Relays[0].State != "ok" {
		t.Fatalf("standalone mesh: %d %s", code, body)
	}
	for path, want := range map[string]string{"/ui/": "<svg id=\"graph\"", "/ui/mesh.js": "Authorization", "/ui/mesh.css": ".relay"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64<<10)
		n, _ := ioReadFull(resp, b)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b[:n]), want) {
			t.Errorf("GET %s: %d, body without %q", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: policy %q", path, csp)
		}
	}
	// /ui redirects to /ui/ with its query (the token) kept.
	req, _ := http.NewRequest(http.MethodGet, base+"/ui?token=s3cret", nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "/ui/?token=s3cret" {
		t.Errorf("GET /ui: %d to %q", resp.StatusCode, loc)
	}
	if code, _ := get(t, base+"/ui/other", ""); code != http.StatusUnauthorized {
		t.Errorf("a path under /ui that is not the page's: %d, want 401", code)
	}
}

func ioReadFull(resp *http.Response, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := resp.Body.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
