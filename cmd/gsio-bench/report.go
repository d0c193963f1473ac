package main

import (
	"fmt"
	"strings"
)

const lineFmt = "%-9s %-11s %9s %10s %10s %6s %5s %9s %7s %7s %7s %8s %8s %8s %8s"

func tableHeader() string {
	return fmt.Sprintf(lineFmt, "scenario", "target", "sent", "expected", "received", "lost", "dup",
		"deliv/s", "p50 ms", "p99 ms", "max ms", "srv CPU", "µs/deliv", "srv RSS", "gen CPU")
}

// line is the one-line progress report of a result.
func (r *result) line() string {
	if r.Err != "" {
		return fmt.Sprintf("%-9s %-11s FAILED: %s", r.Scenario, r.Target, r.Err)
	}
	if r.S5 != nil {
		return fmt.Sprintf(lineFmt, r.Scenario, r.Target, count(r.Sent), count(r.Expected), count(r.Received),
			count(r.Lost), count(r.Dup), rate(r.Rate), f2(r.P50), f2(r.P99), f2(r.Max),
			fmt.Sprintf("%.0f%%", r.ServerCPU), fmt.Sprintf("%.2f", r.CPUPerMsg), fmt.Sprintf("%.0fMiB", mib(r.ServerRSS)),
			fmt.Sprintf("%.0f%%", r.GenCPU)) + "\n" + r.S5.line()
	}
	if r.Conns > 0 {
		s := fmt.Sprintf("%-9s %-11s %d idle clients: %.1f KiB RSS per connection, server RSS %.0f MiB",
			r.Scenario, r.Target, r.Conns, r.RSSPerConn/1024, mib(r.ServerRSS))
		if r.HeapPerConn > 0 {
			s += fmt.Sprintf(" (Go heap %.1f KiB, stacks %.1f KiB per connection)", r.HeapPerConn/1024, r.StackPerConn/1024)
		}
		return s
	}
	return fmt.Sprintf(lineFmt, r.Scenario, r.Target, count(r.Sent), count(r.Expected), count(r.Received),
		count(r.Lost), count(r.Dup), rate(r.Rate), f2(r.P50), f2(r.P99), f2(r.Max),
		fmt.Sprintf("%.0f%%", r.ServerCPU), fmt.Sprintf("%.2f", r.CPUPerMsg), fmt.Sprintf("%.0fMiB", mib(r.ServerRSS)),
		fmt.Sprintf("%.0f%%", r.GenCPU))
}

func count(n int64) string { return fmt.Sprintf("%d", n) }

func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func f2(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// report renders the result tables, the comparison with nats-server, the
// targets and the notes, as Markdown.
func report(e *env, results []result) string {
	var b strings.Builder
	find := func(sc, target string) *result {
		for i := range results {
			if results[i].Scenario == sc && results[i].Target == target && results[i].Err == "" {
				return &results[i]
			}
		}
		return nil
	}

	b.WriteString("## Results\n\n")
	b.WriteString("| scenario | target | sent | expected | received | lost | dup | delivered/s | p50 ms | p99 ms | max ms | server CPU | server CPU µs/delivery | server RSS | generator CPU |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		if r.Err != "" {
			fmt.Fprintf(&b, "| %s | %s | failed: %s |||||||||||\n", r.Scenario, r.Target, oneLine(r.Err))
			continue
		}
		if r.Conns > 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %s | %s | %s | %s | %.0f%% | %.2f | %.0f MiB | %.0f%% |\n",
			r.Scenario, r.Target, r.Sent, r.Expected, r.Received, r.Lost, r.Dup, rate(r.Rate),
			f2(r.P50), f2(r.P99), f2(r.Max), r.ServerCPU, r.CPUPerMsg, mib(r.ServerRSS), r.GenCPU)
	}
	var idle []result
	for _, r := range results {
		if r.Conns > 0 && r.Err == "" {
			idle = append(idle, r)
		}
	}
	if len(idle) > 0 {
		b.WriteString("\n| scenario | target | idle clients | RSS per connection | Go heap per connection | goroutine stacks per connection | server RSS | server CPU while connecting |\n")
		b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|\n")
		for _, r := range idle {
			heap, stack := "-", "-"
			if r.HeapPerConn > 0 {
				heap = fmt.Sprintf("%.1f KiB", r.HeapPerConn/1024)
				stack = fmt.Sprintf("%.1f KiB", r.StackPerConn/1024)
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %.1f KiB | %s | %s | %.0f MiB | %.0f%% |\n",
				r.Scenario, r.Target, r.Conns, r.RSSPerConn/1024, heap, stack, mib(r.ServerRSS), r.ServerCPU)
		}
	}

	b.WriteString(s5Table(results))

	b.WriteString("\n## gsio-relay / nats-server and the targets\n\n")
	b.WriteString("| measure | gsio-relay | nats-server | ratio | target | met |\n|---|--:|--:|--:|---|---|\n")
	type row struct {
		measure, sc string
		get         func(*result) float64
		unit        string
		target      string
		ok          func(g, n *result) (bool, bool) // met, known
	}
	ratioAtLeast := func(get func(*result) float64, x float64) func(g, n *result) (bool, bool) {
		return func(g, n *result) (bool, bool) {
			if g == nil || n == nil || get(n) == 0 {
				return false, false
			}
			return get(g)/get(n) >= x, true
		}
	}
	atMost := func(get func(*result) float64, x float64) func(g, n *result) (bool, bool) {
		return func(g, _ *result) (bool, bool) {
			if g == nil {
				return false, false
			}
			return get(g) <= x, true
		}
	}
	deliv := func(r *result) float64 { return r.Rate }
	p99 := func(r *result) float64 { return r.P99 }
	p999 := func(r *result) float64 { return r.P999 }
	ratioAtMost := func(get func(*result) float64, x float64) func(g, n *result) (bool, bool) {
		return func(g, n *result) (bool, bool) {
			if g == nil || n == nil || get(n) == 0 {
				return false, false
			}
			return get(g)/get(n) <= x, true
		}
	}
	perConn := func(r *result) float64 { return r.RSSPerConn / 1024 }
	cpuPer := func(r *result) float64 { return r.CPUPerMsg }
	// S2 runs three servers of either kind: a third of the sum is one
	// server's (relay's, cluster member's) RSS.
	rssPer3 := func(r *result) float64 { return mib(r.ServerRSS) / 3 }
	rows := []row{
		{"S1 delivered msg/s", "S1", deliv, "", ">= 1.2x nats-server", ratioAtLeast(deliv, 1.2)},
		{"S1-paced p99", "S1-paced", p99, " ms", "<= 5 ms", atMost(p99, 5)},
		{"S1 server CPU per delivery", "S1", cpuPer, " µs", "(none; lower is better)", nil},
		{"S2 delivered msg/s", "S2", deliv, "", ">= 1.2x nats-server", ratioAtLeast(deliv, 1.2)},
		{"S2 server CPU per delivery", "S2", cpuPer, " µs", "(none; lower is better)", nil},
		{"S2 RSS per server (of 3)", "S2", rssPer3, " MiB", "<= 2x nats-server", ratioAtMost(rssPer3, 2)},
		{"S2-paced p99", "S2-paced", p99, " ms", "(none)", nil},
		{"S3 direct p99", "S3", p99, " ms", "<= 2x nats-server", ratioAtMost(p99, 2)},
		{"S3 direct p99.9", "S3", p999, " ms", "<= 3x nats-server", ratioAtMost(p999, 3)},
		{"S4 RSS per idle connection", "S4", perConn, " KiB", "<= 16 KiB", atMost(perConn, 16)},
	}
	for _, rw := range rows {
		g, n := find(rw.sc, kindRelay), find(rw.sc, kindNATS)
		if g == nil && n == nil {
			continue
		}
		val := func(r *result) string {
			if r == nil {
				return "-"
			}
			v := rw.get(r)
			if rw.unit == "" {
				return rate(v)
			}
			return f2(v) + rw.unit
		}
		ratio := "-"
		if g != nil && n != nil && rw.get(n) != 0 {
			ratio = fmt.Sprintf("%.2f", rw.get(g)/rw.get(n))
		}
		met := "-"
		if rw.ok != nil {
			if ok, known := rw.ok(g, n); known {
				met = map[bool]string{true: "yes", false: "**no**"}[ok]
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", rw.measure, val(g), val(n), ratio, rw.target, met)
	}
	// Loss and duplicates: every run is windowed (below saturation).
	var bad []string
	runs := 0
	for _, r := range results {
		if r.Target != kindRelay || r.Conns > 0 || r.Err != "" {
			continue
		}
		runs++
		if r.Lost != 0 || r.Dup != 0 {
			bad = append(bad, fmt.Sprintf("%s: %d lost, %d duplicated", r.Scenario, r.Lost, r.Dup))
		}
	}
	if runs > 0 {
		met := "yes"
		val := "0 / 0"
		if len(bad) > 0 {
			met, val = "**no**", strings.Join(bad, "; ")
		}
		fmt.Fprintf(&b, "| lost / duplicated (all gsio-relay runs) | %s | | | 0 / 0 | %s |\n", val, met)
	}

	if h := find("S1", kindHub); h != nil {
		fmt.Fprintf(&b, "\nGenerator ceiling: %s deliveries/s (p99 %s ms) on S1 against the reference hub (frames forwarded unparsed, coalesced writes), with the hub using %.0f%% CPU and the generator %.0f%%.",
			rate(h.Rate), f2(h.P99), h.ServerCPU, h.GenCPU)
		if g := find("S1", kindRelay); g != nil && h.Rate > 0 {
			fmt.Fprintf(&b, " gsio-relay reached %.0f%% of it", 100*g.Rate/h.Rate)
			if n := find("S1", kindNATS); n != nil {
				fmt.Fprintf(&b, ", nats-server %.0f%%", 100*n.Rate/h.Rate)
			}
			b.WriteString(".")
		}
		if hp := find("S1-paced", kindHub); hp != nil {
			fmt.Fprintf(&b, " Paced at the same rate as S1-paced, the hub's p99 is %s ms: the latency floor of generator and machine.", f2(hp.P99))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nLoad average: %s at start, %s at end (2 cores shared with the servers).\n", e.LoadStart, e.loadEnd)

	var notes []string
	for _, r := range results {
		for _, n := range r.Notes {
			notes = append(notes, fmt.Sprintf("- %s %s: %s", r.Scenario, r.Target, oneLine(n)))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes:\n\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
