package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/testnet"
)

// TestSIGHUPReloadsLimits: a relay process reloads --config on SIGHUP: a
// lower --max-conns-per-ip refuses the next connection while the open ones
// stay, the change is logged with its old and new value, a setting that
// needs a restart is named and left alone, and an invalid file changes
// nothing.
func TestSIGHUPReloadsLimits(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "relay.toml")
	write := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("max-conns-per-ip = 100\nrate-limit = 1000\n")
	p := start(t, nil, append(standalone, "--config", cfg, "--data-dir", t.TempDir())...)
	url := func(id string) string { return "ws://" + p.WS + "/ws?node_id=" + id }
	a, b := testnet.Dial(t, url("a"), "a"), testnet.Dial(t, url("b"), "b")
	testnet.Reach(t, a, b)

	hup := func(wantLog string) {
		t.Helper()
		n := strings.Count(p.stderr.String(), wantLog)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testnet.Eventually(t, 10*time.Second, "log line "+wantLog, func() bool {
			return strings.Count(p.stderr.String(), wantLog) > n
		})
	}
	write("max-conns-per-ip = 2\nrate-limit = 500\ndedup-size = 1000\n")
	hup("SIGHUP: limits reloaded")
	log := p.stderr.String()
	for _, want := range []string{"max-conns-per-ip 100 -> 2", "rate-limit 1000 -> 500", "need a restart", "keys=dedup-size"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	if _, err := testnet.DialErr(t, url("c"), "c", nil); err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("third connection from one IP after the reload: %v, want HTTP 429", err)
	}
	testnet.Reach(t, a, b) // the open connections stay

	write("max-conns-per-ip = 5\nmax-conns = 4\n") // per IP over the total
	hup("SIGHUP: limits not applied")
	if _, err := testnet.DialErr(t, url("c"), "c", nil); err == nil {
		t.Fatal("an invalid reload changed the limits")
	}
	write("max-conns-per-ip = 5\n")
	hup("SIGHUP: limits reloaded")
	c := testnet.Dial(t, url("c"), "c")
	testnet.Reach(t, a, c)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.stderr)
	}
}
