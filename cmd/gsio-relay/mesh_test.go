package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/testnet"
)

// TestMeshCommand: two relay processes; `mesh` on the first lists both
// with their nodes (table and --json), from the real wiring of run
// (router counters, version).
func TestMeshCommand(t *testing.T) {
	p1 := start(t, nil, federated(t)...)
	p2 := start(t, nil, federated(t, "--bootstrap", bootAddr(t, p1))...)
	id1, id2 := peerID(t, p1), peerID(t, p2)
	a := testnet.Dial(t, "ws://"+p2.WS+"/ws?node_id=node-a", "node-a")
	b := testnet.Dial(t, "ws://"+p1.WS+"/ws?node_id=node-b", "node-b")
	testnet.Reach(t, a, b)

	var m admin.Mesh
	testnet.Eventually(t, 20*time.Second, "relay 1 to see both relays with one node each and a link", func() bool {
		inspectJSON(t, p1, &m, "mesh")
		if len(m.Relays) != 2 || len(m.Links) != 1 {
			return false
		}
		for _, r := range m.Relays {
			if r.State != "ok" || r.LocalNodes != 1 || r.Counters == nil || r.Counters.MessagesIn == 0 {
				return false
			}
		}
		return true
	})
	if m.Relay != id1 || m.Relays[0].ID != id1 || m.Relays[1].ID != id2 || m.Relays[1].Version != version {
		t.Errorf("mesh %+v", m)
	}
	table := inspect(t, p1, "mesh")
	fits(t, "mesh", table)
	rows := tableRows(table, "RELAY")
	if len(rows) != 2 || rows[0][0] != shortID(id1, false) || rows[0][1] != "self" || rows[0][2] != "1" ||
		rows[1][0] != shortID(id2, false) || rows[1][1] != "ok" || rows[1][2] != "1" || rows[1][3] != "1" {
		t.Errorf("mesh table rows %q:\n%s", rows, table)
	}
	if !strings.HasPrefix(table, "Federation gsio seen from "+shortID(id1, false)+": 2 relays, 2 reachable, 2 nodes") {
		t.Errorf("mesh table head:\n%s", table)
	}
	wide := inspect(t, p1, "mesh", "--wide")
	if !strings.Contains(wide, id2) || !strings.Contains(wide, "Links (1)") || !strings.Contains(wide, "broadcast,presence") {
		t.Errorf("mesh --wide:\n%s", wide)
	}
}

// TestMeshTableFits: fifty relays in every state fit 80 columns, with a
// note for each one that did not answer.
func TestMeshTableFits(t *testing.T) {
	m := admin.Mesh{Relay: "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf", Network: "gsio"}
	states := []string{"ok", "unreachable", "refused", "gone", "partitioned"}
	for i := range 50 {
		rtt := 1234.5
		r := admin.MeshRelay{
			ID: fmt.Sprintf("12D3KooW%044d", i), Self: i == 0, State: states[i%5], LocalNodes: 10000 + i, RelayPeers: 49,
			UptimeSeconds: 400000, RTTMS: &rtt, InDirectory: i%5 == 1, DirectoryNodes: 12345,
			Rates: &node.Rates{MessagesIn: 123456.7, MessagesOut: 9876543, Errors: 99999},
		}
		if r.State != "ok" {
			r.Error = "dial: " + strings.Repeat("connection refused ", 8)
		}
		m.Relays = append(m.Relays, r)
	}
	var out bytes.Buffer
	if err := writeMesh(&out, m, false); err != nil {
		t.Fatal(err)
	}
	fits(t, "mesh", out.String())
	if rows := tableRows(out.String(), "RELAY"); len(rows) != 50 {
		t.Errorf("%d rows", len(rows))
	}
	if k := strings.Count(out.String(), "connection refused"); k < 40 {
		t.Errorf("%d notes:\n%s", k, out.String())
	}
}
