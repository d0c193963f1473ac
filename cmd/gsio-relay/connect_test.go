package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/testnet"
)

// connectProc is a `gsio-relay connect` process: lines are written to its
// stdin, its stdout lines arrive on out.
type connectProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    chan string
	stderr *syncBuffer
	done   chan error
}

// startConnect runs `gsio-relay connect args...`; t.Cleanup kills it if the
// test did not end it.
func startConnect(t *testing.T, args ...string) *connectProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"connect"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProc{cmd: cmd, stdin: stdin, out: make(chan string, 1024), stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = writerFunc(func(b []byte) { p.stderr.WriteString(string(b)) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.out <- sc.Text()
		}
	}()
	go func() { <-read; p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	return p
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

func (p *connectProc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("connect stdin: %v", err)
	}
}

// expect returns the next stdout line, failing unless it contains every
// one of want.
func (p *connectProc) expect(t *testing.T, want ...string) string {
	t.Helper()
	select {
	case l := <-p.out:
		for _, w := range want {
			if !strings.Contains(l, w) {
				t.Fatalf("connect printed %s\nwant it to contain %q\nstderr:\n%s", l, w, p.stderr)
			}
		}
		return l
	case <-time.After(testnet.Wait):
		t.Fatalf("connect printed nothing within %v, want %q\nstderr:\n%s", testnet.Wait, want, p.stderr)
	}
	return ""
}

// expectIDs takes one stdout line per id and fails unless they are
// stamped broadcasts with these message_ids, in any order (the relay
// orders broadcasts of one millisecond by message key).
func (p *connectProc) expectIDs(t *testing.T, ids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for range ids {
		var m struct {
			ID string `json:"message_id"`
			TS int64  `json:"ts"`
		}
		l := p.expect(t)
		if err := json.Unmarshal([]byte(l), &m); err != nil || !want[m.ID] || m.TS == 0 {
			t.Fatalf("connect printed %s, want one of %v with a ts", l, want)
		}
		delete(want, m.ID)
	}
}

// waitStderr waits until stderr contains s.
func (p *connectProc) waitStderr(t *testing.T, s string) {
	t.Helper()
	testnet.Eventually(t, testnet.Wait, "connect's stderr to say "+s, func() bool {
		return strings.Contains(p.stderr.String(), s)
	})
}

// eof closes stdin and returns the exit code.
func (p *connectProc) eof(t *testing.T) int {
	t.Helper()
	p.stdin.Close()
	select {
	case err := <-p.done:
		p.done <- err
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		t.Fatalf("connect still running 10 s after stdin ended\nstderr:\n%s", p.stderr)
	}
	return -1
}

func TestConnectSendsLinesAndPrintsMessages(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	c := startConnect(t, r.URL+"?node_id=node-a")
	c.waitStderr(t, "as node-a")
	b := testnet.Dial(t, r.URL, "node-b")
	b.Send("EntryAnnounce", "b1", "", `{"entry":"e1"}`)
	c.expect(t, `"message_id":"b1"`, `"sender_id":"node-b"`, `"payload":{"entry":"e1"}`)

	c.send(t, `{"message_type":"EntryAnnounce","message_id":"a1","sender_id":"node-a","recipient_id":"","payload":{"entry":"e2"}}`)
	if m := b.Expect("EntryAnnounce"); m.ID != "a1" || m.Sender != "node-a" || string(m.Payload) != `{"entry":"e2"}` {
		t.Fatalf("node-b got %s", m.Raw)
	}
	// The client fills in sender_id and message_id.
	c.send(t, `{"message_type":"EntryRequest","recipient_id":"node-b","payload":{}}`)
	if m := b.Expect("EntryRequest"); m.Sender != "node-a" || m.ID == "" {
		t.Fatalf("node-b got %s", m.Raw)
	}
	// What the client cannot send is said on stderr, and the session goes on.
	c.send(t, `not json`)
	c.send(t, `{"message_type":"EntryAnnounce","sender_id":"node-z","payload":{}}`)
	c.waitStderr(t, `sender_id "node-z"`)
	// The answers to the last lines are printed before connect exits.
	c.send(t, `{"message_type":"NodeListRequest","message_id":"l1","sender_id":"node-a","payload":{}}`)
	c.send(t, `{"message_type":"EntryRequest","message_id":"x1","sender_id":"node-a","recipient_id":"nobody","payload":{}}`)
	if code := c.eof(t); code != 0 {
		t.Fatalf("exit %d at EOF\n%s", code, c.stderr)
	}
	c.expect(t, `"NodeListResponse"`, `"nodes":["node-a","node-b"]`)
	c.expect(t, `"RelayError"`, `"recipient_unknown"`, `"ref":"x1"`)
	if n := strings.Count(c.stderr.String(), "\n"); n != 3 {
		t.Errorf("stderr: %d lines, want 3 (connected, not json, sender):\n%s", n, c.stderr)
	}
}

// Without a node id, the first line's sender_id is bound (as a bare
// connection's first frame binds it).
func TestConnectFirstLineBinds(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	b := testnet.Dial(t, r.URL+"?node_id=node-b", "node-b")
	c := startConnect(t, r.URL)
	c.send(t, `{"message_type":"EntryAnnounce","message_id":"z1","sender_id":"node-z","payload":{}}`)
	c.waitStderr(t, "as node-z")
	if m := b.Expect("EntryAnnounce"); m.ID != "z1" || m.Sender != "node-z" {
		t.Fatalf("node-b got %s", m.Raw)
	}
	if code := c.eof(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, c.stderr)
	}
}

// A key id answers the relay's challenge: the node id is the key id of
// the file, printed to stderr at bind. The first URL is dead: the client
// fails over to the second.
func TestConnectNodeKey(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil)
	key, err := nodeauth.GenerateNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "node.key")
	if err := nodeauth.WriteNodeKey(file, key); err != nil {
		t.Fatal(err)
	}
	_, keyID, _ := nodeauth.LoadNodeKey(file)
	c := startConnect(t, "--node-key", file, "ws://"+closedPort(t)+"/ws", r.URL)
	c.waitStderr(t, "connected to "+r.URL+" as "+keyID)

	b := testnet.Dial(t, r.URL+"?node_id=node-b", "node-b")
	b.Send("EntryAnnounce", "b1", "", "")
	c.expect(t, `"message_id":"b1"`)
	c.send(t, `{"message_type":"EntryAnnounce","message_id":"k1","payload":{"signed":true}}`)
	if m := b.Expect("EntryAnnounce"); m.ID != "k1" || m.Sender != keyID {
		t.Fatalf("node-b got %s, want k1 from %s", m.Raw, keyID)
	}
	if code := c.eof(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, c.stderr)
	}
}

// --since replays the stored broadcasts first; a HistoryRequest line is
// answered, RelayHistoryEnd included.
func TestConnectSinceAndHistoryRequest(t *testing.T) {
	r := testnet.StartStandalone(t, nil, nil, relay.WithHistory(testnet.OpenHistory(t)))
	b := testnet.Dial(t, r.URL+"?node_id=node-b", "node-b")
	b.Send("EntryAnnounce", "old", "", "")
	b.Send("NodeListRequest", "list", "", "")
	b.Expect("NodeListResponse") // the relay has handled "old"

	c := startConnect(t, "--since", "1m", "--node-id", "node-c", r.URL)
	c.expectIDs(t, "old", "list")
	c.waitStderr(t, "as node-c")
	b.Send("EntryAnnounce", "new", "", "")
	c.expect(t, `"message_id":"new"`)

	c.send(t, `{"message_type":"HistoryRequest","message_id":"h1","sender_id":"node-c","recipient_id":"relay","payload":{"since_ms":0,"limit":2}}`)
	c.expectIDs(t, "old", "list")
	end := c.expect(t, `"RelayHistoryEnd"`)
	var e struct {
		Payload struct {
			Ref       string `json:"ref"`
			Count     int    `json:"count"`
			Complete  bool   `json:"complete"`
			NextSince int64  `json:"next_since_ms"`
		} `json:"payload"`
	}
	if err := json.Unmarshal([]byte(end), &e); err != nil || e.Payload.Ref != "h1" || e.Payload.Count != 2 ||
		e.Payload.Complete || e.Payload.NextSince == 0 {
		t.Fatalf("RelayHistoryEnd %s (%v): want ref h1, count 2, cut by the limit", end, err)
	}
	if code := c.eof(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, c.stderr)
	}
}

// TestConnectErrorsAreOneLine: what stops connect is one line on stderr
// and a non-zero exit.
func TestConnectErrorsAreOneLine(t *testing.T) {
	open := testnet.StartStandalone(t, nil, nil)
	required := testnet.StartStandalone(t, func(c *relay.Config) { c.NodeAuth = relay.AuthRequired }, nil)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not a key\n"), 0o600)
	pub := filepath.Join(dir, "public.key")
	os.WriteFile(pub, []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"), 0o600)
	keyID := "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--node-key", bad, open.URL}, "--node-key: load node key " + bad},
		{[]string{"--node-key", pub, open.URL}, "want \"PRIVATE KEY\""},
		{[]string{"--node-key", filepath.Join(dir, "missing.key"), open.URL}, "missing.key"},
		{[]string{"--jwt", "not.a.token", open.URL}, "authentication failed: " + open.URL + ` closed the connection with 4001 "authentication failed: this relay accepts no node tokens"`},
		{[]string{"--node-id", keyID, open.URL}, "is a key id"},
		{[]string{"--dial-timeout", "1s", "--node-id", "node-a", "ws://" + closedPort(t) + "/ws"}, "no relay bound the node id within --dial-timeout 1s"},
		{[]string{"--node-id", "node-a", open.URL, "--since", "1m"}, "flags go first"},
		{[]string{"--node-id", "a", open.URL + "?node_id=b"}, "two node ids"},
		{[]string{"--since", "soon", "--node-id", "a", open.URL}, "--since"},
		{[]string{"--node-id", "a", "http://127.0.0.1:1/"}, "want ws://"},
		{[]string{}, "needs a relay URL"},
	}
	for _, tc := range cases {
		_, stderr, code := runCLI(t, nil, append([]string{"connect"}, tc.args...)...)
		if code == 0 {
			t.Errorf("connect %v: exit 0", tc.args)
		}
		oneLine(t, strings.Join(tc.args, " "), stderr, tc.want)
	}

	// --node-auth required refuses a plain id at its first message: the
	// client stops, and connect with it.
	c := startConnect(t, "--node-id", "node-a", required.URL)
	c.waitStderr(t, "as node-a")
	c.send(t, `{"message_type":"EntryAnnounce","payload":{}}`)
	c.waitStderr(t, "authentication failed: "+required.URL+" closed the connection with 4001")
	if code := c.eof(t); code == 0 {
		t.Fatalf("exit 0 after 4001\n%s", c.stderr)
	}
}
