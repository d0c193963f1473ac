package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gsio-net/gsio-relay/client"
)

// The history scenarios (SPEC 7) run on gsio-relay only, through the
// client package (what a node author would use):
//
//   - R1 resume: a publisher on relay 1 broadcasts at resumeRate; a node
//     on relay 2 hears it live, goes away for resumeOffline, and comes
//     back on relay 3 with since_ms = the ts it last heard less 2 s. The
//     time from that reconnection until it has every broadcast sent
//     before it, and what it never got.
//   - L1 large direct: a 16 MiB direct message from a node on relay 1 to
//     a node on relay 2, three times: the time each took, and the peak
//     RSS (VmHWM) of both relays against their RSS before.

// Resume scenario settings (flags --resume-rate, --resume-offline).
const (
	resumeLive   = 3 * time.Second // heard live before going away
	resumeAfter  = 3 * time.Second // the publisher goes on after the reconnection
	resumeMargin = 2 * time.Second // since_ms = last ts heard - margin
	resumeBound  = 2 * time.Minute // waiting for everything never takes longer
)

func wsURL(s *server) string { return "ws://" + s.ws + s.wsPath }

func benchClient(ctx context.Context, id string, s *server, since time.Time) (*client.Client, error) {
	cfg := client.DefaultConfig()
	cfg.URLs, cfg.NodeID, cfg.Buffer = []string{wsURL(s)}, id, 65536
	if !since.IsZero() {
		cfg.Resume, cfg.Since = true, since
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return client.Dial(dctx, cfg)
}

// runResume is R1.
func runResume(ctx context.Context, cfg *config, t *target) (res result) {
	res = result{Scenario: "R1", Target: t.kind, Load: loadAvg(),
		Detail: fmt.Sprintf("node offline %v while %.0f msg/s are broadcast, back on another relay with since_ms", cfg.resumeOffline, cfg.resumeRate)}
	fail := func(err error) result { res.Err = err.Error(); return res }
	if len(t.servers) < 3 {
		return fail(fmt.Errorf("R1 needs 3 relays"))
	}
	pub, err := benchClient(ctx, "r1-publisher", t.servers[0], time.Time{})
	if err != nil {
		return fail(fmt.Errorf("publisher: %w", err))
	}
	defer pub.Close()
	node, err := benchClient(ctx, "r1-node", t.servers[1], time.Time{})
	if err != nil {
		return fail(fmt.Errorf("node: %w", err))
	}

	var mu sync.Mutex
	got := map[string]bool{} // message ids the node has, over both connections
	var lastTS int64
	var want map[string]bool // ids waited for (awaitAll), not received yet
	var wantDone chan struct{}
	read := func(c *client.Client) {
		for m := range c.Messages() {
			if m.Sender != "r1-publisher" {
				continue
			}
			mu.Lock()
			got[m.ID] = true
			lastTS = max(lastTS, m.TS)
			if want[m.ID] {
				delete(want, m.ID)
				if len(want) == 0 {
					close(wantDone)
				}
			}
			mu.Unlock()
		}
	}
	// awaitAll waits until the node has every id of ids, at most until
	// deadline; it reports how many it has.
	awaitAll := func(ids []string, deadline time.Time) int {
		mu.Lock()
		want, wantDone = map[string]bool{}, make(chan struct{})
		for _, id := range ids {
			if !got[id] {
				want[id] = true
			}
		}
		if len(want) == 0 {
			close(wantDone)
		}
		done := wantDone
		mu.Unlock()
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		}
		mu.Lock()
		defer mu.Unlock()
		return len(ids) - len(want)
	}
	var readers sync.WaitGroup
	readers.Go(func() { read(node) })

	// The publisher: resumeRate msg/s in ticks of 10 ms until stopped.
	var sentMu sync.Mutex
	var sent []string
	pctx, stopPub := context.WithCancel(ctx)
	var pubDone sync.WaitGroup
	pubDone.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		start, n := time.Now(), 0
		payload := json.RawMessage(`{"entry":"` + strings.Repeat("x", 200) + `"}`)
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
			}
			for float64(n) < cfg.resumeRate*time.Since(start).Seconds() {
				id, err := pub.Broadcast(pctx, "EntryAnnounce", payload)
				if err != nil {
					return
				}
				sentMu.Lock()
				sent = append(sent, id)
				sentMu.Unlock()
				n++
			}
		}
	})
	stop := func() { stopPub(); pubDone.Wait() }
	defer stop()

	if !sleepCtx(ctx, resumeLive) {
		return fail(ctx.Err())
	}
	node.Close()
	readers.Wait()
	mu.Lock()
	heardLive, since := len(got), time.UnixMilli(lastTS).Add(-resumeMargin)
	mu.Unlock()
	if heardLive == 0 {
		return fail(fmt.Errorf("the node heard nothing live"))
	}
	if !sleepCtx(ctx, cfg.resumeOffline) {
		return fail(ctx.Err())
	}
	back := time.Now()
	sentMu.Lock()
	before := slices.Clone(sent) // what it must get
	sentMu.Unlock()
	node2, err := benchClient(ctx, "r1-node", t.servers[2], since)
	if err != nil {
		return fail(fmt.Errorf("node back: %w", err))
	}
	defer node2.Close()
	readers.Go(func() { read(node2) })
	var caughtUp time.Duration
	deadline := time.Now().Add(resumeBound)
	haveBefore := awaitAll(before, deadline)
	if haveBefore == len(before) {
		caughtUp = time.Since(back)
	}
	if !sleepCtx(ctx, resumeAfter) {
		return fail(ctx.Err())
	}
	stop()
	sentMu.Lock()
	all := slices.Clone(sent)
	sentMu.Unlock()
	res.Sent, res.Expected = int64(len(all)), int64(len(all))
	res.Received = int64(awaitAll(all, deadline))
	st := node2.Stats()
	res.Lost = res.Expected - res.Received
	res.Max = ms(caughtUp)
	res.Seconds = time.Since(back).Seconds()
	if stats, err := t.stats(); err == nil {
		for _, s := range stats {
			res.ServerRSS = max(res.ServerRSS, s.rssMax)
		}
	}
	missed := len(before) - heardLive
	res.note("%d broadcasts sent before the reconnection, %d of them missed while away; everything sent before it was there %.0f ms after the reconnection (max ms column; 0 = never); the client dropped %d duplicates (the 2 s margin and the live overlap)",
		len(before), missed, ms(caughtUp), st.Duplicates)
	if caughtUp == 0 {
		res.Err = fmt.Sprintf("the node never had everything sent before its reconnection (%d of %d)", haveBefore, len(before))
	}
	return res
}

// runLargeDirect is L1.
func runLargeDirect(ctx context.Context, cfg *config, t *target) (res result) {
	const size = 16<<20 - 4096 // payload bytes: the frame stays under the 16 MiB default
	res = result{Scenario: "L1", Target: t.kind, Load: loadAvg(),
		Detail: fmt.Sprintf("a %d MiB direct message across 2 relays, 3 times", size>>20)}
	fail := func(err error) result { res.Err = err.Error(); return res }
	if len(t.servers) < 2 {
		return fail(fmt.Errorf("L1 needs 2 relays"))
	}
	before, err := t.stats()
	if err != nil {
		return fail(err)
	}
	snd, err := benchClient(ctx, "l1-sender", t.servers[0], time.Time{})
	if err != nil {
		return fail(fmt.Errorf("sender: %w", err))
	}
	defer snd.Close()
	rcv, err := benchClient(ctx, "l1-recipient", t.servers[1], time.Time{})
	if err != nil {
		return fail(fmt.Errorf("recipient: %w", err))
	}
	defer rcv.Close()
	// The sender's relay must know where the recipient is: a small direct
	// message first, retried until it arrives.
	if err := reach(ctx, snd, rcv); err != nil {
		return fail(err)
	}
	payload := make([]byte, 0, size+2)
	payload = append(payload, '"')
	payload = append(payload, strings.Repeat("l", size)...)
	payload = append(payload, '"')
	var took []time.Duration
	for i := range 3 {
		start := time.Now()
		id, err := snd.SendTo(ctx, "l1-recipient", "LedgerSyncResponse", payload)
		if err != nil {
			return fail(fmt.Errorf("send %d: %w", i, err))
		}
		res.Sent++
		res.Expected++
		wait := time.NewTimer(time.Minute)
	recv:
		for {
			select {
			case m, ok := <-rcv.Messages():
				if !ok {
					wait.Stop()
					return fail(fmt.Errorf("recipient stopped: %v", rcv.Err()))
				}
				if m.ID == id {
					if len(m.Payload) != len(payload) {
						wait.Stop()
						return fail(fmt.Errorf("payload of %d bytes, want %d", len(m.Payload), len(payload)))
					}
					took = append(took, time.Since(start))
					res.Received++
					break recv
				}
			case <-wait.C:
				return fail(fmt.Errorf("message %d not received within a minute", i))
			}
		}
		wait.Stop()
	}
	after, err := t.stats()
	if err != nil {
		return fail(err)
	}
	res.Lost = res.Expected - res.Received
	slices.Sort(took)
	res.P50, res.Max = ms(took[len(took)/2]), ms(took[len(took)-1])
	var rss []string
	for i := range after {
		res.ServerRSS = max(res.ServerRSS, after[i].rssMax)
		rss = append(rss, fmt.Sprintf("relay%d %.0f -> peak %.0f MiB", i+1, mib(before[i].rss), mib(after[i].rssMax)))
	}
	res.note("transfer p50/max %.0f/%.0f ms; RSS before -> peak: %s", res.P50, res.Max, strings.Join(rss, ", "))
	return res
}

// reach sends small direct messages from a to b until one arrives.
func reach(ctx context.Context, a, b *client.Client) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		id, err := a.SendTo(ctx, b.NodeID(), "Ping", json.RawMessage(`{}`))
		if err != nil {
			return err
		}
		t := time.NewTimer(time.Second)
	wait:
		for {
			select {
			case m := <-b.Messages():
				if m.ID == id {
					t.Stop()
					return nil
				}
			case <-a.Messages(): // recipient_unknown while presence spreads
			case <-t.C:
				break wait
			}
		}
	}
	return fmt.Errorf("%s never reached %s", a.NodeID(), b.NodeID())
}

// sleepCtx sleeps d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
