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

	// Circuit relay v2, AutoNAT, hole punching, mDNS and the DHT
	// rendezvous get their fields here; New wires them next to the other
	// libp2p options (see hostOptions).
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
		DirectQueueSize:       1024,
		DirectDialTimeout:     10 * time.Second,
		DirectWriteTimeout:    10 * time.Second,
		DirectIdleTimeout:     2 * time.Minute,
		SeenMessagesTTL:       2 * time.Minute,
		ScoreInspectInterval:  5 * time.Second,
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
	setInt(&c.DirectQueueSize, d.DirectQueueSize)
	setDur(&c.DirectDialTimeout, d.DirectDialTimeout)
	setDur(&c.DirectWriteTimeout, d.DirectWriteTimeout)
	setDur(&c.DirectIdleTimeout, d.DirectIdleTimeout)
	setDur(&c.SeenMessagesTTL, d.SeenMessagesTTL)
	setDur(&c.ScoreInspectInterval, d.ScoreInspectInterval)
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
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must be positive", name, v))
		}
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
// the node's own (a later option wins). This is where circuit relay v2,
// AutoNAT or hole punching can be switched on until they get Config fields.
func WithLibp2pOptions(opts ...libp2p.Option) Option {
	return func(o *options) { o.libp2pOpts = append(o.libp2pOpts, opts...) }
}
