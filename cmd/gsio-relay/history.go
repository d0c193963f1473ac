package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gsio-net/gsio-relay/admin"
)

// historyCommand prints what a running relay's history store holds
// (/api/v1/history): totals, the window since --since with its count per
// message type, and whether the window is complete (its gaps).
func historyCommand() *cli.Command {
	return &cli.Command{
		Name:  "history",
		Usage: "show what a running relay's history holds: count per message type, oldest, newest, size, gaps",
		Flags: append(append(adminClientFlags(), outputFlags()...),
			&cli.StringFlag{Name: "since", Usage: "report on the broadcasts from `WHEN` on: a duration back from now (10m, 2h), unix ms, or RFC 3339 (default: all)"},
		),
		Action: func(c *cli.Context) error {
			since, err := parseSince(c.String("since"), time.Now())
			if err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			cl, err := adminClient(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			v, raw, err := cl.History(c.Context, since)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				_, err = c.App.Writer.Write(raw)
				return err
			}
			return writeHistory(c.App.Writer, v, time.Now(), c.Bool("wide"))
		},
	}
}

// parseSince reads a point in time as unix ms: "" is 0 (everything); a
// Go duration is that long before now; an integer is unix ms; else RFC
// 3339.
func parseSince(s string, now time.Time) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%q: unix ms must be >= 0", s)
		}
		return n, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return 0, fmt.Errorf("%q: a duration back from now must be positive", s)
		}
		return max(now.Add(-d).UnixMilli(), 0), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return max(t.UnixMilli(), 0), nil
	}
	return 0, errors.New("want a duration back from now (10m, 2h), unix ms, or an RFC 3339 time, got " + strconv.Quote(s))
}

// fmtMS is a unix ms time in UTC, to the millisecond.
func fmtMS(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// fmtWhen is fmtMS and how long before now ("-" for 0).
func fmtWhen(ms int64, now time.Time) string {
	if ms == 0 {
		return "-"
	}
	return fmtMS(ms) + " (" + fmtAge(now.Sub(time.UnixMilli(ms)).Seconds()) + " ago)"
}

// fmtBytes is a size in B, KiB, MiB or GiB.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 2 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, [...]string{"KiB", "MiB", "GiB"}[i])
}

// maxGapRows is how many gaps the narrow table lists.
const maxGapRows = 10

func writeHistory(w io.Writer, v admin.History, now time.Time, wide bool) error {
	if !v.Enabled {
		_, err := fmt.Fprintln(w, "This relay keeps no history (it runs with --history=false).")
		return err
	}
	win := v.Window
	tw := newTable(w)
	kv := func(k, v string) { tableRow(tw, k, v) }
	kv("Stored", broadcasts(v.Count)+", "+fmtBytes(v.Bytes))
	kv("Oldest", fmtWhen(v.OldestMS, now))
	kv("Newest", fmtWhen(v.NewestMS, now))
	kv("Since start", fmt.Sprintf("%d written, %d dropped, %d duplicates", v.Writes, v.Dropped, v.Duplicates))
	switch {
	case v.Failed:
		kv("Status", "FAILED: dropping every broadcast until the relay restarts")
	case v.LowDisk:
		kv("Status", "disk low: dropping broadcasts until space is freed")
	}
	from := "the beginning"
	if win.SinceMS > 0 {
		from = fmtWhen(win.SinceMS, now)
	}
	kv("Window", "since "+from)
	kv("", broadcasts(win.Count)+", "+fmtBytes(win.Bytes))
	switch {
	case win.Complete:
		kv("Complete", "yes")
	case len(win.Gaps) == 0:
		kv("Complete", "no: retention has dropped broadcasts of the window")
	default:
		kv("Complete", fmt.Sprintf("no: %d %s", len(win.Gaps), pluralize(len(win.Gaps), "gap", "gaps")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(win.Types) > 0 || win.OtherTypes > 0 {
		fmt.Fprintln(w)
		if win.Partial {
			fmt.Fprintf(w, "Types of the newest %d broadcasts (from %s)\n", win.Counted, fmtMS(win.CountedFromMS))
		}
		types := make([]string, 0, len(win.Types))
		for t := range win.Types {
			types = append(types, t)
		}
		slices.SortFunc(types, func(a, b string) int {
			if win.Types[a] != win.Types[b] {
				return int(win.Types[b] - win.Types[a])
			}
			return strings.Compare(a, b)
		})
		tw = newTable(w)
		tableRow(tw, "TYPE", "COUNT")
		for _, t := range types {
			tableRow(tw, cutRunes(t, 40, wide), strconv.FormatInt(win.Types[t], 10))
		}
		if win.OtherTypes > 0 {
			tableRow(tw, "(other)", strconv.FormatInt(win.OtherTypes, 10))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(win.Gaps) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		tableRow(tw, "GAP FROM", "TO", "LENGTH")
		for i, g := range win.Gaps {
			if !wide && i == maxGapRows {
				tableRow(tw, fmt.Sprintf("+%d more (--wide)", len(win.Gaps)-maxGapRows), "", "")
				break
			}
			if g.FromMS == 0 {
				tableRow(tw, "-", fmtMS(g.ToMS), "before the store existed")
				continue
			}
			tableRow(tw, fmtMS(g.FromMS), fmtMS(g.ToMS), fmtGapLen(g.ToMS-g.FromMS))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// broadcasts is "1 broadcast", "2 broadcasts".
func broadcasts(n int64) string {
	if n == 1 {
		return "1 broadcast"
	}
	return strconv.FormatInt(n, 10) + " broadcasts"
}

// fmtGapLen is a gap's length: milliseconds below a second, else fmtAge.
func fmtGapLen(ms int64) string {
	if ms < 1000 {
		return fmt.Sprintf("%dms", ms)
	}
	return fmtAge(float64(ms) / 1000)
}
