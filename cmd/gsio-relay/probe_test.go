package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gsio-net/gsio-relay/node"
)

// probeFailed checks a failed command's stderr: one line, no stack trace,
// containing want.
func probeFailed(t *testing.T, args []string, stderr string, code int, want string) {
	t.Helper()
	if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "goroutine ") {
		t.Fatalf("%v: exit %d, stderr %q; want non-zero and one line with %q", args, code, stderr, want)
	}
}

// TestProbe runs gsio-relay probe against a running relay (text and
// JSON), a relay with --relay-service=false from its config file, a
// private relay (key from the environment), a closed port and a silent
// listener.
func TestProbe(t *testing.T) {
	_, addr := startFederated(t, t.TempDir())
	out, stderr, code := runCLI(t, nil, "probe", addr)
	if code != 0 || !strings.Contains(out, "/libp2p/circuit/relay/0.2.0/hop") || !strings.Contains(out, "/meshsub/1.3.0") ||
		!strings.Contains(out, "Relay v2 hop      yes") || !strings.Contains(out, "Ping RTT") {
		t.Fatalf("probe %s: exit %d\n%s%s", addr, code, out, stderr)
	}
	out, stderr, code = runCLI(t, nil, "probe", "--json", addr)
	var v probeJSON
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("probe --json: exit %d\n%s%s", code, out, stderr)
	}
	if !v.RelayV2Hop || v.GossipSub == "" || !v.GSIODirect || v.PingRTTMs == nil || !strings.HasSuffix(addr, v.PeerID) || v.AgentVersion != "gsio-relay" {
		t.Fatalf("probe --json: %+v", v)
	}
	// Flags after the address work too.
	out, stderr, code = runCLI(t, nil, "probe", addr, "--json", "--timeout", "5s")
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || !strings.HasSuffix(addr, v.PeerID) {
		t.Fatalf("probe ADDR --json: exit %d\n%s%s", code, out, stderr)
	}
	_, stderr, code = runCLI(t, nil, "probe", addr, addr)
	probeFailed(t, []string{"probe", addr, addr}, stderr, code, "probe takes one MULTIADDR (got 2 arguments")

	dir := t.TempDir()
	cfg := filepath.Join(dir, "relay.toml")
	if err := os.WriteFile(cfg, []byte("relay-service = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	offProc := start(t, nil, "run", "--ws-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--data-dir", t.TempDir(), "--config", cfg)
	off := p2pAddr.FindString(offProc.stderr.String())
	out, _, code = runCLI(t, nil, "probe", off)
	if code != 0 || !strings.Contains(out, "Relay v2 hop      no") || strings.Contains(out, "/libp2p/circuit/relay/0.2.0/hop") {
		t.Fatalf("probe of a relay with relay-service = false: exit %d\n%s", code, out)
	}

	key, err := node.NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "swarm.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	keyEnv := []string{"GSIO_RELAY_SWARM_KEY=" + keyFile}
	p := start(t, keyEnv, "run", "--ws-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--p2p-listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--data-dir", t.TempDir())
	if !strings.Contains(p.stderr.String(), "QUIC disabled") {
		t.Fatalf("no QUIC warning with a swarm key:\n%s", p.stderr)
	}
	priv := p2pAddr.FindString(p.stderr.String())
	if out, _, code := runCLI(t, keyEnv, "probe", priv); code != 0 || !strings.Contains(out, p.PeerID) {
		t.Fatalf("probe of a private relay with its key: exit %d\n%s", code, out)
	}
	args := []string{"probe", "--timeout", "2s", priv}
	_, stderr, code = runCLI(t, nil, args...)
	if code == 0 {
		t.Fatalf("probe of a private relay without its key succeeded")
	}
	probeFailed(t, args, stderr, code, "probe "+priv)

	// A closed port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	args = []string{"probe", "/ip4/127.0.0.1/tcp/" + port + "/p2p/" + v.PeerID}
	_, stderr, code = runCLI(t, nil, args...)
	probeFailed(t, args, stderr, code, "connection refused")

	// A listener that accepts and never answers: the timeout.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer silent.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	args = []string{"probe", "--timeout", "1s", "/ip4/127.0.0.1/tcp/" + strconv.Itoa(silent.Addr().(*net.TCPAddr).Port) + "/p2p/" + v.PeerID}
	_, stderr, code = runCLI(t, nil, args...)
	probeFailed(t, args, stderr, code, "no answer within 1s")

	args = []string{"probe", "not-a-multiaddr"}
	_, stderr, code = runCLI(t, nil, args...)
	probeFailed(t, args, stderr, code, "not a multiaddr")
}
