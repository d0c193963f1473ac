package adversary_test

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	dto "github.com/prometheus/client_model/go"

	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/syncproto"
	"github.com/gsio-net/gsio-relay/testnet"
	"github.com/gsio-net/gsio-relay/testnet/adversary"
)

// syncErrors reads relay r's gsio_node_sync_errors_total{reason}.
func syncErrors(t *testing.T, r *testnet.Relay, reason string) float64 {
	t.Helper()
	mfs, err := r.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gsio_node_sync_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "reason") == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// evilRelay is a hostile peer connected to r that announced itself as a
// relay holding "evil-node", so that r takes it for a relay peer in good
// standing: r then runs sessions with it and answers its own.
func evilRelay(t *testing.T, r *testnet.Relay, respond network.StreamHandler) *adversary.Peer {
	t.Helper()
	p, err := adversary.New(adversary.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if respond != nil {
		p.SetStreamHandler(node.SyncProtocol, respond)
	}
	ai := peer.AddrInfo{ID: r.Node.ID(), Addrs: r.Node.AnnouncedAddrs()}
	if err := p.Connect(context.Background(), ai); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitGossip(context.Background(), r.Node.ID()); err != nil {
		t.Fatal(err)
	}
	if err := adversary.AnnounceAddrs(context.Background(), p, r.Node.ID(), "gsio", p.Key, nil, []string{"evil-node"}); err != nil {
		t.Fatal(err)
	}
	return p
}

// evilSession opens a sync stream from p to r and says Hello, retrying
// until r takes p for a relay; it returns the stream after r's Hello.
func evilSession(t *testing.T, p *adversary.Peer, r *testnet.Relay) (network.Stream, *bufio.Reader, syncproto.Window) {
	t.Helper()
	now := time.Now()
	w := syncproto.Window{From: now.Add(-time.Hour).UnixMilli(), To: now.Add(-time.Second).UnixMilli()}
	hello := syncproto.EncodeHello(syncproto.Hello{Version: 1, Window: w, Count: 1, FP: [16]byte{7}})
	var (
		st  network.Stream
		br  *bufio.Reader
		got syncproto.Window
	)
	testnet.Eventually(t, 10*time.Second, "the relay to answer the hostile peer's Hello", func() bool {
		s, err := p.NewStream(context.Background(), r.Node.ID(), node.SyncProtocol)
		if err != nil {
			return false
		}
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.Write(syncproto.AppendFrame(nil, syncproto.KindHello, hello)); err != nil {
			_ = s.Reset()
			return false
		}
		b := bufio.NewReader(s)
		kind, body, _, err := syncproto.ReadFrame(b, 1<<20)
		if err != nil || kind != syncproto.KindHello {
			_ = s.Reset()
			return false
		}
		h, err := syncproto.DecodeHello(body)
		if err != nil {
			t.Fatal(err)
		}
		st, br, got = s, b, h.Window
		return true
	})
	return st, br, got
}

// ended waits for the relay to end the stream (an Error frame, then a
// reset), and returns the Error's reason ("" when none came).
func ended(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for {
		kind, body, _, err := syncproto.ReadFrame(br, 8<<20)
		if err != nil {
			t.Logf("stream ended: %v", err)
			return ""
		}
		if kind == syncproto.KindError {
			return string(body)
		}
	}
}

func frame(ts int64, sender, recipient, typ, id string) []byte {
	env, err := message.Parse(message.Build(typ, id, sender, recipient, []byte(`{"evil":true}`)))
	if err != nil {
		panic(err)
	}
	env.SetTS(ts)
	return env.Raw
}

// TestAdversarySync: hostile peers speaking /gsio/sync/1.0.0 to a relay,
// as initiators (forged and invalid pushes, an oversized frame,
// overlapping ranges, endless rounds) and as responders (endless splits,
// a huge answer, a message that is not the one asked for). Each session
// ends with an error at the relay, the relay stores none of their
// messages, and honest reconciliation between the relays still works.
func TestAdversarySync(t *testing.T) {
	h := testnet.StartHarness(t, 2, testnet.Full, testnet.WithAdmin(), testnet.WithNodeConfig(func(_ int, c *node.Config) {
		c.Sync.Interval = 500 * time.Millisecond
		c.Sync.Limits.MaxRounds = 64
	}))
	r := h.Relays[0]

	t.Run("invalid pushes", func(t *testing.T) {
		for _, f := range []struct{ name, reason string }{
			{"reserved sender", "invalid_message"},
			{"direct message", "invalid_message"},
			{"outside the window", "invalid_message"},
			{"batch", "invalid_message"},
		} {
			p := evilRelay(t, r, nil) // a new one each time: the last is cut off
			st, br, w := evilSession(t, p, r)
			ts := w.From + 10
			var data []byte
			switch f.name {
			case "reserved sender":
				data = frame(ts, "relay", "", "EntryAnnounce", "evil-reserved")
			case "direct message":
				data = frame(ts, "evil-node", "node-x", "EntryAnnounce", "evil-direct")
			case "outside the window":
				data = frame(w.To+5, "evil-node", "", "EntryAnnounce", "evil-late")
			case "batch":
				data = message.AppendBatch(nil, [][]byte{frame(ts, "evil-node", "", "EntryAnnounce", "evil-batch")})
			}
			if _, err := st.Write(syncproto.AppendFrame(nil, syncproto.KindPush, syncproto.EncodeFrames([][]byte{data}))); err != nil {
				t.Fatal(err)
			}
			if got := ended(t, br); got != f.reason {
				t.Fatalf("%s: the relay ended with %q, want %q", f.name, got, f.reason)
			}
			_ = st.Reset()
		}
	})

	t.Run("oversized frame", func(t *testing.T) {
		p := evilRelay(t, r, nil)
		st, br, _ := evilSession(t, p, r)
		// A length of 1 GiB, then a trickle.
		if _, err := st.Write([]byte{0x80, 0x80, 0x80, 0x80, 0x04, syncproto.KindPush}); err != nil {
			t.Fatal(err)
		}
		if got := ended(t, br); got != syncproto.ReasonTooLarge {
			t.Fatalf("ended with %q", got)
		}
	})

	t.Run("overlapping ranges", func(t *testing.T) {
		p := evilRelay(t, r, nil)
		st, br, w := evilSession(t, p, r)
		var rs []syncproto.Range
		for range 100 {
			rs = append(rs, syncproto.Range{Window: w}) // the whole window, 100 times
		}
		if _, err := st.Write(syncproto.AppendFrame(nil, syncproto.KindRanges, syncproto.EncodeRanges(rs))); err != nil {
			t.Fatal(err)
		}
		if got := ended(t, br); got != syncproto.ReasonProtocol {
			t.Fatalf("ended with %q", got)
		}
	})

	t.Run("endless rounds", func(t *testing.T) {
		p := evilRelay(t, r, nil)
		st, br, w := evilSession(t, p, r)
		reason := ""
		for i := range 1000 {
			rs := []syncproto.Range{{Window: w, Count: i + 1}} // a lie each time
			if _, err := st.Write(syncproto.AppendFrame(nil, syncproto.KindRanges, syncproto.EncodeRanges(rs))); err != nil {
				break
			}
			kind, body, _, err := syncproto.ReadFrame(br, 8<<20)
			if err != nil {
				break
			}
			if kind == syncproto.KindError {
				reason = string(body)
				break
			}
		}
		if reason != syncproto.ReasonRounds {
			t.Fatalf("ended with %q, want the rounds bound", reason)
		}
	})

	// Responders: the relay starts sessions with these (they connected,
	// and every second at random).
	respond := func(answer func(kind byte, body []byte) []byte) network.StreamHandler {
		return func(s network.Stream) {
			defer func() { _ = s.Reset() }()
			_ = s.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(s)
			for {
				kind, body, _, err := syncproto.ReadFrame(br, 8<<20)
				if err != nil || kind == syncproto.KindError {
					return
				}
				out := answer(kind, body)
				if out == nil {
					return
				}
				if _, err := s.Write(out); err != nil {
					return
				}
			}
		}
	}
	helloSplit := func(body []byte) []byte {
		h, err := syncproto.DecodeHello(body)
		if err != nil {
			return nil
		}
		return syncproto.AppendFrame(nil, syncproto.KindHello, syncproto.EncodeHello(syncproto.Hello{
			Version: 1, Window: h.Window, Count: h.Count + 1, Verdict: syncproto.VerdictSplit}))
	}

	t.Run("endless splits", func(t *testing.T) {
		before := syncErrors(t, r, syncproto.ReasonRounds) + syncErrors(t, r, syncproto.ReasonLie) + syncErrors(t, r, syncproto.ReasonRanges)
		evilRelay(t, r, respond(func(kind byte, body []byte) []byte {
			switch kind {
			case syncproto.KindHello:
				return helloSplit(body)
			case syncproto.KindRanges:
				rs, err := syncproto.DecodeRanges(body, 1<<20)
				if err != nil {
					return nil
				}
				vs := make([]syncproto.Verdict, len(rs))
				for i := range vs {
					vs[i].Status = syncproto.VerdictSplit
				}
				return syncproto.AppendFrame(nil, syncproto.KindVerdicts, syncproto.EncodeVerdicts(vs))
			}
			return nil
		}))
		testnet.Eventually(t, 20*time.Second, "the relay to cut off the endless splitter", func() bool {
			return syncErrors(t, r, syncproto.ReasonRounds)+syncErrors(t, r, syncproto.ReasonLie)+syncErrors(t, r, syncproto.ReasonRanges) > before
		})
	})

	t.Run("huge answer", func(t *testing.T) {
		before := syncErrors(t, r, syncproto.ReasonTooLarge)
		evilRelay(t, r, respond(func(kind byte, body []byte) []byte {
			if kind == syncproto.KindHello {
				return []byte{0x80, 0x80, 0x80, 0x80, 0x04, syncproto.KindHello, 0, 0, 0}
			}
			return nil
		}))
		testnet.Eventually(t, 20*time.Second, "the relay to refuse the huge answer", func() bool {
			return syncErrors(t, r, syncproto.ReasonTooLarge) > before
		})
	})

	t.Run("wrong message", func(t *testing.T) {
		before := syncErrors(t, r, syncproto.ReasonInvalid)
		evilRelay(t, r, respond(func(kind byte, body []byte) []byte {
			switch kind {
			case syncproto.KindHello:
				return helloSplit(body)
			case syncproto.KindRanges:
				rs, err := syncproto.DecodeRanges(body, 1<<20)
				if err != nil {
					return nil
				}
				vs := make([]syncproto.Verdict, len(rs))
				for i, rg := range rs {
					vs[i].Status = syncproto.VerdictEqual
					if i == 0 { // one key the relay lacks
						ts := rg.From
						vs[i] = syncproto.Verdict{Status: syncproto.VerdictKeys, Keys: []history.Entry{{TS: ts, Key: history.MsgKey("evil-node", "asked")}}}
					}
				}
				return syncproto.AppendFrame(nil, syncproto.KindVerdicts, syncproto.EncodeVerdicts(vs))
			case syncproto.KindFetch:
				ks, err := syncproto.DecodeKeys(body, 1<<20)
				if err != nil || len(ks) == 0 {
					return nil
				}
				// Another message than the one asked for.
				f := frame(ks[0].TS, "evil-node", "", "EntryAnnounce", "not-asked")
				return syncproto.AppendFrame(nil, syncproto.KindMsgs, syncproto.EncodeFrames([][]byte{f}))
			}
			return nil
		}))
		testnet.Eventually(t, 20*time.Second, "the relay to refuse the wrong message", func() bool {
			return syncErrors(t, r, syncproto.ReasonInvalid) > before
		})
	})

	// Nothing of theirs was stored.
	for _, rr := range h.Relays {
		if err := rr.History.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := rr.History.Range(0, 0, 0, "", func(_ int64, sender string, f []byte) error {
			if strings.Contains(sender, "evil") || strings.Contains(string(f), "evil") {
				t.Errorf("relay %d stored %s", rr.Index, f)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	// Honest reconciliation still works: a broadcast only relay 1's store
	// has reaches relay 0's.
	ts := time.Now().Add(-2 * time.Second).UnixMilli()
	honest := frame(ts, "node-h", "", "EntryAnnounce", "honest-only-at-1")
	h.Relays[1].History.Append(ts, "node-h", "honest-only-at-1", honest)
	testnet.Eventually(t, 20*time.Second, "relay 0 to learn the broadcast from relay 1", func() bool {
		_, _, err := r.History.Get(ts, history.MsgKey("node-h", "honest-only-at-1"))
		return err == nil
	})
}
