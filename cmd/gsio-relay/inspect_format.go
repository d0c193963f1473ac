package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/gsio-net/gsio-relay/admin"
)

// Human output of the inspection commands: aligned tables that fit an
// 80-column terminal (short peer IDs, node ids cut at 24 characters);
// --wide prints everything in full.

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// row writes cells as one tab-separated table row.
func tableRow(tw io.Writer, cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }

// shortID shortens a peer ID to its first 4 and last 6 characters
// ("12D3…x7Vu4k"), unless wide.
func shortID(id string, wide bool) string {
	if wide || utf8.RuneCountInString(id) <= 12 {
		return id
	}
	return id[:4] + "…" + id[len(id)-6:]
}

// cut shortens s to n runes, marking the cut with "…", unless wide.
func cutRunes(s string, n int, wide bool) string {
	if wide || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// fmtAge is a compact duration: 45s, 2m13s, 3h02m, 5d04h.
func fmtAge(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// fmtRTT is a compact round-trip time; "-" when unknown.
func fmtRTT(ms *float64) string {
	if ms == nil {
		return "-"
	}
	v := *ms
	switch {
	case v < 1:
		return fmt.Sprintf("%dµs", int(math.Round(v*1000)))
	case v < 10:
		return fmt.Sprintf("%.1fms", v)
	case v < 1000:
		return fmt.Sprintf("%dms", int(math.Round(v)))
	}
	return fmt.Sprintf("%.1fs", v/1000)
}

func fmtScore(s *float64) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *s)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// shortTopic names a gsio topic by its kind (gsio/<net>/broadcast/1 ->
// bcast), unless wide.
func shortTopic(t string, wide bool) string {
	if wide {
		return t
	}
	parts := strings.Split(t, "/")
	if len(parts) == 4 && parts[0] == "gsio" {
		switch parts[2] {
		case "broadcast":
			return "bcast"
		case "presence":
			return "pres"
		}
		return parts[2]
	}
	return t
}

func topicList(ts []string, wide bool) string {
	if len(ts) == 0 {
		return "-"
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = shortTopic(t, wide)
	}
	return strings.Join(out, ",")
}

// idList joins peer IDs, at most max of them unless wide ("+2" for the
// rest).
func idList(ids []string, max int, wide bool) string {
	if len(ids) == 0 {
		return "-"
	}
	var out []string
	for i, id := range ids {
		if !wide && i == max {
			out = append(out, fmt.Sprintf("+%d", len(ids)-max))
			break
		}
		out = append(out, shortID(id, wide))
	}
	return strings.Join(out, " ")
}

func writeInfo(w io.Writer, v admin.Info) error {
	tw := newTable(w)
	kv := func(k, v string) { tableRow(tw, k, v) }
	list := func(k string, vs []string) {
		if len(vs) == 0 {
			kv(k, "-")
		}
		for i, v := range vs {
			if i > 0 {
				k = ""
			}
			kv(k, v)
		}
	}
	if v.Standalone {
		kv("Peer ID", "- (standalone: no federation)")
	} else {
		kv("Peer ID", v.PeerID)
		kv("Network", v.Network)
	}
	kv("Version", v.Version)
	kv("Uptime", fmtAge(v.UptimeSeconds)+" (since "+v.StartedAt.UTC().Format(time.RFC3339)+")")
	if v.Ready {
		kv("Ready", "yes")
	} else {
		kv("Ready", "no: "+v.NotReady)
	}
	kv("WebSocket", v.WebSocket)
	if !v.Standalone {
		list("Listen", v.ListenAddrs)
		list("Announced", v.AnnouncedAddrs)
		kv("Peers", fmt.Sprintf("%d (%d gsio %s)", v.Counts.Peers, v.Counts.Relays, pluralize(v.Counts.Relays, "relay", "relays")))
	}
	kv("Connections", fmt.Sprint(v.Counts.Connections))
	kv("Local nodes", fmt.Sprint(v.Counts.LocalNodes))
	kv("Federation", fmt.Sprintf("%d %s", v.Counts.FederationNodes, pluralize(v.Counts.FederationNodes, "node", "nodes")))
	if !v.Standalone {
		kv("Reservations", fmt.Sprint(v.Counts.Reservations))
	}
	return tw.Flush()
}

func writePeers(w io.Writer, v admin.Peers, wide bool) error {
	if len(v.Peers) == 0 {
		_, err := fmt.Fprintln(w, "No libp2p peers connected.")
		return err
	}
	tw := newTable(w)
	if wide {
		tableRow(tw, "PEER", "RELAY", "BOOTSTRAP", "DIR", "AGE", "RTT", "SCORE", "LIMITED", "MESH", "SUBSCRIBED", "AGENT", "ADDRESSES")
	} else {
		tableRow(tw, "PEER", "RELAY", "AGE", "RTT", "SCORE", "MESH", "ADDRESS")
	}
	for _, p := range v.Peers {
		addr := "-"
		if len(p.Addrs) > 0 {
			addr = p.Addrs[0]
		}
		if wide {
			agent := p.Agent
			if agent == "" {
				agent = "-"
			}
			tableRow(tw, p.ID, yesNo(p.GsioRelay), yesNo(p.Bootstrap), p.Direction, fmtAge(p.AgeSeconds),
				fmtRTT(p.LatencyMS), fmtScore(p.Score), yesNo(p.Limited), topicList(p.Mesh, true),
				topicList(p.Subscribed, true), agent, strings.Join(p.Addrs, " "))
			continue
		}
		addr = compactAddr(addr)
		if len(p.Addrs) > 1 {
			addr += fmt.Sprintf(" +%d", len(p.Addrs)-1)
		}
		tableRow(tw, shortID(p.ID, false), yesNo(p.GsioRelay), fmtAge(p.AgeSeconds), fmtRTT(p.LatencyMS),
			fmtScore(p.Score), topicList(p.Mesh, false), addr)
	}
	return tw.Flush()
}

// compactAddr writes a multiaddr as host:port/transport
// (/ip4/203.0.113.7/udp/4001/quic-v1 -> 203.0.113.7:4001/quic), and a
// relayed one as host:port/circuit. Anything else stays as it is.
func compactAddr(a string) string {
	parts := strings.Split(strings.TrimPrefix(a, "/"), "/")
	if len(parts) < 4 {
		return a
	}
	host, port := parts[1], parts[3]
	switch parts[0] {
	case "ip6":
		host = "[" + host + "]"
	case "ip4", "dns", "dns4", "dns6":
	default:
		return a
	}
	if parts[2] != "tcp" && parts[2] != "udp" {
		return a
	}
	transport := parts[2]
	for _, p := range parts[4:] {
		switch p {
		case "quic-v1", "quic":
			transport = "quic"
		case "ws", "wss", "webtransport", "webrtc-direct":
			transport = p
		case "p2p-circuit":
			return host + ":" + port + "/circuit"
		}
	}
	return host + ":" + port + "/" + transport
}

// nodeWidth is where node ids are cut in the narrow tables.
const nodeWidth = 24

func writeNodes(w io.Writer, v admin.Nodes, wide bool) error {
	fmt.Fprintf(w, "Local nodes (%d, connected to this relay)\n", len(v.Local))
	tw := newTable(w)
	if len(v.Local) > 0 {
		if wide {
			tableRow(tw, "NODE", "AGE", "CONNECTED AT", "IN", "OUT", "QUEUE", "QUEUE BYTES", "REMOTE")
		} else {
			tableRow(tw, "NODE", "AGE", "IN", "OUT", "QUEUE", "REMOTE")
		}
		for _, n := range v.Local {
			if wide {
				tableRow(tw, n.ID, fmtAge(n.AgeSeconds), n.ConnectedAt.UTC().Format(time.RFC3339), fmt.Sprint(n.MessagesIn),
					fmt.Sprint(n.MessagesOut), fmt.Sprint(n.QueueFrames), fmt.Sprint(n.QueueBytes), n.Remote)
				continue
			}
			tableRow(tw, cutRunes(n.ID, nodeWidth, false), fmtAge(n.AgeSeconds), fmt.Sprint(n.MessagesIn),
				fmt.Sprint(n.MessagesOut), fmt.Sprint(n.QueueFrames), n.Remote)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nFederation nodes (%d)\n", len(v.Federation))
	if len(v.Federation) == 0 {
		return nil
	}
	tw = newTable(w)
	tableRow(tw, "NODE", "RELAY")
	for _, n := range v.Federation {
		relays := make([]string, 0, len(n.Relays))
		for _, r := range n.Relays {
			s := shortID(r, wide)
			if r == v.Relay {
				s += " (this relay)"
			}
			relays = append(relays, s)
		}
		where := strings.Join(relays, ", ")
		if len(relays) == 0 && n.Local {
			where = "this relay"
		}
		tableRow(tw, cutRunes(n.ID, nodeWidth, wide), where)
	}
	return tw.Flush()
}

func writeTopics(w io.Writer, v admin.Topics, wide bool) error {
	if len(v.Topics) == 0 {
		_, err := fmt.Fprintln(w, "No topics (a standalone relay joins none).")
		return err
	}
	tw := newTable(w)
	if wide {
		tableRow(tw, "TOPIC", "SUBSCRIBED", "MESH", "MESH PEERS", "SUBSCRIBED PEERS")
	} else {
		tableRow(tw, "TOPIC", "SUBSCRIBED", "MESH", "MESH PEERS")
	}
	for _, t := range v.Topics {
		cells := []string{t.Topic, fmt.Sprint(len(t.Subscribed)), fmt.Sprint(len(t.Mesh)), idList(t.Mesh, 3, wide)}
		if wide {
			cells = append(cells, idList(t.Subscribed, 0, true))
		}
		tableRow(tw, cells...)
	}
	return tw.Flush()
}

func pluralize(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
