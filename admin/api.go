package admin

import "time"

// The JSON documents of /api/v1, shared by the server and the CLI's
// client. Version 1 only grows: fields are added, never renamed or
// removed. docs/ADMIN.md describes every field.

// Info is GET /api/v1/info.
type Info struct {
	PeerID         string    `json:"peer_id"`         // libp2p peer ID; "" for a standalone relay
	Network        string    `json:"network"`         // federation name; "" standalone
	Version        string    `json:"version"`         // gsio-relay build version
	Standalone     bool      `json:"standalone"`      // runs without libp2p
	StartedAt      time.Time `json:"started_at"`      // when the relay started
	UptimeSeconds  float64   `json:"uptime_seconds"`  // seconds since started_at
	ListenAddrs    []string  `json:"listen_addrs"`    // libp2p listen multiaddrs
	AnnouncedAddrs []string  `json:"announced_addrs"` // multiaddrs given to other peers (identify, presence)
	WebSocket      string    `json:"websocket"`       // WebSocket listener host:port
	Ready          bool      `json:"ready"`           // what /readyz says
	NotReady       string    `json:"not_ready,omitempty"`
	Draining       bool      `json:"draining"` // gsio-relay drain: no new nodes, the relay exits soon
	Counts         Counts    `json:"counts"`
}

// Counts are the sizes reported by Info.
type Counts struct {
	Peers           int `json:"peers"`            // connected libp2p peers
	Relays          int `json:"relays"`           // of which gsio relays (presence or direct protocol)
	Connections     int `json:"connections"`      // open WebSocket connections
	LocalNodes      int `json:"local_nodes"`      // node ids bound on this relay
	FederationNodes int `json:"federation_nodes"` // distinct node ids in the federation, this relay's included
	Reservations    int `json:"reservations"`     // circuit relay v2 reservations
}

// Peers is GET /api/v1/peers.
type Peers struct {
	Peers []Peer `json:"peers"` // sorted by id
}

// Peer is one connected libp2p peer.
type Peer struct {
	ID          string    `json:"id"`
	Addrs       []string  `json:"addrs"`        // remote multiaddr of each open connection, oldest first
	Direction   string    `json:"direction"`    // of the oldest connection: "inbound" or "outbound"
	ConnectedAt time.Time `json:"connected_at"` // when the oldest open connection was opened
	AgeSeconds  float64   `json:"age_seconds"`  // seconds since connected_at
	LatencyMS   *float64  `json:"latency_ms"`   // ping round trip (moving average); null until measured
	Protocols   []string  `json:"protocols"`    // from identify
	Agent       string    `json:"agent"`        // identify agent version; "" until identified
	Limited     bool      `json:"limited"`      // every connection is limited (relayed through circuit relay v2)
	GsioRelay   bool      `json:"gsio_relay"`   // a gsio relay of this network
	Bootstrap   bool      `json:"bootstrap"`    // one of this relay's --bootstrap peers
	Subscribed  []string  `json:"subscribed"`   // our topics the peer subscribes to
	Mesh        []string  `json:"mesh"`         // our topics whose GossipSub mesh holds the peer
	Score       *float64  `json:"score"`        // GossipSub score; null until sampled
	Connections []Conn    `json:"connections"`  // every open connection, oldest first
}

// Conn is one connection to a peer.
type Conn struct {
	Addr      string    `json:"addr"`      // remote multiaddr
	Direction string    `json:"direction"` // "inbound" or "outbound"
	OpenedAt  time.Time `json:"opened_at"`
	Limited   bool      `json:"limited"`
}

// Nodes is GET /api/v1/nodes.
type Nodes struct {
	Relay      string           `json:"relay"`      // this relay's peer ID ("" standalone)
	Local      []LocalNode      `json:"local"`      // nodes connected to this relay, sorted
	Federation []FederationNode `json:"federation"` // every node of the federation, sorted
}

// LocalNode is a node connected to this relay.
type LocalNode struct {
	ID          string    `json:"id"`
	Remote      string    `json:"remote"`       // the client's ip:port
	ConnectedAt time.Time `json:"connected_at"` // when its WebSocket connection opened
	AgeSeconds  float64   `json:"age_seconds"`
	MessagesIn  uint64    `json:"messages_in"`  // frames received from it
	MessagesOut uint64    `json:"messages_out"` // messages queued to it
	QueueFrames int       `json:"queue_frames"` // frames waiting to be written to it now
	QueueBytes  int       `json:"queue_bytes"`
}

// FederationNode is a node connected somewhere in the federation.
type FederationNode struct {
	ID     string   `json:"id"`
	Local  bool     `json:"local"`  // connected to this relay
	Relays []string `json:"relays"` // peer IDs of the relays holding it (this relay's included when local)
}

// Topics is GET /api/v1/topics.
type Topics struct {
	Topics []Topic `json:"topics"`
}

// Topic lists the peers of one GossipSub topic this relay has joined.
type Topic struct {
	Topic      string   `json:"topic"`
	Subscribed []string `json:"subscribed"` // peers subscribed to it
	Mesh       []string `json:"mesh"`       // peers in our mesh of it
}

// Reservations is GET /api/v1/reservations.
type Reservations struct {
	Reservations []Reservation `json:"reservations"`
}

// Reservation is a circuit relay v2 reservation.
type Reservation struct {
	Peer    string    `json:"peer"`
	Expires time.Time `json:"expires"`
	Addrs   []string  `json:"addrs"`
}

// apiError is the body of every error response of /api/v1.
type apiError struct {
	Error string `json:"error"`
}
