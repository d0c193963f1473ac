package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/transport"
)

// shutdownTimeout bounds the whole graceful shutdown.
const shutdownTimeout = 5 * time.Second

// runConfig is what run is configured with; every run flag is bound to
// one of its fields (runFlags).
type runConfig struct {
	Transport   transport.Config
	Relay       relay.Config
	Node        node.Config
	Admin       admin.Config
	Standalone  bool
	PprofListen string
	LogLevel    string
	LogFormat   string

	NodeJWTKey      string // --node-jwt-key
	NodeJWTAudience string // --node-jwt-audience

	History        history.Config // Dir is <data-dir>/history
	HistoryEnabled bool           // --history

	// args and values: the command line and its flags' values, for
	// SIGHUP (reload.go); nil args: SIGHUP reloads the TLS files only.
	args   []string
	values map[string]string
}

func defaultRunConfig() *runConfig {
	return &runConfig{
		Transport: transport.DefaultConfig(),
		Relay:     relay.DefaultConfig(),
		Node:      node.DefaultConfig(),
		Admin:     admin.DefaultConfig(),
		History:   history.DefaultConfig(),
		LogLevel:  "info",

		HistoryEnabled: true,
		LogFormat:      "text",
	}
}

func runCommand() *cli.Command {
	cfg := defaultRunConfig()
	flags := runFlags(cfg)
	return &cli.Command{
		Name:   "run",
		Usage:  "run a relay",
		Flags:  flags.flags,
		Before: func(c *cli.Context) error { return loadConfig(c, flags.flags) },
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("run takes no arguments, got %q", c.Args().First())
			}
			flags.bind()
			cfg.args, cfg.values = os.Args, flagValues(c, flags.flags)
			log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return run(ctx, cfg, log)
		},
	}
}

// checkAdmin checks the admin listener of --admin-listen and --admin-token
// before anything starts: a listener beyond loopback without a token is
// refused.
func checkAdmin(cfg admin.Config) error {
	if err := cfg.Validate(); err != nil {
		if errors.Is(err, admin.ErrTokenRequired) {
			return fmt.Errorf("--admin-listen %s is reachable beyond loopback: set --admin-token (or GSIO_RELAY_ADMIN_TOKEN), or listen on 127.0.0.1", cfg.Listen)
		}
		return fmt.Errorf("--admin-listen: %w", err)
	}
	return nil
}

// closers are the started components, closed in reverse order.
type closers []struct {
	name  string
	close func(context.Context) error
}

func (cs *closers) push(name string, close func(context.Context) error) {
	*cs = append(*cs, struct {
		name  string
		close func(context.Context) error
	}{name, close})
}

// closeAll closes the components in reverse order, each within ctx, and
// joins their errors.
func (cs closers) closeAll(ctx context.Context) error {
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		if err := cs[i].close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", cs[i].name, err))
		}
	}
	return errors.Join(errs...)
}

// closeWithin runs close, a Close without a context, and returns its error,
// or ctx's when ctx ends first: then the shutdown deadline has passed, run
// returns and the process exits, and close is left to finish in the one
// goroutine run does not wait for.
func closeWithin(ctx context.Context, close func() error) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run starts node, router, WebSocket server, admin server (and pprof),
// runs until ctx ends or a component's goroutine in the errgroup fails,
// and closes the components in reverse order within shutdownTimeout.
func run(ctx context.Context, cfg *runConfig, log *slog.Logger) error {
	started := time.Now()
	if err := checkAdmin(cfg.Admin); err != nil {
		return err
	}
	if u := cfg.Node.Presence.PublicWSURL; u != "" {
		if err := node.CheckWSURL(u); err != nil {
			return fmt.Errorf("--public-ws-url %w", err)
		}
	}
	// Every frame the WebSocket side accepts must fit the federation,
	// with room for a relay-assigned message_id.
	cfg.Node.MaxMessageSize = max(cfg.Node.MaxMessageSize, int(cfg.Transport.MaxMessageSize)+4<<10)
	// --max-message-size bounds broadcasts; direct messages (ledger sync
	// answers) may be up to --max-direct-size: the WebSocket side reads
	// frames up to that, holds the bytes beyond a broadcast's size in its
	// large-message budget, and a send queue takes at least one of them.
	cfg.Relay.MaxBroadcastSize = int(cfg.Transport.MaxMessageSize)
	cfg.Relay.MaxDirectSize = max(cfg.Relay.MaxDirectSize, cfg.Relay.MaxBroadcastSize)
	cfg.Node.MaxDirectSize = max(cfg.Node.MaxMessageSize, cfg.Relay.MaxDirectSize+4<<10)
	cfg.Transport.LargeMessageThreshold = cfg.Transport.MaxMessageSize
	cfg.Transport.MaxMessageSize = int64(cfg.Relay.MaxDirectSize)
	cfg.Transport.SendQueueBytes = max(cfg.Transport.SendQueueBytes, cfg.Relay.MaxDirectSize+64<<10)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	g, gctx := errgroup.WithContext(ctx)
	var up closers
	// stop closes what started, within the deadline, and waits for the
	// errgroup's goroutines (their servers are closed by then).
	stop := func(err error) error {
		closeCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		return errors.Join(err, up.closeAll(closeCtx), g.Wait())
	}

	var hist admin.HistoryStats // nil: /api/v1/history says the relay keeps none
	var store *history.Store
	if cfg.HistoryEnabled {
		var err error
		if store, err = openHistory(cfg, log); err != nil {
			return stop(err)
		}
		// Pushed before the node and the WebSocket server: closed after
		// them (the node's reconciliation reads it).
		up.push("history", func(context.Context) error { return store.Close() })
		hist = store
		reg.MustRegister(newHistoryCollector(store))
	}
	var mesh relay.Mesh
	var nd *node.Node
	rm := relay.NewMetrics(reg)
	if !cfg.Standalone {
		nopts := []node.Option{node.WithLogger(log), node.WithRegisterer(reg),
			node.WithCounters(admin.RouterCounters(rm)), node.WithVersion(version)}
		if store != nil {
			// Reconciliation compares what the history keeps.
			cfg.Node.Sync.Window = cfg.History.Retention
			nopts = append(nopts, node.WithHistory(store))
		}
		var err error
		if nd, err = node.New(ctx, cfg.Node, nopts...); err != nil {
			return stop(err)
		}
		up.push("node", func(ctx context.Context) error { return closeWithin(ctx, nd.Close) })
		mesh = nd
	}
	ropts, err := identityOptions(cfg, nd)
	if err != nil {
		return stop(err)
	}
	ropts = append(ropts, relay.WithLogger(log), relay.WithMetrics(rm))
	if store != nil {
		ropts = append(ropts, relay.WithHistory(store))
	}
	router, err := relay.New(cfg.Relay, mesh, ropts...)
	if err != nil {
		return stop(err)
	}
	up.push("router", router.Close)
	if nd != nil {
		if err := nd.Start(router); err != nil {
			return stop(err)
		}
		log.Info("federation up", "peer", nd.ID(), "addrs", nd.Addrs(), "network", cfg.Node.Network)
	}
	// The router's sessions take the connections' frames: transport and
	// relay meet only here.
	open := func(c *transport.Conn) transport.Session { return router.Open(c) }
	ws, err := transport.New(cfg.Transport, open, transport.WithLogger(log), transport.WithMetrics(transport.NewMetrics(reg)))
	if err != nil {
		return stop(err)
	}
	src := &admin.RelaySource{Node: nd, Router: router, WS: ws, Version: version, Started: started}
	drain := newDrainer(router, nd, cfg.Node.Presence.PublicWSURL, log)
	adm, err := admin.New(cfg.Admin, admin.WithLogger(log), admin.WithSource(src), admin.WithMetrics(reg),
		admin.WithHistory(hist), admin.WithDrainer(drain))
	if err != nil {
		return stop(err)
	}
	if cfg.PprofListen != "" {
		srv, err := listenPprof(cfg.PprofListen, log)
		if err != nil {
			return stop(err)
		}
		g.Go(srv.serve)
		up.push("pprof", func(context.Context) error { return srv.close() })
	}
	if err := ws.Start(); err != nil {
		return stop(err)
	}
	up.push("websocket", ws.Close)
	if err := adm.Start(); err != nil {
		return stop(err)
	}
	up.push("admin", adm.Close)
	g.Go(func() error { return drain.wait(gctx) })
	log.Info("relay up", "ws", ws.Addr().String(), "admin", adm.Addr().String(), "version", version)

	// SIGHUP reloads the TLS certificate and key (they are also reloaded
	// when their files change) and the live limits of the configuration
	// (reload.go); connections are kept.
	var rl *reloader
	if cfg.args != nil {
		rl = &reloader{args: cfg.args, values: cfg.values, started: cfg, ws: ws, router: router, log: log}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case <-gctx.Done():
			done = true
		case <-drain.done:
			done = true
		case <-hup:
			if err := ws.ReloadTLS(); err != nil {
				log.Error("SIGHUP: TLS reload failed; the old certificate stays", "err", err)
			} else if cfg.Transport.TLSCertFile != "" {
				log.Info("SIGHUP: TLS certificate reloaded")
			}
			if rl != nil {
				rl.reload()
			}
		}
	}
	log.Info("shutting down")
	if err := stop(nil); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// identityOptions gives the router what node authentication needs: the
// relay's peer ID (the "relay" of key-id challenges; a standalone relay
// loads or creates its identity in --data-dir for it) and the node-token
// verifier of --node-jwt-key.
func identityOptions(cfg *runConfig, nd *node.Node) ([]relay.Option, error) {
	var id peer.ID
	if nd != nil {
		id = nd.ID()
	} else {
		key, err := node.LoadOrCreateIdentity(cfg.Node.DataDir)
		if err != nil {
			return nil, err
		}
		if id, err = peer.IDFromPrivateKey(key); err != nil {
			return nil, fmt.Errorf("peer id of the relay identity: %w", err)
		}
	}
	opts := []relay.Option{relay.WithRelayPeerID(id.String())}
	if cfg.NodeJWTKey != "" {
		v, err := nodeauth.LoadJWTKey(cfg.NodeJWTKey, cfg.NodeJWTAudience)
		if err != nil {
			return nil, fmt.Errorf("--node-jwt-key: %w", err)
		}
		opts = append(opts, relay.WithJWTVerifier(v))
	} else if cfg.NodeJWTAudience != "" {
		return nil, errors.New("--node-jwt-audience needs --node-jwt-key")
	}
	return opts, nil
}

// openHistory opens the broadcast store in <data-dir>/history. A store
// that cannot be read back is moved aside (nothing is deleted) and a new,
// empty one is opened: the relay runs with its history incomplete rather
// than not at all.
func openHistory(cfg *runConfig, log *slog.Logger) (*history.Store, error) {
	hc := cfg.History
	hc.Dir = filepath.Join(cfg.Node.DataDir, "history")
	opts := []history.Option{history.WithLogger(log.With("component", "history"))}
	store, err := history.Open(hc, opts...)
	var corrupt *history.CorruptError
	if errors.As(err, &corrupt) {
		moved, merr := history.MoveAside(hc.Dir)
		if merr != nil {
			return nil, fmt.Errorf("history store %s is corrupt (%v) and could not be moved aside: %w", hc.Dir, err, merr)
		}
		log.Error("history store corrupt: moved aside, starting with an empty history", "dir", hc.Dir, "moved_to", moved, "err", err)
		store, err = history.Open(hc, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("history store (--history=false runs without): %w", err)
	}
	return store, nil
}
