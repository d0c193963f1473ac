package node

import (
	"os"
	"path/filepath"
	"runtime"
	"time"

	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// Values of Config.NAT.Reachability.
const (
	reachabilityPublic = "public" // declared publicly reachable (default)
	reachabilityAuto   = "auto"   // AutoNAT decides
)

// Config is the operator's view of the federation layer, in groups. Start
// from DefaultConfig: each field's comment states its default, and New
// takes every value at its word (a zero is a zero, not "the default").
// New parses and validates it; its errors name each field by its
// `gsio-relay run` flag (--p2p-listen), or, for a field that has none, by
// the flag it would have (--presence-interval).
type Config struct {
	// DataDir holds identity.key. Default ~/.gsio-relay.
	DataDir string
	// Network names the federation; the topics are gsio/<Network>/broadcast/1
	// and gsio/<Network>/presence/1. Default "gsio".
	Network string
	// MaxMessageSize bounds one broadcast or presence message (the
	// GSIO JSON bytes). The gossip RPC limit is this plus 64 KiB of
	// protobuf and control overhead. Default 1 MiB + 4 KiB, so that every
	// frame the WebSocket side accepts (1 MiB) fits with a relay-assigned
	// message_id.
	MaxMessageSize int
	// MaxDirectSize bounds one direct message on a direct stream (ledger
	// sync answers); default 16 MiB + 4 KiB.
	MaxDirectSize int
	// SeenMessagesTTL is how long message ids are remembered for
	// deduplication (gossip and direct). Default 2 min.
	SeenMessagesTTL time.Duration

	Host         HostConfig
	Presence     PresenceConfig
	Gossip       GossipConfig
	Publish      PublishConfig
	Direct       DirectConfig
	RelayService RelayServiceConfig
	NAT          NATConfig
	Discovery    DiscoveryConfig
	Private      PrivateConfig
	Inspect      InspectConfig // inspectproto.go
	Sync         SyncConfig    // sync.go
}

// HostConfig is the libp2p host: its addresses and connection manager.
type HostConfig struct {
	// ListenAddrs are libp2p listen multiaddrs. Default
	// /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1. A /ws
	// address enables the libp2p WebSocket transport on it.
	ListenAddrs []string
	// Announce, when set, replaces the listen addresses in identify and in
	// presence snapshots (NAT, containers). Default none.
	Announce []string
	// ConnLow, ConnHigh and ConnGrace configure the connection manager:
	// above ConnHigh connections it trims to ConnLow, sparing connections
	// younger than ConnGrace and protected peers (bootstrap peers, relays
	// with an active direct sender). Default 64, 192, 30 s.
	ConnLow   int
	ConnHigh  int
	ConnGrace time.Duration
}

// PresenceConfig is the presence topic and the directory built from it.
type PresenceConfig struct {
	// Interval is the period of presence heartbeats (count and digest of
	// the node set; the set itself is pulled on a mismatch). A relay's nodes expire
	// Missed intervals (of the interval it announces, clamped to [50 ms,
	// 8 s]) after its last presence message. Default 2 s: join/leave are
	// published at once, a dead relay's nodes expire within 6 s (+ one
	// sweep of Interval/4).
	Interval time.Duration
	// Missed is the number of missed heartbeats after which a relay's
	// entries expire. Default 3.
	Missed int
	// SpeakForWait is how long a message from a relay that does not (yet)
	// announce its sender is held before it is rejected: the honest race
	// of a node that moved and whose join is still on its way. Default 6 s
	// (3 default intervals).
	SpeakForWait time.Duration
	// AllowPrivateAddrs keeps the addresses in presence that are not
	// public (loopback, private, link-local, unspecified, localhost
	// names): without it they are dropped on arrival, so that no relay's
	// presence can make this one dial a service on its own machine or
	// network (127.0.0.1:6379, 169.254.169.254). Default false; a
	// federation on one LAN or one host (tests, the docker testnet) sets
	// it.
	AllowPrivateAddrs bool
	// PublicWSURL is this relay's public WebSocket URL (ws:// or wss://),
	// announced in presence snapshots so that other relays can send the
	// nodes of a draining relay here. Default "" (not announced).
	PublicWSURL string
	// MaxRelays bounds the relays in the directory. Default 256.
	MaxRelays int
	// MaxNodesPerRelay bounds the nodes kept for one relay; announcements
	// beyond it are refused (and counted), not rejected. Default 10000.
	MaxNodesPerRelay int
	// MaxDirectoryEntries bounds (node, relay) pairs in the directory in
	// all; updates beyond it are refused and counted. Default 100000.
	MaxDirectoryEntries int
}

// GossipConfig is GossipSub: signatures, queues and validation.
type GossipConfig struct {
	// Sign selects the GossipSub signature policy: true (the default) is
	// StrictSign: every message carries its origin relay's peer id, a
	// sequence number and an Ed25519 signature, which the speak-for and
	// presence rules need. false is StrictNoSign (cheaper, unauthenticated
	// gossip; closed federations only). All relays of a federation must
	// agree. New refuses false unless the federation is private
	// (Private.SwarmKey or Private.AllowPeers). See docs/PROTOCOL.md for
	// the measured cost.
	Sign bool
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
	// SubscriptionBuffer is the buffer of the broadcast subscription (the
	// presence one has an eighth of it, at least 1024); a message that
	// does not fit is dropped by pubsub (and counted). Default 8192.
	SubscriptionBuffer int
	// ScoreInspectInterval is how often peer scores are sampled for the
	// admin API and the metrics. Default 5 s.
	ScoreInspectInterval time.Duration
	// OriginRate and OriginBurst bound the broadcasts one origin may push
	// into the federation: a token bucket of OriginRate GSIO messages a
	// second (every message of a batch counts), OriginBurst deep, per
	// origin relay (per forwarding peer for origins that are not relays);
	// messages over it are ignored and counted (origin_rate). Default
	// 10000/s, ten times the per-connection client rate, above what an
	// honest relay publishes outside a benchmark and below what a
	// WebSocket client on a LAN reads; burst 4096, the default WebSocket
	// send queue: what one origin puts on the wire at once is what one
	// client can queue (a larger burst closes fast readers as slow
	// consumers).
	OriginRate  float64
	OriginBurst int
	// PeerRate bounds the gossip messages (a batch is one) one peer may
	// hand us before validation, in a token bucket ValidateQueueSize/4
	// deep; those beyond it are dropped unvalidated and counted
	// (peer_rate), so that no peer fills the validation queue. Default
	// 20000/s: twice the origin rate, about what two cores verify.
	PeerRate float64
	// SubscriptionGrace is how long a connected relay of the federation
	// may stay unknown to pubsub as a subscriber of our topics before its
	// connections are closed to reset both pubsub sessions (see
	// subscriptionWatch). Default 10 s.
	SubscriptionGrace time.Duration
}

// PublishConfig is the publisher of local broadcasts.
type PublishConfig struct {
	// QueueSize bounds broadcasts waiting to be published; Broadcast
	// returns an error when it is full. Default 8192.
	QueueSize int
	// PeerWait bounds how long broadcasts wait to be published while no
	// peer is known subscribed to the broadcast topic although the relay
	// has a federation (bootstrap peers, or relays in its directory): at
	// start, or after losing every peer. GossipSub sends a publish only to
	// the peers it knows then, so publishing into an empty topic loses the
	// message. After the wait the relay publishes anyway, until it has had
	// peers again. Default 5 s.
	PeerWait time.Duration
	// BatchBytes and BatchMax bound a batch: the broadcasts waiting in the
	// queue when the publisher is free again are published as one gossip
	// message (a JSON array; docs/PROTOCOL.md "Batches") of at most
	// BatchMax messages and BatchBytes bytes (never more than
	// MaxMessageSize). A lone message is published as it is. BatchMax 1
	// turns batching off. Default 64 KiB, 256.
	BatchBytes int
	BatchMax   int
}

// DirectConfig is direct routing over DirectProtocol.
type DirectConfig struct {
	// QueueSize bounds direct messages waiting per destination relay; a
	// message that does not fit is reported Undeliverable. Default 1024.
	QueueSize int
	// DialTimeout bounds dialling a relay and opening a direct stream (and
	// every bootstrap or discovery dial); WriteTimeout bounds one frame
	// write. Default 10 s each.
	DialTimeout  time.Duration
	WriteTimeout time.Duration
	// IdleTimeout closes a per-peer direct sender (and its stream) after
	// that long without traffic, and drops an inbound stream as quiet.
	// Default 2 min.
	IdleTimeout time.Duration
}

// RelayServiceConfig is the circuit relay v2 service (natrelay.go):
// libp2p peers behind NAT reserve a slot on the relay and are reached
// through <relay addr>/p2p/<relay>/p2p-circuit/p2p/<peer>.
type RelayServiceConfig struct {
	// Enable runs the service. Default true.
	Enable bool
	// Resources are go-libp2p's limits, used as they are. Default
	// relayv2.DefaultResources() (128 reservations, 8 per IP, 32 per ASN
	// (IPv6 only), 16 circuits per peer, reservations of 1 h) except
	// Limit: a circuit is reset after 10 min or 8 MiB in either direction
	// (go-libp2p: 2 min, 128 KiB, enough to coordinate a hole punch but not
	// for one 1 MiB GSIO message: see docs/NAT.md). The
	// data limit counts the relayed stream, so the peers' own encryption
	// and muxing are included. A peer holds at most one reservation (a
	// refresh replaces it): that is the per-peer limit, fixed by the
	// protocol. Limit is a pointer: copies of a Config share it.
	relayv2.Resources
	// AllowReserve, when not empty, are the only peer IDs that may reserve
	// a slot (the relay ACL); anyone else is refused with
	// PERMISSION_DENIED. Default empty: anyone may reserve. Circuits to a
	// peer that holds a reservation are open to any source.
	AllowReserve []string
}

// NATConfig is the rest of NAT traversal: reachability, AutoNAT and hole
// punching.
type NATConfig struct {
	// Reachability is "public" (the default): the relay declares itself
	// publicly reachable, so its relay service runs whatever AutoNAT
	// concludes (also on loopback), and the DHT is in server mode; or
	// "auto": AutoNAT decides, and the relay service and DHT server mode
	// start only once AutoNAT finds the relay reachable.
	Reachability string
	// EnableAutoNATService runs the AutoNAT services (v1 and v2) that dial
	// back peers asking whether they are reachable. Default true.
	EnableAutoNATService bool
	// EnableHolePunching runs hole punching (DCUtR) for this host's own
	// connections. Default true.
	EnableHolePunching bool
}

// DiscoveryConfig is how the relay finds the federation: bootstrap peers,
// mDNS and a DHT rendezvous.
type DiscoveryConfig struct {
	// Bootstrap are full multiaddrs (with /p2p/<id>) dialled at Start and
	// kept connected: a lost connection is redialled with exponential
	// backoff from BootstrapBackoffMin to BootstrapBackoffMax, forever. A
	// bootstrap peer that is down at start is not an error. Default none.
	Bootstrap []string
	// BootstrapBackoffMin and BootstrapBackoffMax bound the redial
	// backoff. Default 1 s and 30 s.
	BootstrapBackoffMin time.Duration
	BootstrapBackoffMax time.Duration
	// EnableMDNS discovers relays of the same network on the local network
	// (multicast DNS, service _gsio-<network>._udp) and connects to them.
	// Default false: a relay dials nothing it was not told about.
	EnableMDNS bool
	// EnableDHT joins a Kademlia DHT (protocol /gsio/kad/1.0.0, server mode
	// unless NAT.Reachability is "auto") whose first peers are the
	// bootstrap peers, advertises the relay under the rendezvous key
	// gsio/<network>/relays and connects to the relays it finds there.
	// Default false.
	EnableDHT bool
	// DHTFindInterval caps the interval between rendezvous lookups: they
	// run 1 s after the routing table has a peer, then back off (doubling)
	// to this. Default 1 min.
	DHTFindInterval time.Duration
	// DHTAdvertiseInterval is how often the relay renews its rendezvous
	// record. Default 1 h (records live 48 h on DHT servers).
	DHTAdvertiseInterval time.Duration
}

// PrivateConfig makes a federation private (private.go).
type PrivateConfig struct {
	// SwarmKey is the path of a pre-shared key file (go-libp2p pnet,
	// "/key/swarm/psk/1.0.0/" format): only peers with the same key can
	// connect at all. QUIC cannot carry a pre-shared key: with a swarm key
	// QUIC listen addresses are dropped (and logged). Default none.
	SwarmKey string
	// AllowPeers, when not empty, makes the federation private: a
	// connection gater refuses every peer not listed (or in
	// Discovery.Bootstrap), inbound and outbound, relays and relay-service
	// clients alike. Default empty: anyone may connect.
	AllowPeers []string
	// AllowRelayClients, with AllowPeers, lets peers that are not listed
	// connect as clients of the relay service (reserve, be relayed,
	// AutoNAT, identify, ping) while GossipSub, direct streams and the DHT
	// still serve listed peers only. Default false.
	AllowRelayClients bool
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	resources := relayv2.DefaultResources()
	resources.Limit = &relayv2.RelayLimit{Duration: 10 * time.Minute, Data: 8 << 20}
	return Config{
		DataDir:         filepath.Join(home, ".gsio-relay"),
		Network:         "gsio",
		MaxMessageSize:  1<<20 + 4<<10,
		MaxDirectSize:   16<<20 + 4<<10,
		SeenMessagesTTL: 2 * time.Minute,
		Host: HostConfig{
			ListenAddrs: []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
			ConnLow:     64,
			ConnHigh:    192,
			ConnGrace:   30 * time.Second,
		},
		Presence: PresenceConfig{
			Interval:            2 * time.Second,
			Missed:              3,
			SpeakForWait:        6 * time.Second,
			MaxRelays:           256,
			MaxNodesPerRelay:    10000,
			MaxDirectoryEntries: 100000,
		},
		Gossip: GossipConfig{
			Sign:                  true,
			PeerOutboundQueueSize: 4096,
			ValidateQueueSize:     8192,
			ValidateWorkers:       runtime.NumCPU(),
			ValidateConcurrency:   8192,
			SubscriptionBuffer:    8192,
			ScoreInspectInterval:  5 * time.Second,
			OriginRate:            10000,
			OriginBurst:           4096,
			PeerRate:              20000,
			SubscriptionGrace:     10 * time.Second,
		},
		Publish: PublishConfig{QueueSize: 8192, PeerWait: 5 * time.Second, BatchBytes: 64 << 10, BatchMax: 256},
		Direct: DirectConfig{
			QueueSize:    1024,
			DialTimeout:  10 * time.Second,
			WriteTimeout: 10 * time.Second,
			IdleTimeout:  2 * time.Minute,
		},
		RelayService: RelayServiceConfig{Enable: true, Resources: resources},
		Inspect:      defaultInspectConfig(),
		Sync:         defaultSyncConfig(),
		NAT:          NATConfig{Reachability: reachabilityPublic, EnableAutoNATService: true, EnableHolePunching: true},
		Discovery: DiscoveryConfig{
			BootstrapBackoffMin:  time.Second,
			BootstrapBackoffMax:  30 * time.Second,
			DHTFindInterval:      time.Minute,
			DHTAdvertiseInterval: time.Hour,
		},
	}
}
