package main

import (
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
)

// flagSet declares flags bound to config fields: a flag's default is its
// field's value when it is declared, and the parsed value lands in the
// field (Destination). Every flag is also the environment variable
// envName(name) and a key of the --config file (altsrc). Declare the flags
// of one --help category after setting cat.
type flagSet struct {
	cat   string
	flags []cli.Flag
	// after copies into fields what cli cannot bind directly: string
	// slices (cli.StringSlice) and int flags of float64 fields. bind runs
	// them once the flags are parsed.
	after []func()
}

func (f *flagSet) add(fl cli.Flag) { f.flags = append(f.flags, fl) }

// bind completes the fields once the flags (and --config) are applied.
func (f *flagSet) bind() {
	for _, a := range f.after {
		a()
	}
}

func (f *flagSet) str(name string, p *string, usage string) {
	f.add(altsrc.NewStringFlag(&cli.StringFlag{Name: name, Value: *p, Destination: p, Usage: usage, EnvVars: envName(name), Category: f.cat}))
}

func (f *flagSet) strs(name string, p *[]string, usage string) {
	dest := cli.NewStringSlice()
	f.add(altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: name, Value: cli.NewStringSlice(*p...), Destination: dest, Usage: usage, EnvVars: envName(name), Category: f.cat}))
	f.after = append(f.after, func() { *p = dest.Value() })
}

func (f *flagSet) num(name string, p *int, usage string) {
	f.add(altsrc.NewIntFlag(&cli.IntFlag{Name: name, Value: *p, Destination: p, Usage: usage, EnvVars: envName(name), Category: f.cat}))
}

func (f *flagSet) num64(name string, p *int64, usage string) {
	f.add(altsrc.NewInt64Flag(&cli.Int64Flag{Name: name, Value: *p, Destination: p, Usage: usage, EnvVars: envName(name), Category: f.cat}))
}

// rate is an int flag of a float64 field (a rate given in whole units).
func (f *flagSet) rate(name string, p *float64, usage string) {
	v := int(*p)
	f.add(altsrc.NewIntFlag(&cli.IntFlag{Name: name, Value: v, Destination: &v, Usage: usage, EnvVars: envName(name), Category: f.cat}))
	f.after = append(f.after, func() { *p = float64(v) })
}

func (f *flagSet) dur(name string, p *time.Duration, usage string) {
	f.add(altsrc.NewDurationFlag(&cli.DurationFlag{Name: name, Value: *p, Destination: p, Usage: usage, EnvVars: envName(name), Category: f.cat}))
}

func (f *flagSet) boolean(name string, p *bool, usage string) {
	f.add(altsrc.NewBoolFlag(&cli.BoolFlag{Name: name, Value: *p, Destination: p, Usage: usage, EnvVars: envName(name), Category: f.cat}))
}

// hidden is a string flag left out of --help.
func (f *flagSet) hidden(name string, p *string, usage string) {
	f.add(altsrc.NewStringFlag(&cli.StringFlag{Name: name, Value: *p, Destination: p, Usage: usage, EnvVars: envName(name), Hidden: true}))
}

// runFlags declares the flags of run, each bound to its field of cfg. The
// flag names, defaults and meanings are a public contract.
func runFlags(cfg *runConfig) *flagSet {
	t, r, n, a := &cfg.Transport, &cfg.Relay, &cfg.Node, &cfg.Admin
	f := &flagSet{}
	f.add(configFlag)

	f.cat = "WebSocket"
	f.str("ws-listen", &t.Listen, "WebSocket listen `ADDR` (upgrades on / and /ws)")
	f.num64("max-message-size", &t.MaxMessageSize, "largest broadcast in `BYTES` (larger: RelayError too_large)")
	f.num("max-direct-size", &r.MaxDirectSize, "largest direct message in `BYTES`, the whole frame (larger: close 1009)")
	f.num64("large-message-budget", &t.LargeMessageBudget, "`BYTES` of messages over --max-message-size being read at once, over all clients (more: close 1013)")
	f.num("max-conns", &t.MaxConns, "WebSocket connections in all")
	f.num("max-conns-per-ip", &t.MaxConnsPerIP, "WebSocket connections per remote IP")
	f.num("send-queue", &t.SendQueueFrames, "messages queued to one client before it is dropped as a slow consumer (1008)")
	f.num("send-queue-bytes", &t.SendQueueBytes, "bytes queued to one client before it is dropped as a slow consumer (1008)")
	f.dur("ping-interval", &t.PingInterval, "interval of keepalive pings to clients")
	f.dur("pong-timeout", &t.PongTimeout, "a client silent this long (no frame, no pong) is disconnected")
	f.dur("write-timeout", &t.WriteTimeout, "deadline of one write to a client")
	f.dur("read-header-timeout", &t.ReadHeaderTimeout, "deadline for the upgrade request's headers")
	f.strs("allowed-origins", &t.AllowedOrigins, "allowed Origin `ORIGIN` of browser clients (repeatable; default any)")
	f.str("ws-tls-cert", &t.TLSCertFile, "TLS certificate `FILE` (PEM) to serve wss")
	f.str("ws-tls-key", &t.TLSKeyFile, "TLS key `FILE` (PEM) to serve wss")
	f.strs("trusted-proxies", &t.TrustedProxies, "reverse proxy `CIDR` (repeatable) whose X-Forwarded-For or PROXY protocol (v1/v2) header names the client, for limits, logs and the admin API")
	f.str("auth-token", &t.AuthToken, "require this bearer `TOKEN` (Authorization header or ?token=) from clients")

	f.cat = "Routing"
	f.boolean("echo", &r.Echo, "deliver broadcasts back to their sender too")
	f.rate("rate-limit", &r.RateLimit, "messages per second per connection")
	f.num("rate-burst", &r.RateBurst, "burst of messages above the rate per connection")
	f.num("dedup-size", &r.DedupSize, "(sender_id, message_id) pairs remembered to drop duplicates")
	f.dur("dedup-ttl", &r.DedupTTL, "how long a (sender_id, message_id) pair is remembered")
	f.num("node-list-max-bytes", &r.NodeListMaxBytes, "node ids in one NodeListResponse answer, sent in pages of 64 KiB (`BYTES`)")

	f.cat = "History"
	f.boolean("history", &cfg.HistoryEnabled, "keep every broadcast in <data-dir>/history for HistoryRequest and ?since_ms= resume")
	f.dur("history-retention", &cfg.History.Retention, "how long broadcasts are kept")
	f.dur("mailbox-ttl", &r.MailboxTTL, "a direct message for a node connected nowhere is kept when the node was connected within this")
	f.num("mailbox-max", &r.MailboxMax, "direct messages kept per absent recipient (more: RelayError mailbox_full; 0: no mailboxes)")
	f.num64("history-max-bytes", &cfg.History.MaxBytes, "size of the history store in `BYTES`; the oldest are dropped first")
	f.boolean("sync", &n.Sync.Enable, "reconcile the history with relay peers (/gsio/sync/1.0.0) when they connect, after a restart and every --sync-interval, so that partitions heal completely")
	f.dur("sync-interval", &n.Sync.Interval, "a reconciliation with one relay peer at random this often (±25 %)")
	f.dur("sync-settle", &n.Sync.Settle, "the most recent stretch of history a reconciliation leaves out (live gossip still arriving)")
	f.dur("sync-timeout", &n.Sync.Timeout, "bound of one reconciliation session")
	f.num("sync-max-sessions", &n.Sync.MaxSessions, "reconciliation sessions at once, all peers (one per peer)")

	f.cat = "Node identity"
	f.str("node-auth", &r.NodeAuth, "`open`: key ids prove their key, other ids bind as they come; required: every connection proves its id by key or token")
	f.dur("bind-timeout", &r.BindTimeout, "a connection that has not bound a node id this long is closed (4001)")
	f.str("node-jwt-key", &cfg.NodeJWTKey, "accept node tokens (JWT) checked with this `FILE`: a PEM public key (EdDSA, ES256, RS256) or an HMAC secret (HS256)")
	f.str("node-jwt-audience", &cfg.NodeJWTAudience, "when set, node tokens must name this `AUDIENCE` in aud")

	f.cat = "Federation"
	f.boolean("standalone", &cfg.Standalone, "run without libp2p: a single relay, no federation")
	f.str("data-dir", &n.DataDir, "directory of the relay's identity.key")
	f.str("network", &n.Network, "federation `NAME`: relays federate only within one network")
	f.strs("p2p-listen", &n.Host.ListenAddrs, "libp2p listen `MULTIADDR` (repeatable)")
	f.strs("announce", &n.Host.Announce, "libp2p `MULTIADDR` to announce instead of the listen addresses (repeatable)")
	f.strs("bootstrap", &n.Discovery.Bootstrap, "relay `MULTIADDR` with /p2p/ID to dial and keep connected (repeatable)")
	f.boolean("mdns", &n.Discovery.EnableMDNS, "find relays of the same network on the local network (mDNS) and connect to them")
	f.boolean("gossip-sign", &n.Gossip.Sign, "sign every gossip message with the relay's key (StrictSign); false: StrictNoSign, faster but unauthenticated, for closed federations only; every relay of a network must agree")
	f.boolean("inspect", &n.Inspect.Enable, "answer other relays of the federation on /gsio/inspect/1.0.0 (a read-only summary for their /ui and mesh)")
	f.rate("inspect-rate", &n.Inspect.Rate, "inspection requests per second answered to one relay")
	f.num("inspect-burst", &n.Inspect.Burst, "burst of inspection requests above --inspect-rate answered to one relay")
	f.str("public-ws-url", &n.Presence.PublicWSURL, "this relay's public WebSocket `URL` (ws:// or wss://), announced to the federation: where a draining relay sends its nodes")
	f.boolean("allow-private-addrs", &n.Presence.AllowPrivateAddrs, "dial loopback, private and link-local addresses other relays announce in presence (a federation on one host or LAN); default: drop them")
	f.rate("gossip-origin-rate", &n.Gossip.OriginRate, "broadcasts per second one origin (a relay, or the peer that hands us a plain peer's messages) may push into the federation; more are ignored")
	f.num("gossip-origin-burst", &n.Gossip.OriginBurst, "burst of broadcasts above --gossip-origin-rate per origin (at least 1024, a whole batch)")
	f.rate("gossip-peer-rate", &n.Gossip.PeerRate, "gossip messages per second one peer may hand this relay for validation (a batch is one); more are dropped unvalidated")
	f.boolean("dht", &n.Discovery.EnableDHT, "join the federation DHT (/gsio/kad/1.0.0) through the bootstrap relays, advertise this relay at the network's rendezvous and connect to the relays found there")

	f.cat = "NAT traversal"
	rs := &n.RelayService
	f.boolean("relay-service", &rs.Enable, "serve circuit relay v2 (hop) to libp2p peers behind NAT")
	f.num("relay-max-reservations", &rs.MaxReservations, "relay v2 reservations held at once")
	f.num("relay-max-reservations-per-ip", &rs.MaxReservationsPerIP, "relay v2 reservations from one IP address")
	f.num("relay-max-reservations-per-asn", &rs.MaxReservationsPerASN, "relay v2 reservations from one autonomous system (IPv6 only)")
	f.num("relay-max-circuits", &rs.MaxCircuits, "open relayed connections of one peer, as source or destination")
	f.dur("relay-circuit-duration", &rs.Limit.Duration, "a relayed connection is cut after this long")
	f.num64("relay-circuit-data", &rs.Limit.Data, "a relayed connection is cut after this many `BYTES` in either direction")
	f.dur("relay-reservation-ttl", &rs.ReservationTTL, "lifetime of a relay v2 reservation (clients refresh it)")
	f.strs("relay-allow-reserve", &rs.AllowReserve, "only this `PEER_ID` may reserve a relay slot (repeatable; default anyone)")
	f.str("reachability", &n.NAT.Reachability, "`MODE` public: the relay is reachable, its relay service runs whatever AutoNAT concludes; auto: AutoNAT decides")
	f.boolean("autonat-service", &n.NAT.EnableAutoNATService, "answer other peers' AutoNAT (v1 and v2) reachability checks")
	f.boolean("hole-punching", &n.NAT.EnableHolePunching, "hole punching (DCUtR) for this relay's own connections")

	f.cat = "Private federation"
	f.str("swarm-key", &n.Private.SwarmKey, "pre-shared key `FILE` (/key/swarm/psk/1.0.0/): only peers with the same key can connect; disables QUIC")
	f.strs("allow-peer", &n.Private.AllowPeers, "connect only with this `PEER_ID` (repeatable; bootstrap peers are allowed too): everyone else is refused, relay-service clients included")
	f.boolean("allow-relay-clients", &n.Private.AllowRelayClients, "with --allow-peer: let unlisted peers connect as clients of the relay service (no gossip, direct streams or DHT for them)")

	f.cat = "Admin"
	f.str("admin-listen", &a.Listen, "admin HTTP listen `ADDR` (/api/v1/…, /metrics, /healthz, /readyz); beyond loopback it needs --admin-token")
	f.str("admin-token", &a.Token, "require this bearer `TOKEN` on the admin API and /metrics (not /healthz, /readyz)")
	f.strs("admin-allowed-hosts", &a.AllowedHosts, "also accept this `HOST` (name or name:port, repeatable) in a request's Host header, besides the listen address, localhost and loopback IPs (DNS rebinding protection)")
	// Profiling (cmd/gsio-bench uses it): net/http/pprof on a loopback ADDR.
	f.hidden("pprof-listen", &cfg.PprofListen, "serve net/http/pprof on loopback `ADDR`")

	f.cat = "Logging"
	f.str("log-level", &cfg.LogLevel, "debug, info, warn or error")
	f.str("log-format", &cfg.LogFormat, "text or json")
	return f
}
