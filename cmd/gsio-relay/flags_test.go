package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// parseRun applies args (after "run"), the environment and --config to the
// run flags and returns the bound config, without running anything.
func parseRun(t *testing.T, args ...string) *runConfig {
	t.Helper()
	cfg := defaultRunConfig()
	flags := runFlags(cfg)
	app := &cli.App{Name: "gsio-relay", Commands: []*cli.Command{{
		Name:   "run",
		Flags:  flags.flags,
		Before: func(c *cli.Context) error { return loadConfig(c, flags.flags) },
		Action: func(*cli.Context) error { flags.bind(); return nil },
	}}}
	if err := app.Run(append([]string{"gsio-relay", "run"}, args...)); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRunFlagsBind: with no flag every field keeps its package default;
// flags, the environment and the config file land in their fields, a
// repeated flag or a comma-separated variable makes a list.
func TestRunFlagsBind(t *testing.T) {
	def := defaultRunConfig()
	if got := parseRun(t); !sameConfig(got, def) {
		t.Fatalf("no flags: config\n%+v\nwant\n%+v", got, def)
	}

	got := parseRun(t, "--p2p-listen", "/ip4/127.0.0.1/tcp/1", "--p2p-listen", "/ip4/127.0.0.1/tcp/2",
		"--gossip-sign=false", "--relay-service=false", "--hole-punching=false", "--mdns",
		"--relay-circuit-data", "4096", "--relay-circuit-duration", "1m", "--rate-limit", "7", "--max-message-size", "2048",
		"--allow-private-addrs", "--gossip-origin-rate", "123", "--gossip-origin-burst", "4096", "--admin-allowed-hosts", "relay.example")
	n := got.Node
	if !reflect.DeepEqual(n.Host.ListenAddrs, []string{"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"}) ||
		n.Gossip.Sign || n.RelayService.Enable || n.NAT.EnableHolePunching || !n.NAT.EnableAutoNATService || !n.Discovery.EnableMDNS ||
		n.RelayService.Limit.Data != 4096 || n.RelayService.Limit.Duration != time.Minute ||
		got.Relay.RateLimit != 7 || got.Transport.MaxMessageSize != 2048 ||
		!n.Presence.AllowPrivateAddrs || n.Gossip.OriginRate != 123 || n.Gossip.OriginBurst != 4096 ||
		!reflect.DeepEqual(got.Admin.AllowedHosts, []string{"relay.example"}) {
		t.Fatalf("flags not bound: %+v / relay %+v / transport %+v", n, got.Relay, got.Transport)
	}

	t.Setenv("GSIO_RELAY_BOOTSTRAP", "/ip4/127.0.0.1/tcp/1/p2p/x,/ip4/127.0.0.1/tcp/2/p2p/y")
	t.Setenv("GSIO_RELAY_RATE_LIMIT", "5")
	dir := t.TempDir()
	file := filepath.Join(dir, "relay.toml")
	toml := "allow-peer = [\"a\", \"b\"]\nrelay-circuit-data = 1000\nrate-limit = 9\nnetwork = \"lan\"\nlog-level = \"debug\"\n"
	if err := os.WriteFile(file, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	got = parseRun(t, "--config", file)
	n = got.Node
	if !reflect.DeepEqual(n.Discovery.Bootstrap, []string{"/ip4/127.0.0.1/tcp/1/p2p/x", "/ip4/127.0.0.1/tcp/2/p2p/y"}) ||
		!reflect.DeepEqual(n.Private.AllowPeers, []string{"a", "b"}) || n.RelayService.Limit.Data != 1000 ||
		n.Network != "lan" || got.LogLevel != "debug" || got.Relay.RateLimit != 5 { // the environment wins over the file
		t.Fatalf("environment and file not bound: %+v / rate %v / log %q", n, got.Relay.RateLimit, got.LogLevel)
	}
}

// sameConfig compares two run configs as their packages see them (an
// empty list and no list are the same).
func sameConfig(a, b *runConfig) bool {
	x, y := *a, *b
	for _, c := range []*[]string{&x.Node.Host.Announce, &x.Node.Discovery.Bootstrap, &x.Node.Private.AllowPeers,
		&x.Node.RelayService.AllowReserve, &x.Transport.AllowedOrigins, &x.Transport.TrustedProxies, &x.Admin.AllowedHosts,
		&y.Node.Host.Announce, &y.Node.Discovery.Bootstrap, &y.Node.Private.AllowPeers, &y.Node.RelayService.AllowReserve,
		&y.Transport.AllowedOrigins, &y.Transport.TrustedProxies, &y.Admin.AllowedHosts} {
		if len(*c) == 0 {
			*c = nil
		}
	}
	return reflect.DeepEqual(x, y)
}

// TestRunFlagsHaveCategories: every visible flag of run is listed under a
// --help category.
func TestRunFlagsHaveCategories(t *testing.T) {
	for _, f := range runFlags(defaultRunConfig()).flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		c, ok := f.(cli.CategorizableFlag)
		if !ok || c.GetCategory() == "" {
			t.Errorf("flag --%s has no category", f.Names()[0])
		}
	}
}
