package main

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gsio-net/gsio-relay/admin"
)

// mesh prints the whole federation as one relay sees it (GET
// /api/v1/mesh): one row per relay, then why the relays that did not
// answer did not. Narrow output fits 80 columns; --wide adds full peer
// IDs, versions, peer counts and the links between relays.

func meshCommand() *cli.Command {
	return inspectCommand("mesh", "show the whole federation as a running relay sees it: relays, nodes, links, message rates",
		(*admin.Client).Mesh, writeMesh)
}

// fmtRate is a compact rate per second; "-" when unknown.
func fmtRate(v float64, known bool) string {
	switch {
	case !known:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.1f", v)
	case v < 1e6:
		return fmt.Sprint(int64(math.Round(v)))
	}
	return fmt.Sprintf("%.1fM", v/1e6)
}

func writeMesh(w io.Writer, v admin.Mesh, wide bool) error {
	t := v.Totals
	from := "this standalone relay"
	if v.Relay != "" {
		from = shortID(v.Relay, wide)
	}
	network := ""
	if v.Network != "" {
		network = " " + v.Network
	}
	fmt.Fprintf(w, "Federation%s seen from %s: %d %s, %d reachable, %d %s\n\n", network, from,
		t.Relays, pluralize(t.Relays, "relay", "relays"), t.Reachable, t.Nodes, pluralize(t.Nodes, "node", "nodes"))
	tw := newTable(w)
	head := []string{"RELAY", "STATE", "NODES", "LINKS", "IN/S", "OUT/S", "ERR/S", "RTT", "UPTIME"}
	if wide {
		head = append(head, "PEERS", "VERSION")
	}
	tableRow(tw, head...)
	var notes []string
	for _, r := range v.Relays {
		state := r.State
		if r.Self {
			state = "self"
		}
		ok := r.State == "ok"
		nodes, links, uptime := "-", "-", "-"
		switch {
		case ok:
			nodes, links, uptime = fmt.Sprint(r.LocalNodes), fmt.Sprint(r.RelayPeers), fmtAge(r.UptimeSeconds)
		case r.InDirectory:
			nodes = fmt.Sprintf("(%d)", r.DirectoryNodes) // from presence
		}
		var in, out, errs string
		if ok && r.Rates != nil {
			in, out, errs = fmtRate(r.Rates.MessagesIn, true), fmtRate(r.Rates.MessagesOut, true), fmtRate(r.Rates.Errors, true)
		} else {
			in, out, errs = "-", "-", "-"
		}
		cells := []string{shortID(r.ID, wide), state, nodes, links, in, out, errs, fmtRTT(r.RTTMS), uptime}
		if wide {
			peers, version := "-", r.Version
			if ok {
				peers = fmt.Sprint(r.Peers)
			}
			if version == "" {
				version = "-"
			}
			cells = append(cells, peers, version)
		}
		tableRow(tw, cells...)
		if r.Error != "" {
			notes = append(notes, cutRunes(shortID(r.ID, wide)+" "+r.State+": "+r.Error, 80, wide))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	if wide && len(v.Links) > 0 {
		fmt.Fprintf(w, "\nLinks (%d)\n", len(v.Links))
		tw = newTable(w)
		tableRow(tw, "A", "B", "MESH", "RTT", "ENDS", "LIMITED")
		for _, l := range v.Links {
			mesh := "-"
			if len(l.Mesh) > 0 {
				mesh = strings.Join(l.Mesh, ",")
			}
			tableRow(tw, l.A, l.B, mesh, fmtRTT(l.LatencyMS), fmt.Sprint(l.Ends), yesNo(l.Limited))
		}
		return tw.Flush()
	}
	return nil
}
