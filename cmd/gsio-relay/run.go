package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/gsio-net/gsio-relay/admin"
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/relay"
	"github.com/gsio-net/gsio-relay/transport"
)

// shutdownTimeout bounds the whole graceful shutdown.
const shutdownTimeout = 5 * time.Second

func runFlags() []cli.Flag {
	t, r, n, a := transport.DefaultConfig(), relay.DefaultConfig(), node.DefaultConfig(), admin.DefaultConfig()
	str := func(name, value, usage string) cli.Flag {
		return altsrc.NewStringFlag(&cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: envName(name)})
	}
	strs := func(name string, value []string, usage string) cli.Flag {
		return altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: name, Value: cli.NewStringSlice(value...), Usage: usage, EnvVars: envName(name)})
	}
	num := func(name string, value int, usage string) cli.Flag {
		return altsrc.NewIntFlag(&cli.IntFlag{Name: name, Value: value, Usage: usage, EnvVars: envName(name)})
	}
	dur := func(name string, value time.Duration, usage string) cli.Flag {
		return altsrc.NewDurationFlag(&cli.DurationFlag{Name: name, Value: value, Usage: usage, EnvVars: envName(name)})
	}
	boolean := func(name string, value bool, usage string) cli.Flag {
		return altsrc.NewBoolFlag(&cli.BoolFlag{Name: name, Value: value, Usage: usage, EnvVars: envName(name)})
	}
	flags := []cli.Flag{
		configFlag,
		// WebSocket side.
		str("ws-listen", t.Listen, "WebSocket listen `ADDR` (upgrades on / and /ws)"),
		num("max-message-size", int(t.MaxMessageSize), "largest client message in `BYTES` (larger: close 1009)"),
		num("max-conns", t.MaxConns, "WebSocket connections in all"),
		num("max-conns-per-ip", t.MaxConnsPerIP, "WebSocket connections per remote IP"),
		num("send-queue", t.SendQueueFrames, "messages queued to one client before it is dropped as a slow consumer (1008)"),
		num("send-queue-bytes", t.SendQueueBytes, "bytes queued to one client before it is dropped as a slow consumer (1008)"),
		dur("ping-interval", t.PingInterval, "interval of keepalive pings to clients"),
		dur("pong-timeout", t.PongTimeout, "a client silent this long (no frame, no pong) is disconnected"),
		dur("write-timeout", t.WriteTimeout, "deadline of one write to a client"),
		dur("read-header-timeout", t.ReadHeaderTimeout, "deadline for the upgrade request's headers"),
		strs("allowed-origins", t.AllowedOrigins, "allowed Origin `ORIGIN` of browser clients (repeatable; default any)"),
		str("ws-tls-cert", "", "TLS certificate `FILE` (PEM) to serve wss"),
		str("ws-tls-key", "", "TLS key `FILE` (PEM) to serve wss"),
		str("auth-token", "", "require this bearer `TOKEN` (Authorization header or ?token=) from clients"),
		// Routing.
		boolean("echo", r.Echo, "deliver broadcasts back to their sender too"),
		num("rate-limit", int(r.RateLimit), "messages per second per connection"),
		num("rate-burst", r.RateBurst, "burst of messages above the rate per connection"),
		num("dedup-size", r.DedupSize, "(sender_id, message_id) pairs remembered to drop duplicates"),
		dur("dedup-ttl", r.DedupTTL, "how long a (sender_id, message_id) pair is remembered"),
		// Federation.
		boolean("standalone", false, "run without libp2p: a single relay, no federation"),
		str("data-dir", n.DataDir, "directory of the relay's identity.key"),
		str("network", n.Network, "federation `NAME`: relays federate only within one network"),
		strs("p2p-listen", n.Host.ListenAddrs, "libp2p listen `MULTIADDR` (repeatable)"),
		strs("announce", nil, "libp2p `MULTIADDR` to announce instead of the listen addresses (repeatable)"),
		strs("bootstrap", nil, "relay `MULTIADDR` with /p2p/ID to dial and keep connected (repeatable)"),
		boolean("mdns", n.Discovery.EnableMDNS, "find relays of the same network on the local network (mDNS) and connect to them"),
		boolean("gossip-sign", n.Gossip.Sign, "sign every gossip message with the relay's key (StrictSign); false: StrictNoSign, faster but unauthenticated, for closed federations only; every relay of a network must agree"),
		boolean("dht", n.Discovery.EnableDHT, "join the federation DHT (/gsio/kad/1.0.0) through the bootstrap relays, advertise this relay at the network's rendezvous and connect to the relays found there"),
		// NAT traversal: circuit relay v2 service, AutoNAT, hole punching.
		boolean("relay-service", n.RelayService.Enable, "serve circuit relay v2 (hop) to libp2p peers behind NAT"),
		num("relay-max-reservations", n.RelayService.MaxReservations, "relay v2 reservations held at once"),
		num("relay-max-reservations-per-ip", n.RelayService.MaxReservationsPerIP, "relay v2 reservations from one IP address"),
		num("relay-max-reservations-per-asn", n.RelayService.MaxReservationsPerASN, "relay v2 reservations from one autonomous system (IPv6 only)"),
		num("relay-max-circuits", n.RelayService.MaxCircuits, "open relayed connections of one peer, as source or destination"),
		dur("relay-circuit-duration", n.RelayService.Limit.Duration, "a relayed connection is cut after this long"),
		num("relay-circuit-data", int(n.RelayService.Limit.Data), "a relayed connection is cut after this many `BYTES` in either direction"),
		dur("relay-reservation-ttl", n.RelayService.ReservationTTL, "lifetime of a relay v2 reservation (clients refresh it)"),
		strs("relay-allow-reserve", nil, "only this `PEER_ID` may reserve a relay slot (repeatable; default anyone)"),
		str("reachability", n.NAT.Reachability, "`MODE` public: the relay is reachable, its relay service runs whatever AutoNAT concludes; auto: AutoNAT decides"),
		boolean("autonat-service", n.NAT.EnableAutoNATService, "answer other peers' AutoNAT (v1 and v2) reachability checks"),
		boolean("hole-punching", n.NAT.EnableHolePunching, "hole punching (DCUtR) for this relay's own connections"),
		// Private federation.
		str("swarm-key", "", "pre-shared key `FILE` (/key/swarm/psk/1.0.0/): only peers with the same key can connect; disables QUIC"),
		strs("allow-peer", nil, "connect only with this `PEER_ID` (repeatable; bootstrap peers are allowed too): everyone else is refused, relay-service clients included"),
		boolean("allow-relay-clients", false, "with --allow-peer: let unlisted peers connect as clients of the relay service (no gossip, direct streams or DHT for them)"),
		// Admin.
		str("admin-listen", a.Listen, "admin HTTP listen `ADDR` (/api/v1/…, /metrics, /healthz, /readyz); beyond loopback it needs --admin-token"),
		str("admin-token", "", "require this bearer `TOKEN` on the admin API and /metrics (not /healthz, /readyz)"),
		// Profiling (hidden; cmd/gsio-bench uses it): net/http/pprof on a loopback ADDR.
		altsrc.NewStringFlag(&cli.StringFlag{Name: "pprof-listen", Hidden: true, Usage: "serve net/http/pprof on loopback `ADDR`", EnvVars: envName("pprof-listen")}),
	}
	return append(flags, logFlags()...)
}

func runCommand() *cli.Command {
	flags := runFlags()
	return &cli.Command{
		Name:   "run",
		Usage:  "run a relay",
		Flags:  flags,
		Before: func(c *cli.Context) error { return loadConfig(c, flags) },
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("run takes no arguments, got %q", c.Args().First())
			}
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return run(ctx, c, log)
		},
	}
}

func transportConfig(c *cli.Context) transport.Config {
	t := transport.DefaultConfig()
	t.Listen = c.String("ws-listen")
	t.MaxMessageSize = int64(c.Int("max-message-size"))
	t.MaxConns = c.Int("max-conns")
	t.MaxConnsPerIP = c.Int("max-conns-per-ip")
	t.SendQueueFrames = c.Int("send-queue")
	t.SendQueueBytes = c.Int("send-queue-bytes")
	t.PingInterval = c.Duration("ping-interval")
	t.PongTimeout = c.Duration("pong-timeout")
	t.WriteTimeout = c.Duration("write-timeout")
	t.ReadHeaderTimeout = c.Duration("read-header-timeout")
	t.AllowedOrigins = c.StringSlice("allowed-origins")
	t.TLSCertFile = c.String("ws-tls-cert")
	t.TLSKeyFile = c.String("ws-tls-key")
	t.AuthToken = c.String("auth-token")
	return t
}

func relayConfig(c *cli.Context) relay.Config {
	r := relay.DefaultConfig()
	r.Echo = c.Bool("echo")
	r.RateLimit = float64(c.Int("rate-limit"))
	r.RateBurst = c.Int("rate-burst")
	r.DedupSize = c.Int("dedup-size")
	r.DedupTTL = c.Duration("dedup-ttl")
	return r
}

func nodeConfig(c *cli.Context) node.Config {
	n := node.DefaultConfig()
	n.DataDir = c.String("data-dir")
	n.Network = c.String("network")
	n.Host.ListenAddrs = c.StringSlice("p2p-listen")
	n.Host.Announce = c.StringSlice("announce")
	n.Discovery.Bootstrap = c.StringSlice("bootstrap")
	n.Discovery.EnableMDNS = c.Bool("mdns")
	n.Discovery.EnableDHT = c.Bool("dht")
	n.Gossip.Sign = c.Bool("gossip-sign")
	n.RelayService.Enable = c.Bool("relay-service")
	n.RelayService.MaxReservations = c.Int("relay-max-reservations")
	n.RelayService.MaxReservationsPerIP = c.Int("relay-max-reservations-per-ip")
	n.RelayService.MaxReservationsPerASN = c.Int("relay-max-reservations-per-asn")
	n.RelayService.MaxCircuits = c.Int("relay-max-circuits")
	n.RelayService.Limit.Duration = c.Duration("relay-circuit-duration")
	n.RelayService.Limit.Data = int64(c.Int("relay-circuit-data"))
	n.RelayService.ReservationTTL = c.Duration("relay-reservation-ttl")
	n.RelayService.AllowReserve = c.StringSlice("relay-allow-reserve")
	n.NAT.Reachability = c.String("reachability")
	n.NAT.EnableAutoNATService = c.Bool("autonat-service")
	n.NAT.EnableHolePunching = c.Bool("hole-punching")
	n.Private.SwarmKey = c.String("swarm-key")
	n.Private.AllowPeers = c.StringSlice("allow-peer")
	n.Private.AllowRelayClients = c.Bool("allow-relay-clients")
	// Every frame the WebSocket side accepts must fit the federation,
	// with room for a relay-assigned message_id.
	n.MaxMessageSize = max(n.MaxMessageSize, c.Int("max-message-size")+4<<10)
	return n
}

// adminConfig is the admin listener of --admin-listen and --admin-token,
// checked before anything starts: a listener beyond loopback without a
// token is refused.
func adminConfig(c *cli.Context) (admin.Config, error) {
	cfg := admin.Config{Listen: c.String("admin-listen"), Token: c.String("admin-token")}
	if err := cfg.Validate(); err != nil {
		if errors.Is(err, admin.ErrTokenRequired) {
			return cfg, fmt.Errorf("--admin-listen %s is reachable beyond loopback: set --admin-token (or GSIO_RELAY_ADMIN_TOKEN), or listen on 127.0.0.1", cfg.Listen)
		}
		return cfg, fmt.Errorf("--admin-listen: %w", err)
	}
	return cfg, nil
}

// run starts node, router, WebSocket server and admin server, waits for ctx
// to end, and stops them in reverse order.
func run(ctx context.Context, c *cli.Context, log *slog.Logger) error {
	started := time.Now()
	admCfg, err := adminConfig(c)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var mesh relay.Mesh
	var nd *node.Node
	if !c.Bool("standalone") {
		nd, err = node.New(ctx, nodeConfig(c), node.WithLogger(log), node.WithRegisterer(reg))
		if err != nil {
			return err
		}
		defer nd.Close()
		mesh = nd
	}
	router, err := relay.New(relayConfig(c), mesh, relay.WithLogger(log), relay.WithMetrics(relay.NewMetrics(reg)))
	if err != nil {
		return err
	}
	if nd != nil {
		if err := nd.Start(router); err != nil {
			return err
		}
		log.Info("federation up", "peer", nd.ID(), "addrs", nd.Addrs(), "network", c.String("network"))
	}
	ws, err := transport.New(transportConfig(c), router, transport.WithLogger(log), transport.WithMetrics(transport.NewMetrics(reg)))
	if err != nil {
		return err
	}
	src := &admin.RelaySource{Node: nd, Router: router, WS: ws, Version: version, Started: started}
	adm, err := admin.New(admCfg, admin.WithLogger(log), admin.WithSource(src), admin.WithMetrics(reg))
	if err != nil {
		return err
	}
	if addr := c.String("pprof-listen"); addr != "" {
		stopPprof, err := startPprof(addr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	if err := ws.Start(); err != nil {
		return err
	}
	if err := adm.Start(); err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = ws.Close(closeCtx)
		return err
	}
	log.Info("relay up", "ws", ws.Addr().String(), "admin", adm.Addr().String(), "version", version)

	<-ctx.Done()
	log.Info("shutting down")
	closeCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	wsErr := ws.Close(closeCtx)
	admErr := adm.Close(closeCtx)
	if err := errors.Join(wsErr, admErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
