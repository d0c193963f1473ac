package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gsio-net/gsio-relay/client"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// connectCommand is a gsio-node on the command line, built on package
// client: each stdin line is sent as one message, each message received
// is printed as one line on stdout; connection events go to stderr. It
// fails over between its URLs (and reconnects, resuming what it missed)
// until stdin ends, SIGINT or SIGTERM, or an error no retry can fix.
//
// Goroutines: the client's own; a stdin reader, which ends at EOF or with
// the process (a read cannot be interrupted); a sender, which sends the
// lines and is stopped and waited for before the command returns.
func connectCommand() *cli.Command {
	return &cli.Command{
		Name:  "connect",
		Usage: "connect to relays as a node: stdin lines are sent, received messages printed",
		ArgsUsage: "URL [URL...]\n\n" +
			"   e.g. connect 'ws://127.0.0.1:8787/ws?node_id=node-a', or connect --node-key node.key URL1 URL2\n" +
			"   (more URLs: failover). The node id is --node-id or ?node_id=, the key id of --node-key, the\n" +
			"   sub of --jwt, or else the sender_id of the first line.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "node-id", Usage: "bind node `ID` (like ?node_id= in the URL)"},
			&cli.StringFlag{Name: "node-key", Usage: "prove a key id with the Ed25519 key in `FILE` (gsio-relay keygen --node): the node id is its key id"},
			&cli.StringFlag{Name: "jwt", Usage: "node `TOKEN` (a JWT) proving the node id, for relays with --node-jwt-key (like ?jwt= in the URL)"},
			&cli.StringFlag{Name: "auth-token", Usage: "bearer `TOKEN` for a relay started with --auth-token", EnvVars: envName("auth-token")},
			&cli.StringFlag{Name: "since", Usage: "replay the broadcasts from `WHEN` on before live traffic: a duration back from now (10m), unix ms or RFC 3339 (like ?since_ms=)"},
			&cli.BoolFlag{Name: "resume", Value: true, Usage: "after a reconnection, replay what was missed meanwhile (?since_ms=)"},
			&cli.DurationFlag{Name: "dial-timeout", Value: 10 * time.Second, Usage: "give up when no relay has bound the node id within `DURATION`"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg, err := connectConfig(c)
			if err != nil {
				return err
			}
			return runConnect(ctx, c, cfg)
		},
	}
}

// connectConfig turns the flags and URLs into the client's Config. The
// connect parameters of the URLs (node_id, jwt, since_ms) become Config
// fields, so that the client sets them afresh on every connection.
func connectConfig(c *cli.Context) (client.Config, error) {
	cfg := client.DefaultConfig()
	if c.NArg() == 0 {
		return cfg, errors.New("connect needs a relay URL, e.g. connect 'ws://127.0.0.1:8787/ws?node_id=node-a'")
	}
	id, jwt, since := c.String("node-id"), c.String("jwt"), c.String("since")
	agree := func(what string, have *string, v string) error {
		if *have != "" && *have != v {
			return fmt.Errorf("two %s: %q and %q (in the URLs or flags)", what, *have, v)
		}
		*have = v
		return nil
	}
	for _, raw := range c.Args().Slice() {
		if strings.HasPrefix(raw, "-") {
			return cfg, fmt.Errorf("%s after a URL: flags go first (connect [flags] URL [URL...])", raw)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return cfg, fmt.Errorf("relay URL %q: want ws://HOST:PORT/ws or wss://…", raw)
		}
		q := u.Query()
		for _, p := range []struct {
			key, what string
			to        *string
		}{{"node_id", "node ids", &id}, {"jwt", "node tokens", &jwt}, {"since_ms", "since values", &since}} {
			if v := q.Get(p.key); v != "" {
				if err := agree(p.what, p.to, v); err != nil {
					return cfg, err
				}
			}
			q.Del(p.key)
		}
		u.RawQuery = q.Encode()
		cfg.URLs = append(cfg.URLs, u.String())
	}
	if f := c.String("node-key"); f != "" {
		key, keyID, err := nodeauth.LoadNodeKey(f)
		if err != nil {
			return cfg, fmt.Errorf("--node-key: %w", err)
		}
		if id != "" && id != keyID {
			return cfg, fmt.Errorf("node id %s is not the key id of --node-key %s (%s)", id, f, keyID)
		}
		if jwt != "" {
			return cfg, errors.New("--node-key and a node token (--jwt, ?jwt=) are exclusive: choose one proof")
		}
		cfg.NodeKey, id = key, keyID
	}
	if cfg.NodeKey == nil && jwt == "" && nodeauth.IsKeyID(id) {
		return cfg, fmt.Errorf("node id %s is a key id: it binds only with its key (--node-key FILE) or a token (--jwt)", id)
	}
	cfg.NodeID, cfg.Token, cfg.AuthToken = id, jwt, c.String("auth-token")
	cfg.Resume = c.Bool("resume")
	if since != "" {
		ms, err := parseSince(since, time.Now())
		if err != nil {
			return cfg, fmt.Errorf("--since: %w", err)
		}
		// The client reads a zero time as "live only": 0 is 1 ms later.
		cfg.Resume, cfg.Since = true, time.UnixMilli(max(ms, 1))
	}
	return cfg, nil
}

// runConnect dials, then prints what arrives while a sender goroutine
// sends the stdin lines, until stdin ends, ctx ends or the client stops.
func runConnect(ctx context.Context, c *cli.Context, cfg client.Config) error {
	out, errOut := &lineWriter{w: c.App.Writer}, &lineWriter{w: c.App.ErrWriter}
	lines := readLines(c.App.Reader)
	var first string
	if cfg.NodeID == "" && cfg.NodeKey == nil && cfg.Token == "" {
		// No id yet: the first message names it, as its first frame
		// binds it on a bare connection.
		var ok bool
		if first, ok = firstLine(ctx, lines); !ok {
			return nil
		}
		m, err := client.Parse([]byte(first))
		if err != nil || m.Sender == "" {
			return errors.New("no node id: give --node-id, ?node_id= in the URL, --node-key or --jwt, or make the first line a message with a sender_id")
		}
		cfg.NodeID = m.Sender
	}

	var live atomic.Pointer[client.Client]
	hook := func(s client.State) {
		cl := live.Load()
		switch {
		case cl == nil: // the first connection: runConnect reports it
		case s.Connected:
			errOut.printf("connected to %s as %s", s.URL, cl.NodeID())
		case !fatal(s.Err):
			errOut.printf("connection to %s: %s (reconnecting)", s.URL, flatErr(s.Err))
		}
	}
	dctx, cancel := context.WithTimeout(ctx, c.Duration("dial-timeout"))
	cl, err := client.Dial(dctx, cfg, client.WithStateHook(hook))
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted
		}
		return connectError(err, c.Duration("dial-timeout"))
	}
	live.Store(cl)
	errOut.printf("connected to %s as %s", cl.URL(), cl.NodeID())

	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	sent := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(sent)
		s := sender{cl: cl, out: out, errOut: errOut}
		if first != "" {
			s.line(sctx, first)
		}
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					s.barrier(sctx)
					return
				}
				s.line(sctx, l)
			case <-sctx.Done():
				return
			}
		}
	})
	// finish stops the sender and the client and prints what is left.
	finish := func() error {
		scancel()
		wg.Wait()
		cl.Close()
		for m := range cl.Messages() {
			out.line(m.Raw)
		}
		if err := cl.Err(); err != nil && !errors.Is(err, client.ErrClosed) {
			return connectError(err, 0)
		}
		return nil
	}
	for {
		select {
		case m, ok := <-cl.Messages():
			if !ok {
				return finish() // the client stopped: why is in Err
			}
			out.line(m.Raw)
		case <-sent: // stdin ended and everything was sent
			return finish()
		case <-ctx.Done():
			return finish()
		}
	}
}

// readLines feeds the lines of r to the returned channel, closed at EOF.
func readLines(r io.Reader) <-chan string {
	lines := make(chan string)
	go func() { // ends at EOF, or with the process
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// firstLine returns the first line that is not blank; false at EOF or
// when ctx ends.
func firstLine(ctx context.Context, lines <-chan string) (string, bool) {
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return "", false
			}
			if strings.TrimSpace(l) != "" {
				return l, true
			}
		case <-ctx.Done():
			return "", false
		}
	}
}

// sender sends stdin lines (on the sender goroutine).
type sender struct {
	cl          *client.Client
	out, errOut *lineWriter
}

// line sends one line. A line the client cannot send is reported on
// stderr and skipped: a line that is not a GSIO message, a sender_id other
// than the node's, a Relay* type. An empty sender_id or message_id is
// filled in. A HistoryRequest to the relay is asked with History, and its
// answer printed, RelayHistoryEnd included.
func (s *sender) line(ctx context.Context, l string) {
	if strings.TrimSpace(l) == "" {
		return
	}
	m, err := client.Parse([]byte(l))
	if err != nil {
		s.errOut.printf("not sent: %v", err)
		return
	}
	if m.Type == client.TypeHistoryRequest && m.Recipient == client.RelayID {
		s.history(ctx, m)
		return
	}
	if _, err := s.cl.Send(ctx, client.Message{Type: m.Type, ID: m.ID, Sender: m.Sender, Recipient: m.Recipient, Payload: m.Payload}); err != nil && ctx.Err() == nil {
		s.errOut.printf("not sent: %s", flatErr(err))
	}
}

// history answers a HistoryRequest line: the stored broadcasts, then a
// RelayHistoryEnd whose ref is the line's message_id.
func (s *sender) history(ctx context.Context, m client.Message) {
	var p struct {
		Since *int64 `json:"since_ms"`
		Until int64  `json:"until_ms"`
		Limit int    `json:"limit"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || p.Since == nil {
		s.errOut.printf("not sent: HistoryRequest payload must be {\"since_ms\":T[,\"until_ms\":U][,\"limit\":N]}")
		return
	}
	var until time.Time
	if p.Until != 0 {
		until = time.UnixMilli(p.Until)
	}
	res, err := s.cl.History(ctx, time.UnixMilli(*p.Since), until, p.Limit)
	if err != nil {
		if ctx.Err() == nil {
			s.errOut.printf("HistoryRequest: %s", flatErr(err))
		}
		return
	}
	for _, h := range res.Messages {
		s.out.line(h.Raw)
	}
	end := struct {
		Ref       string `json:"ref"`
		Count     int    `json:"count"`
		Complete  bool   `json:"complete"`
		NextSince int64  `json:"next_since_ms,omitempty"`
		Oldest    int64  `json:"oldest_ms"`
	}{Ref: m.ID, Count: res.Count, Complete: res.Complete}
	if !res.NextSince.IsZero() {
		end.NextSince = res.NextSince.UnixMilli()
	}
	if !res.Oldest.IsZero() {
		end.Oldest = res.Oldest.UnixMilli()
	}
	payload, _ := json.Marshal(end)
	frame, err := client.Message{Type: client.TypeRelayHistoryEnd, Sender: client.RelayID, Recipient: s.cl.NodeID(), Payload: payload}.Encode()
	if err == nil {
		s.out.line(frame)
	}
}

// barrierTimeout bounds the wait for the relay's last answers at EOF.
const barrierTimeout = 5 * time.Second

// barrier waits, when stdin has ended, until the relay has handled every
// line sent: it asks for an empty history window, which the relay answers
// after everything the connection sent before (a RelayError when it keeps
// no history, which serves as well). The answers to those lines (a
// NodeListResponse, a RelayError) are then in Messages(), and are printed
// before the command exits.
func (s *sender) barrier(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, barrierTimeout)
	defer cancel()
	now := time.Now()
	_, _ = s.cl.History(ctx, now.Add(time.Hour), now.Add(time.Hour+time.Millisecond), 1)
}

// lineWriter writes whole lines to w, one writer at a time.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lineWriter) line(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w.Write(append(b[:len(b):len(b)], '\n'))
}

func (w *lineWriter) printf(format string, args ...any) {
	w.line(fmt.Appendf(nil, "gsio-relay: "+format, args...))
}

// fatal reports whether the client stops on err (it is then reported
// once, as the command's error).
func fatal(err error) bool {
	return errors.Is(err, client.ErrAuthFailed) || errors.Is(err, client.ErrReplaced) ||
		errors.Is(err, client.ErrTokenExpired) || errors.Is(err, client.ErrClosed)
}

// connectError is the command's one-line error for why the client could
// not connect or stopped.
func connectError(err error, dialTimeout time.Duration) error {
	var ae *client.AuthError
	if errors.As(err, &ae) {
		what := "authentication failed"
		if errors.Is(err, client.ErrTokenExpired) {
			what = "node token expired"
		}
		switch {
		case ae.Code == 401 || ae.Code == 403:
			return fmt.Errorf("%s: %s answered HTTP %s (check --auth-token)", what, ae.URL, ae.Reason)
		case ae.Reason != "":
			return fmt.Errorf("%s: %s closed the connection with %d %q", what, ae.URL, ae.Code, ae.Reason)
		}
		return fmt.Errorf("%s: %s closed the connection with %d", what, ae.URL, ae.Code)
	}
	if errors.Is(err, context.DeadlineExceeded) && dialTimeout > 0 {
		msg := err.Error()
		if i := strings.Index(msg, "(last attempt: "); i >= 0 {
			msg = strings.TrimSuffix(msg[i+len("(last attempt: "):], ")")
		}
		return fmt.Errorf("no relay bound the node id within --dial-timeout %v: %s", dialTimeout, flatErr(errors.New(msg)))
	}
	return errors.New(flatErr(err))
}

// flatErr is err's text on one line (errors.Join separates with newlines).
func flatErr(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}
