package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/testnet"
)

// bin is the gsio-relay binary built once for these tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gsio-relay-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "gsio-relay")
	// The build runs with the user's HOME: its build and module caches
	// (GOCACHE, GOMODCACHE default under HOME). With the temporary HOME
	// it rebuilt every dependency with -race, and fetched every module,
	// on each run: minutes on a busy machine.
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build gsio-relay: %v\n%s", err, out)
		os.Exit(1)
	}
	// Relays run by the tests keep their identity (default --data-dir
	// ~/.gsio-relay) in the temporary directory, not the user's home.
	os.Setenv("HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a gsio-relay process under test.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	WS     string // host:port of the WebSocket listener
	Admin  string // host:port of the admin listener
	PeerID string
	done   chan error
}

// The "relay up" and "federation up" log lines, in text or JSON format.
var (
	upText   = regexp.MustCompile(`msg="relay up" ws=(\S+) admin=(\S+)`)
	upJSON   = regexp.MustCompile(`"msg":"relay up","ws":"([^"]+)","admin":"([^"]+)"`)
	peerText = regexp.MustCompile(`msg="federation up" peer=(\S+)`)
	peerJSON = regexp.MustCompile(`"msg":"federation up","peer":"([^"]+)"`)
)

// match returns the submatches of the first regexp that matches line.
func match(line string, res ...*regexp.Regexp) []string {
	for _, re := range res {
		if m := re.FindStringSubmatch(line); m != nil {
			return m
		}
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) WriteString(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(v)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs `gsio-relay args...` with env and waits for its "relay up" log
// line; t.Cleanup kills it if the test did not stop it.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		var once bool
		for sc.Scan() {
			line := sc.Text()
			p.stderr.WriteString(line + "\n")
			if m := match(line, peerText, peerJSON); m != nil {
				p.PeerID = m[1]
			}
			if m := match(line, upText, upJSON); m != nil && !once {
				once = true
				p.WS, p.Admin = m[1], m[2]
				close(up)
			}
		}
	}()
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case <-up:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("gsio-relay exited before it was up: %v\n%s", err, p.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("gsio-relay not up after 60 s\n%s", p.stderr)
	}
	return p
}

// stop sends sig and returns the exit error (nil for exit 0).
func (p *proc) stop(t *testing.T, sig os.Signal) error {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("gsio-relay did not exit within 10 s of %v\n%s", sig, p.stderr)
	}
	return nil
}

func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

var standalone = []string{"run", "--standalone", "--ws-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}

func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, nil, "version")
	if code != 0 || strings.TrimSpace(out) == "" || strings.Contains(out, " ") {
		t.Fatalf("version: exit %d, output %q", code, out)
	}
	long, _, code := runCLI(t, nil, "--version")
	if code != 0 || long != "gsio-relay "+out {
		t.Fatalf("--version: exit %d, output %q, want %q", code, long, "gsio-relay "+out)
	}
	for _, sh := range []string{"bash", "zsh"} {
		script, _, code := runCLI(t, nil, "completion", sh)
		if code != 0 || !strings.Contains(script, "--generate-bash-completion") {
			t.Fatalf("completion %s: exit %d\n%s", sh, code, script)
		}
	}
	cmds, _, _ := runCLI(t, nil, "--generate-bash-completion")
	if !strings.Contains(cmds, "\ndrain\n") || !strings.Contains(cmds, "\ncompletion\n") {
		t.Fatalf("completion of the commands: %q", cmds)
	}
}

func TestSIGTERMClosesClientsWith1001AndExitsZero(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		p := start(t, nil, standalone...)
		url := "ws://" + p.WS + "/ws"
		a, b := testnet.Dial(t, url+"?node_id=node-a", "node-a"), testnet.Dial(t, url, "node-b")
		testnet.Reach(t, b, a)
		if err := p.stop(t, sig); err != nil {
			t.Fatalf("%v: exit %v, want 0\n%s", sig, err, p.stderr)
		}
		a.ExpectClose(websocket.CloseGoingAway)
		b.ExpectClose(websocket.CloseGoingAway)
	}
}

func TestFlagsEnvAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "relay.toml")
	// The file turns echo on and sets a rate; the environment overrides the
	// rate; the command line overrides nothing here.
	os.WriteFile(cfg, []byte("echo = true\nrate-limit = 1\nrate-burst = 1\nlog-format = \"json\"\n"), 0o644)
	p := start(t, []string{"GSIO_RELAY_RATE_BURST=3"}, append(standalone, "--config", cfg)...)
	a := testnet.Dial(t, "ws://"+p.WS+"/ws", "node-a")
	for i := range 4 {
		a.Send("EntryAnnounce", fmt.Sprint("m", i), "", "")
	}
	for i := range 3 { // echo from the file, burst 3 from the environment
		if m := a.Expect("EntryAnnounce"); m.ID != fmt.Sprint("m", i) {
			t.Fatalf("got %s", m.Raw)
		}
	}
	a.ExpectError("rate_limited")
	if !strings.Contains(p.stderr.String(), `"msg":"relay up"`) {
		t.Fatalf("log-format json from the file not applied:\n%s", p.stderr)
	}
}

func TestBadConfigIsOneClearLine(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("ws-lisen = \"127.0.0.1:1\"\n"), 0o644)
	broken := filepath.Join(dir, "broken.toml")
	os.WriteFile(broken, []byte("ws-listen = \n"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--config", unknown}, `unknown key "ws-lisen"`},
		{[]string{"run", "--config", broken}, "config " + broken},
		{[]string{"run", "--config", filepath.Join(dir, "missing.toml")}, "missing.toml"},
		{append(standalone, "--log-level", "loud"), "--log-level"},
		{append(standalone, "--max-message-size", "-1"), "--max-message-size"},
		{append(standalone, "--node-auth", "closed"), "--node-auth"},
		{append(standalone, "--bind-timeout", "0s"), "--bind-timeout"},
		{append(standalone, "--node-jwt-key", filepath.Join(dir, "nokey.pem")), "--node-jwt-key"},
		{append(standalone, "--node-jwt-audience", "x"), "--node-jwt-audience needs --node-jwt-key"},
		{append(standalone, "--ws-listen", "nonsense"), "nonsense"},
		{[]string{"run", "--no-such-flag"}, "no-such-flag"},
	}
	for _, tc := range cases {
		_, stderr, code := runCLI(t, nil, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want non-zero and %q", tc.args, code, stderr, tc.want)
		}
		if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
			t.Errorf("%v: stack trace in stderr:\n%s", tc.args, stderr)
		}
	}
}

func TestKeygenNode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "node.key")
	out, stderr, code := runCLI(t, nil, "keygen", "--node", "--out", file)
	if code != 0 {
		t.Fatalf("keygen --node: exit %d: %s", code, stderr)
	}
	_, id, err := nodeauth.LoadNodeKey(file)
	if err != nil || strings.TrimSpace(out) != id || !nodeauth.IsKeyID(id) {
		t.Fatalf("printed %q, file's key id %q (%v)", out, id, err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Fatalf("node key file mode %v, want 0600", st.Mode().Perm())
	}
	if _, _, code := runCLI(t, nil, "keygen", "--node", "--out", file); code == 0 {
		t.Fatal("keygen --node overwrote an existing key file")
	}
	// Without --out: the key file on stdout, its key id on stderr.
	pemOut, stderr, code := runCLI(t, nil, "keygen", "--node")
	f2 := filepath.Join(dir, "stdout.key")
	os.WriteFile(f2, []byte(pemOut), 0o600)
	_, id2, err := nodeauth.LoadNodeKey(f2)
	if code != 0 || err != nil || !strings.Contains(stderr, id2) {
		t.Fatalf("keygen --node to stdout: exit %d, stderr %q, key %v", code, stderr, err)
	}
}
