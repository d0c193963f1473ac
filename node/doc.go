// Package node owns everything libp2p in gsio-relay: the relay's Ed25519
// identity, the libp2p host (TCP, QUIC, WebSocket; Noise, TLS; yamux;
// resource and connection managers; identify, ping), GossipSub on the two
// federation topics, the presence directory (which relay holds which
// node), direct routing over /gsio/direct/1.0.0, and bootstrap redialling;
// NAT traversal (circuit relay v2 service, AutoNAT, hole punching:
// natrelay.go), discovery (mDNS, DHT rendezvous: discovery.go), private
// federations (swarm key, allow-list: private.go) and Probe (probe.go).
// The wire formats are specified in docs/PROTOCOL.md.
//
// A Node implements relay.Mesh (Broadcast, Direct, NodeJoined, NodeLeft,
// RemoteNodes) without importing relay, and calls the router back through
// Receiver (relay.Inbound). Data path: relay inbound routing -> Broadcast
// -> publishLoop -> gossip -> remote validateBroadcast -> subLoop ->
// Receiver.Deliver; Direct -> senderLoop -> stream -> remote handleDirect
// -> Receiver.Deliver (or a NACK -> undeliverableLoop ->
// Receiver.Undeliverable).
//
// Goroutines (all tracked by Node.wg, all ended by Node.ctx):
//   - subLoop, one per topic: reads the subscription, hands messages on;
//   - publishLoop: the only publisher of broadcasts (Broadcast never blocks);
//   - presenceLoop: join/leave deltas at once, snapshots every interval;
//   - presenceEvents: kicks a snapshot when a peer joins the presence topic;
//   - sweepLoop: expires directory entries, logs aggregated drops;
//   - undeliverableLoop: the only caller of Receiver.Undeliverable;
//   - bootstrapLoop, one per bootstrap peer: keeps it connected;
//   - senderLoop, one per destination relay of direct traffic, started on
//     demand, ended after DirectIdleTimeout;
//   - discoveryWorker (4, with mDNS or the DHT): dial discovered relays;
//   - rendezvousLoop (with the DHT): advertise and look up the rendezvous.
//
// go-libp2p runs the relay service, AutoNAT, hole punching and mDNS as
// part of the host (mDNS is closed first in Close); the DHT runs its own
// goroutines from New and is closed after ours have ended.
//
// libp2p runs handleDirect for inbound streams; those are tracked by
// Node.inWG. Pubsub runs our validators (validateBroadcast asynchronously,
// it may wait for presence; validatePresence inline).
//
// Close cancels Node.ctx, waits for the goroutines above, cancels pubsub,
// then the subscriptions and topics (handles only: pubsub is stopped
// first on purpose, a graceful unsubscribe would make the neighbours
// refuse this peer id in their meshes for a minute after a quick restart),
// closes the host, resets the remaining inbound direct streams and waits
// for their handlers.
//
// Locks (one per table, never two held at once, except sendersMu ->
// sender.mu in Close and directory-internal locking):
//   - startMu: started/closed, the Receiver, topics and subscriptions;
//   - localMu: the local node set and pending presence deltas;
//   - directory.mu: the presence directory;
//   - sendersMu: the per-peer senders map; sender.mu: a sender's stream;
//   - inMu: inbound direct streams;
//   - pendingMu: messages held by the speak-for wait, per origin;
//   - scoresMu: the last sampled peer scores;
//   - tracer.mu: drop counts and mesh membership;
//   - timeCache.mu: direct-message dedup and the sent log;
//   - reservations.mu: the mirror of the relay service's reservations
//     (taken inside go-libp2p's relay lock, via the connection manager);
//   - discovery.mu: discovered peers' last dial and source;
//   - allowBlacklist.mu: peers blacklisted by pubsub.BlacklistPeer.
package node
