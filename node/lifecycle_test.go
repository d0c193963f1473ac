package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
)

func TestLifecycle(t *testing.T) {
	cfg := testConfig(t)
	n, err := New(context.Background(), cfg, WithLogger(testutil.Logger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Broadcast(envelope(t, "X", "1", "s", "", `{}`)); !errors.Is(err, errNotStarted) {
		t.Fatalf("Broadcast before Start: %v", err)
	}
	if len(n.Addrs()) == 0 || !strings.Contains(n.Addrs()[0].String(), "/p2p/"+n.ID().String()) {
		t.Fatalf("Addrs: %v", n.Addrs())
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.Start(&recorder{}); !errors.Is(err, errClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	if n.Direct(envelope(t, "X", "1", "s", "r", `{}`)) {
		t.Fatal("Direct after Close")
	}
	n.NodeJoined("x", nil) // must not block or panic
	n.NodeLeft("x")
}

func TestConfigErrors(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"listen":    func(c *Config) { c.Host.ListenAddrs = []string{"tcp/4001"} },
		"bootstrap": func(c *Config) { c.Discovery.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"} }, // no /p2p
		"network":   func(c *Config) { c.Network = "a/b" },
		"interval":  func(c *Config) { c.Presence.Interval = time.Minute },
	} {
		cfg := testConfig(t)
		mod(&cfg)
		if n, err := New(context.Background(), cfg); err == nil {
			n.Close()
			t.Errorf("%s: New accepted a bad config", name)
		}
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	n, err := New(context.Background(), testConfig(t), WithLogger(testutil.Logger()), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "gsio_node_directory_nodes" {
			found = true
		}
	}
	if !found {
		t.Fatal("gsio_node_directory_nodes not registered")
	}
	// A second node on the same registry: a clear error, nothing leaked.
	if n2, err := New(context.Background(), testConfig(t), WithLogger(testutil.Logger()), WithRegisterer(reg)); err == nil {
		n2.Close()
		t.Fatal("duplicate registration accepted")
	}
}

// TestConfigErrorsNameFlags: validation and parse errors name the
// operator's flag, not the Go field.
func TestConfigErrorsNameFlags(t *testing.T) {
	for want, mod := range map[string]func(*Config){
		"--presence-interval":      func(c *Config) { c.Presence.Interval = time.Minute },
		"--p2p-listen":             func(c *Config) { c.Host.ListenAddrs = []string{"tcp/4001"} },
		"--bootstrap":              func(c *Config) { c.Discovery.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"} },
		"--relay-circuit-data":     func(c *Config) { c.RelayService.Limit.Data = 0 },
		"--relay-circuit-duration": func(c *Config) { c.RelayService.Limit = nil },
		"--publish-queue":          func(c *Config) { c.Publish.QueueSize = 0 },
		"--allow-relay-clients":    func(c *Config) { c.Private.AllowRelayClients = true },
		"--network":                func(c *Config) { c.Network = "" },
		"--gossip-sign":            func(c *Config) { c.Gossip.Sign = false },
	} {
		cfg := DefaultConfig()
		mod(&cfg)
		_, err := cfg.parse()
		err = errors.Join(cfg.validate(), err)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", want, err, want)
		}
	}
	if _, err := DefaultConfig().parse(); err != nil || DefaultConfig().validate() != nil {
		t.Fatalf("DefaultConfig: %v, %v", err, DefaultConfig().validate())
	}
}
