package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Protocol constants. They are part of the wire contract (docs/PROTOCOL.md).
const (
	// DirectProtocol is the stream protocol for relay-to-relay direct
	// messages and their NACKs.
	DirectProtocol = "/gsio/direct/1.0.0"
	// DefaultNetwork names the federation when Config.Network is empty.
	DefaultNetwork = "gsio"
	// MaxAddrsPerRelay bounds the addresses kept from one presence message.
	MaxAddrsPerRelay = 16
	// A relay's announced interval is clamped to [minPresenceInterval,
	// maxPresenceInterval], and the expiry it implies to maxPresenceExpiry,
	// inside the 30 s of the SPEC.
	maxPresenceInterval = 8 * time.Second
	minPresenceInterval = 50 * time.Millisecond
	maxPresenceExpiry   = 25 * time.Second
)

// Values of Config.Reachability.
const (
	// ReachabilityPublic declares the relay publicly reachable (default).
	ReachabilityPublic = "public"
	// ReachabilityAuto lets AutoNAT decide.
	ReachabilityAuto = "auto"
)

// BroadcastTopic is the GossipSub topic carrying GSIO broadcasts.
func BroadcastTopic(network string) string { return "gsio/" + network + "/broadcast/1" }

// PresenceTopic is the GossipSub topic carrying relay presence.
func PresenceTopic(network string) string { return "gsio/" + network + "/presence/1" }

// Config is the operator's view of the federation layer. Every field's
// comment states its default (DefaultConfig); a zero value in a Config given
// to New means that default too, except where said otherwise.
type Config struct {
	// DataDir holds identity.key. Default ~/.gsio-relay.
	DataDir string
	// ListenAddrs are libp2p listen multiaddrs. Default
	// /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1. A /ws
	// address enables the libp2p WebSocket transport on it.
	ListenAddrs []string
	// Announce, when set, replaces the listen addresses in identify and in
	// presence snapshots (NAT, containers). Default none.
	Announce []string
	// Bootstrap are full multiaddrs (with /p2p/<id>) dialled at Start and
	// kept connected: a lost connection is redialled with exponential
	// backoff from BootstrapBackoffMin to BootstrapBackoffMax, forever. A
	// bootstrap peer that is down at start is not an error. Default none.
	Bootstrap []string
	// BootstrapBackoffMin and BootstrapBackoffMax bound the redial
	// backoff. Default 1 s and 30 s.
	BootstrapBackoffMin time.Duration
	BootstrapBackoffMax time.Duration
	// Network names the federation; the topics are gsio/<Network>/broadcast/1
	// and gsio/<Network>/presence/1. Default "gsio".
	Network string
	// MaxMessageSize bounds one broadcast, presence or direct message (the
	// GSIO JSON bytes). The gossip RPC limit is this plus 64 KiB of
	// protobuf and control overhead. Default 1 MiB + 4 KiB, so that every
	// frame the WebSocket side accepts (1 MiB) fits with a relay-assigned
	// message_id.
	MaxMessageSize int
	// NoSign selects the GossipSub signature policy: false (the default,
	// also the zero value) is StrictSign: every message carries its origin
	// relay's peer id, a sequence number and an Ed25519 signature, which
	// the speak-for and presence rules need. true is StrictNoSign (cheaper,
	// unauthenticated gossip; closed federations only). All relays of a
	// federation must agree. See docs/PROTOCOL.md for the measured cost.
	NoSign bool
	// PresenceInterval is the period of presence snapshots. A relay's
	// nodes expire PresenceMissed intervals (of the interval it announces,
	// clamped to [50 ms, 8 s]) after its last presence message. Default 2 s:
	// join/leave are published at once, a dead relay's nodes expire within
	// 6 s (+ one sweep of PresenceInterval/4).
	PresenceInterval time.Duration
	// PresenceMissed is the number of missed snapshots after which a
	// relay's entries expire. Default 3.
	PresenceMissed int
	// SpeakForWait is how long a message from a relay that does not (yet)
	// announce its sender is held before it is rejected: the honest race
	// of a node that moved and whose join is still on its way. Default 0,
	// meaning 3 * PresenceInterval (6 s).
	SpeakForWait time.Duration
	// MaxRelays bounds the relays in the presence directory. Default 256.
	MaxRelays int
	// MaxNodesPerRelay bounds the nodes kept for one relay; announcements
	// beyond it are refused (and counted), not rejected. Default 10000.
	MaxNodesPerRelay int
	// MaxDirectoryEntries bounds (node, relay) pairs in the directory in
	// all; updates beyond it are refused and counted. Default 100000.
	MaxDirectoryEntries int
	// ConnLow, ConnHigh and ConnGrace configure the connection manager:
	// above ConnHigh connections it trims to ConnLow, sparing connections
	// younger than ConnGrace and protected peers (bootstrap peers, relays
	// with an active direct sender). Default 64, 192, 30 s.
	ConnLow   int
	ConnHigh  int
	ConnGrace time.Duration
	// PeerOutboundQueueSize is GossipSub's per-peer outbound RPC queue; an
	// RPC that does not fit is dropped (and counted). Default 4096.
	PeerOutboundQueueSize int
	// ValidateQueueSize is the queue in front of the validation workers;
	// a message that does not fit is dropped (and counted). Default 8192.
	ValidateQueueSize int
	// ValidateWorkers is the number of validation workers. Default
	// runtime.NumCPU().
	ValidateWorkers int
	// ValidateConcurrency bounds messages in asynchronous validation per
	// topic (including messages held by the speak-for wait). Default 8192.
	ValidateConcurrency int
	// SubscriptionBuffer is the buffer of each topic subscription; a
	// message that does not fit is dropped by pubsub (and counted).
	// Default 8192.
	SubscriptionBuffer int
	// PublishQueueSize bounds broadcasts waiting to be published;
	// Broadcast returns ErrBackpressure when it is full. Default 8192.
	PublishQueueSize int
	// PublishPeerWait bounds how long broadcasts wait to be published while
	// no peer is known subscribed to the broadcast topic although the relay
	// has a federation (bootstrap peers, or relays in its directory): at
	// start, or after losing every peer. GossipSub sends a publish only to
	// the peers it knows then, so publishing into an empty topic loses the
	// message. After the wait the relay publishes anyway, until it has had
	// peers again. Default 5 s.
	PublishPeerWait time.Duration
	// SubscriptionGrace is how long a connected relay of the federation
	// may stay unknown to pubsub as a subscriber of our topics before its
	// connections are closed to reset both pubsub sessions (see
	// subscriptionWatch). Default 10 s.
	SubscriptionGrace time.Duration
	// PublishBatchBytes and PublishBatchMax bound a batch: the broadcasts
	// waiting in the publish queue when the publisher is free again are
	// published as one gossip message (a JSON array; docs/PROTOCOL.md
	// "Batches") of at most PublishBatchMax messages and PublishBatchBytes
	// bytes (never more than MaxMessageSize). A lone message is published
	// as it is. PublishBatchMax 1 turns batching off. Default 64 KiB, 256.
	PublishBatchBytes int
	PublishBatchMax   int
	// DirectQueueSize bounds direct messages waiting per destination
	// relay; a message that does not fit is reported Undeliverable.
	// Default 1024.
	DirectQueueSize int
	// DirectDialTimeout bounds dialling a relay and opening a direct
	// stream; DirectWriteTimeout bounds one frame write. Default 10 s each.
	DirectDialTimeout  time.Duration
	DirectWriteTimeout time.Duration
	// DirectIdleTimeout closes a per-peer direct sender (and its stream)
	// after that long without traffic. Default 2 min.
	DirectIdleTimeout time.Duration
	// SeenMessagesTTL is how long message ids are remembered for
	// deduplication (gossip and direct). Default 2 min.
	SeenMessagesTTL time.Duration
	// ScoreInspectInterval is how often peer scores are sampled for
	// PeerScores and the metrics. Default 5 s.
	ScoreInspectInterval time.Duration

	// Circuit relay v2 service (natrelay.go): libp2p peers behind NAT
	// reserve a slot on the relay and are reached through
	// <relay addr>/p2p/<relay>/p2p-circuit/p2p/<peer>. On by default;
	// NoRelayService (the zero value false keeps it on) turns it off.
	NoRelayService bool
	// RelayMaxReservations bounds the reservations held at once.
	// Default 128 (go-libp2p's).
	RelayMaxReservations int
	// RelayMaxReservationsPerIP bounds reservations from one IP address
	// (several peers behind one NAT). Default 8 (go-libp2p's).
	RelayMaxReservationsPerIP int
	// RelayMaxReservationsPerASN bounds reservations from one autonomous
	// system; go-libp2p applies it to IPv6 only. Default 32.
	RelayMaxReservationsPerASN int
	// RelayMaxCircuits bounds the open circuits of one peer, as source or
	// as destination. Default 16 (go-libp2p's). A peer holds at most one
	// reservation (a refresh replaces it): that is the per-peer
	// reservation limit, fixed by the protocol.
	RelayMaxCircuits int
	// RelayCircuitDuration and RelayCircuitData limit one circuit: it is
	// reset after that long, or after that many bytes in either direction
	// (counted on the relayed stream, so the peers' own encryption and
	// muxing are included). Default 10 min and 8 MiB (go-libp2p: 2 min,
	// 128 KiB, enough to coordinate a hole punch but not for one 1 MiB
	// GSIO message): see README "Running a public relay".
	RelayCircuitDuration time.Duration
	RelayCircuitData     int64
	// RelayReservationTTL is the lifetime of a reservation (clients
	// refresh it before it ends). Default 1 h.
	RelayReservationTTL time.Duration
	// RelayAllowReserve, when not empty, are the only peer IDs that may
	// reserve a slot (the relay ACL); anyone else is refused with
	// PERMISSION_DENIED. Default empty: anyone may reserve. Circuits to a
	// peer that holds a reservation are open to any source. WithRelayACL
	// replaces this with a programmer's filter.
	RelayAllowReserve []string
	// Reachability is "public" (the default, also ""): the relay declares
	// itself publicly reachable, so its relay service runs whatever
	// AutoNAT concludes (also on loopback), and the DHT is in server mode;
	// or "auto": AutoNAT decides, and the relay service and DHT server
	// mode start only once AutoNAT finds the relay reachable.
	Reachability string
	// NoAutoNATService turns off the AutoNAT services (v1 and v2) that
	// dial back peers asking whether they are reachable. Default on.
	NoAutoNATService bool
	// NoHolePunching turns off hole punching (DCUtR) for this host's own
	// connections. Default on.
	NoHolePunching bool

	// MDNS discovers relays of the same network on the local network
	// (multicast DNS, service _gsio-<network>._udp) and connects to them.
	// Default off: a relay dials nothing it was not told about.
	MDNS bool
	// DHT joins a Kademlia DHT (protocol /gsio/kad/1.0.0, server mode
	// unless Reachability is "auto") whose first peers are the bootstrap
	// peers, advertises the relay under the rendezvous key
	// gsio/<network>/relays and connects to the relays it finds there.
	// Default off.
	DHT bool
	// DHTFindInterval caps the interval between rendezvous lookups: they
	// run 1 s after the routing table has a peer, then back off (doubling)
	// to this. Default 1 min.
	DHTFindInterval time.Duration
	// DHTAdvertiseInterval is how often the relay renews its rendezvous
	// record. Default 1 h (records live 48 h on DHT servers).
	DHTAdvertiseInterval time.Duration

	// SwarmKey is the path of a pre-shared key file (go-libp2p pnet,
	// "/key/swarm/psk/1.0.0/" format): only peers with the same key can
	// connect at all. QUIC cannot carry a pre-shared key: with a swarm key
	// QUIC listen addresses are dropped (and logged). Default none.
	SwarmKey string
	// AllowPeers, when not empty, makes the federation private: a
	// connection gater refuses every peer not listed (or in Bootstrap),
	// inbound and outbound, relays and relay-service clients alike.
	// Default empty: anyone may connect.
	AllowPeers []string
	// AllowRelayClients, with AllowPeers, lets peers that are not listed
	// connect as clients of the relay service (reserve, be relayed, AutoNAT,
	// identify, ping) while GossipSub, direct streams and the DHT still
	// serve listed peers only. Default false.
	AllowRelayClients bool
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return Config{
		DataDir: filepath.Join(home, ".gsio-relay"),
		ListenAddrs: []string{
			"/ip4/0.0.0.0/tcp/4001",
			"/ip4/0.0.0.0/udp/4001/quic-v1",
		},
		BootstrapBackoffMin:   time.Second,
		BootstrapBackoffMax:   30 * time.Second,
		Network:               DefaultNetwork,
		MaxMessageSize:        1<<20 + 4<<10,
		PresenceInterval:      2 * time.Second,
		PresenceMissed:        3,
		MaxRelays:             256,
		MaxNodesPerRelay:      10000,
		MaxDirectoryEntries:   100000,
		ConnLow:               64,
		ConnHigh:              192,
		ConnGrace:             30 * time.Second,
		PeerOutboundQueueSize: 4096,
		ValidateQueueSize:     8192,
		ValidateWorkers:       runtime.NumCPU(),
		ValidateConcurrency:   8192,
		SubscriptionBuffer:    8192,
		PublishQueueSize:      8192,
		PublishBatchBytes:     64 << 10,
		SubscriptionGrace:     10 * time.Second,
		PublishPeerWait:       5 * time.Second,
		PublishBatchMax:       256,
		DirectQueueSize:       1024,
		DirectDialTimeout:     10 * time.Second,
		DirectWriteTimeout:    10 * time.Second,
		DirectIdleTimeout:     2 * time.Minute,
		SeenMessagesTTL:       2 * time.Minute,
		ScoreInspectInterval:  5 * time.Second,

		RelayMaxReservations:       128,
		RelayMaxReservationsPerIP:  8,
		RelayMaxReservationsPerASN: 32,
		RelayMaxCircuits:           16,
		RelayCircuitDuration:       10 * time.Minute,
		RelayCircuitData:           8 << 20,
		RelayReservationTTL:        time.Hour,
		Reachability:               ReachabilityPublic,
		DHTFindInterval:            time.Minute,
		DHTAdvertiseInterval:       time.Hour,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.ListenAddrs == nil {
		c.ListenAddrs = d.ListenAddrs
	}
	if c.Network == "" {
		c.Network = d.Network
	}
	if c.PresenceInterval == 0 {
		c.PresenceInterval = d.PresenceInterval
	}
	if c.SpeakForWait == 0 {
		c.SpeakForWait = 3 * c.PresenceInterval
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setDur(&c.BootstrapBackoffMin, d.BootstrapBackoffMin)
	setDur(&c.BootstrapBackoffMax, d.BootstrapBackoffMax)
	setInt(&c.MaxMessageSize, d.MaxMessageSize)
	setInt(&c.PresenceMissed, d.PresenceMissed)
	setInt(&c.MaxRelays, d.MaxRelays)
	setInt(&c.MaxNodesPerRelay, d.MaxNodesPerRelay)
	setInt(&c.MaxDirectoryEntries, d.MaxDirectoryEntries)
	setInt(&c.ConnLow, d.ConnLow)
	setInt(&c.ConnHigh, d.ConnHigh)
	setDur(&c.ConnGrace, d.ConnGrace)
	setInt(&c.PeerOutboundQueueSize, d.PeerOutboundQueueSize)
	setInt(&c.ValidateQueueSize, d.ValidateQueueSize)
	setInt(&c.ValidateWorkers, d.ValidateWorkers)
	setInt(&c.ValidateConcurrency, d.ValidateConcurrency)
	setInt(&c.SubscriptionBuffer, d.SubscriptionBuffer)
	setInt(&c.PublishQueueSize, d.PublishQueueSize)
	setInt(&c.PublishBatchBytes, d.PublishBatchBytes)
	setDur(&c.SubscriptionGrace, d.SubscriptionGrace)
	setDur(&c.PublishPeerWait, d.PublishPeerWait)
	setInt(&c.PublishBatchMax, d.PublishBatchMax)
	setInt(&c.DirectQueueSize, d.DirectQueueSize)
	setDur(&c.DirectDialTimeout, d.DirectDialTimeout)
	setDur(&c.DirectWriteTimeout, d.DirectWriteTimeout)
	setDur(&c.DirectIdleTimeout, d.DirectIdleTimeout)
	setDur(&c.SeenMessagesTTL, d.SeenMessagesTTL)
	setDur(&c.ScoreInspectInterval, d.ScoreInspectInterval)
	setInt(&c.RelayMaxReservations, d.RelayMaxReservations)
	setInt(&c.RelayMaxReservationsPerIP, d.RelayMaxReservationsPerIP)
	setInt(&c.RelayMaxReservationsPerASN, d.RelayMaxReservationsPerASN)
	setInt(&c.RelayMaxCircuits, d.RelayMaxCircuits)
	setDur(&c.RelayCircuitDuration, d.RelayCircuitDuration)
	if c.RelayCircuitData == 0 {
		c.RelayCircuitData = d.RelayCircuitData
	}
	setDur(&c.RelayReservationTTL, d.RelayReservationTTL)
	if c.Reachability == "" {
		c.Reachability = d.Reachability
	}
	setDur(&c.DHTFindInterval, d.DHTFindInterval)
	setDur(&c.DHTAdvertiseInterval, d.DHTAdvertiseInterval)
	return c
}

// validate checks a Config after withDefaults; it parses the multiaddrs.
func (c *Config) validate() (listen, announce []ma.Multiaddr, boot []peer.AddrInfo, err error) {
	var errs []error
	for _, s := range c.ListenAddrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("listen address %q: %w", s, err))
			continue
		}
		listen = append(listen, a)
	}
	if len(c.ListenAddrs) == 0 {
		errs = append(errs, errors.New("no listen address"))
	}
	for _, s := range c.Announce {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("announce address %q: %w", s, err))
			continue
		}
		announce = append(announce, a)
	}
	seen := map[peer.ID]int{}
	for _, s := range c.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("bootstrap address %q (want a multiaddr ending in /p2p/<peer id>): %w", s, err))
			continue
		}
		if i, ok := seen[ai.ID]; ok {
			boot[i].Addrs = append(boot[i].Addrs, ai.Addrs...)
			continue
		}
		seen[ai.ID] = len(boot)
		boot = append(boot, *ai)
	}
	for _, r := range c.Network {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			errs = append(errs, fmt.Errorf("network name %q: only letters, digits, '-', '_' and '.' are allowed", c.Network))
			break
		}
	}
	if c.MaxMessageSize < 1024 {
		errs = append(errs, fmt.Errorf("max message size %d: at least 1024", c.MaxMessageSize))
	}
	if c.PresenceInterval < minPresenceInterval || c.PresenceInterval > maxPresenceInterval {
		errs = append(errs, fmt.Errorf("presence interval %v: must be within [%v, %v]", c.PresenceInterval, minPresenceInterval, maxPresenceInterval))
	}
	if c.PublishBatchMax > MaxBatchMessages {
		errs = append(errs, fmt.Errorf("publish batch max %d: at most %d", c.PublishBatchMax, MaxBatchMessages))
	}
	if c.PresenceMissed < 2 {
		errs = append(errs, fmt.Errorf("presence missed %d: at least 2", c.PresenceMissed))
	}
	if c.BootstrapBackoffMin <= 0 || c.BootstrapBackoffMax < c.BootstrapBackoffMin {
		errs = append(errs, fmt.Errorf("bootstrap backoff [%v, %v] is not a range", c.BootstrapBackoffMin, c.BootstrapBackoffMax))
	}
	if c.ConnLow < 0 || c.ConnHigh < c.ConnLow {
		errs = append(errs, fmt.Errorf("connection manager low %d / high %d: need 0 <= low <= high", c.ConnLow, c.ConnHigh))
	}
	for name, v := range map[string]int{
		"max relays": c.MaxRelays, "max nodes per relay": c.MaxNodesPerRelay,
		"max directory entries": c.MaxDirectoryEntries, "peer outbound queue size": c.PeerOutboundQueueSize,
		"validate queue size": c.ValidateQueueSize, "validate workers": c.ValidateWorkers,
		"validate concurrency": c.ValidateConcurrency, "subscription buffer": c.SubscriptionBuffer,
		"publish queue size": c.PublishQueueSize, "direct queue size": c.DirectQueueSize,
		"publish batch bytes": c.PublishBatchBytes, "publish batch max": c.PublishBatchMax,
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must be positive", name, v))
		}
	}
	for name, v := range map[string]int{
		"relay max reservations": c.RelayMaxReservations, "relay max reservations per IP": c.RelayMaxReservationsPerIP,
		"relay max reservations per ASN": c.RelayMaxReservationsPerASN, "relay max circuits": c.RelayMaxCircuits,
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must be positive", name, v))
		}
	}
	if c.RelayCircuitData < 0 || c.RelayCircuitDuration < time.Second || c.RelayReservationTTL < time.Second {
		errs = append(errs, fmt.Errorf("relay circuit data %d, circuit duration %v, reservation TTL %v: need data > 0 and durations >= 1s",
			c.RelayCircuitData, c.RelayCircuitDuration, c.RelayReservationTTL))
	}
	if c.Reachability != ReachabilityPublic && c.Reachability != ReachabilityAuto {
		errs = append(errs, fmt.Errorf("reachability %q: want %q or %q", c.Reachability, ReachabilityPublic, ReachabilityAuto))
	}
	if c.DHTFindInterval < time.Second || c.DHTAdvertiseInterval < time.Second {
		errs = append(errs, fmt.Errorf("DHT intervals (find %v, advertise %v): at least 1s", c.DHTFindInterval, c.DHTAdvertiseInterval))
	}
	for _, list := range []struct {
		name string
		ids  []string
	}{{"allowed peer", c.AllowPeers}, {"relay reserve ACL peer", c.RelayAllowReserve}} {
		for _, s := range list.ids {
			if _, err := peer.Decode(s); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: not a peer ID: %w", list.name, s, err))
			}
		}
	}
	if c.AllowRelayClients && len(c.AllowPeers) == 0 {
		errs = append(errs, errors.New("allow relay clients: only meaningful with an allow-list of peers"))
	}
	return listen, announce, boot, errors.Join(errs...)
}

// Option configures what a programmer injects into a Node.
type Option func(*options)

type options struct {
	logger       *slog.Logger
	registerer   prometheus.Registerer
	gossipParams *pubsub.GossipSubParams
	libp2pOpts   []libp2p.Option
	relayACL     relayv2.ACLFilter
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers the node's metrics (gsio_node_*) and
// go-libp2p's with r. Without it the node's metrics are kept unregistered
// and libp2p metrics are off.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) { o.registerer = r }
}

// WithGossipSubParams replaces the GossipSub router parameters (tests use
// a short heartbeat). Default pubsub.DefaultGossipSubParams().
func WithGossipSubParams(p pubsub.GossipSubParams) Option {
	return func(o *options) { o.gossipParams = &p }
}

// WithLibp2pOptions appends options to the libp2p host construction, after
// the node's own (a later option wins).
func WithLibp2pOptions(opts ...libp2p.Option) Option {
	return func(o *options) { o.libp2pOpts = append(o.libp2pOpts, opts...) }
}

// WithRelayACL sets the access control of the circuit relay v2 service
// (who may reserve, who may connect to whom). It replaces the allow-list
// of Config.RelayAllowReserve.
func WithRelayACL(acl relayv2.ACLFilter) Option {
	return func(o *options) { o.relayACL = acl }
}
