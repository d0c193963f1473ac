// Package node owns everything libp2p in gsio-relay: the relay's Ed25519
// identity, the libp2p host (TCP, QUIC, WebSocket; Noise, TLS; yamux;
// resource and connection managers; identify, ping), GossipSub on the two
// federation topics, the presence directory (which relay holds which
// node), direct routing over /gsio/direct/1.0.0, discovery (bootstrap
// redialling, mDNS, DHT rendezvous), NAT traversal (circuit relay v2
// service, AutoNAT, hole punching), private federations (swarm key,
// allow-list) and Probe. The wire formats are specified in
// docs/PROTOCOL.md.
//
// A Node implements relay.Mesh (Broadcast, Direct, NodeJoined, NodeLeft,
// RemoteNodes) without importing relay, and calls the router back through
// Receiver (relay.Inbound). Data path: relay inbound routing -> Broadcast
// -> publisher.publishLoop -> gossip -> remote publisher.validate ->
// remote subscription reader -> Receiver.Deliver; Direct -> senderLoop ->
// stream -> remote handleStream -> Receiver.Deliver (or a NACK ->
// undeliverableLoop -> Receiver.Undeliverable).
//
// Node composes components, each in files named for its role, each
// owning its state, its goroutines (a context that is a child of the
// node's, and a WaitGroup every one of them goes through) and its close:
//
//   - gossip (gossip.go, subwatch.go, tracer.go, msgid.go): pubsub, our
//     two topics, peer scores, the subscription filter and the per-peer
//     gate in front of validation (originrate.go). Goroutines: subscriptionWatch,
//     reportDrops. Pubsub runs its own, stopped by close.
//   - presence (presence.go, presencepull.go, directory.go): local nodes,
//     the presence topic (deltas and digest heartbeats), the directory,
//     and /gsio/presence/1.0.0 (a relay's set, pulled on a heartbeat
//     mismatch or at first contact). Goroutines: the presence
//     subscription reader (readSub -> apply), presenceLoop,
//     presenceEvents, sweepLoop, pullLoop and the pulls it starts (at
//     most 4), inbound pull handlers (at most 8 answering).
//   - publisher (publisher.go, speakfor.go, originrate.go): the
//     broadcast topic both ways, the speak-for rule and its held budget,
//     the per-origin rate. Goroutines: the broadcast subscription reader (readSub ->
//     deliver), publishLoop, broadcastEvents. Pubsub runs its validator
//     (validate, asynchronous: speakFor may hold a message);
//     presence.validate runs inline.
//   - direct (direct.go, framing.go): direct streams and NACKs.
//     Goroutines: senderLoop, one per destination relay, started on
//     demand, ended after Direct.IdleTimeout; undeliverableLoop, the only
//     caller of Receiver.Undeliverable. libp2p runs handleStream for
//     inbound streams; those are tracked by direct.inWG.
//   - discovery (discovery.go, bootstrap.go): Goroutines: bootstrapLoop,
//     one per bootstrap peer; discoveryWorker (4, with mDNS or the DHT);
//     rendezvousLoop (with the DHT). mDNS and the DHT run their own.
//   - the relay service, AutoNAT and hole punching (natrelay.go, host.go)
//     are go-libp2p's, run by the host; natrelay.go mirrors the
//     reservations. private.go and host.go build the host; none of them
//     runs a goroutine of ours.
//   - inspector (inspect.go): read-only views for the admin API,
//     embedded in Node; no goroutine, no state of its own.
//   - inspectService (inspectproto.go, inspectsummary.go,
//     inspectsweep.go): the inspection
//     protocol /gsio/inspect/1.0.0 (docs/INSPECT.md) and the sweep of
//     the federation behind MeshView. Goroutines: sampleLoop (counter
//     samples for rates, idle token buckets); one sweep at a time, which
//     waits for its requests. libp2p runs handle for inbound streams,
//     counted (at most Inspect.MaxConcurrent) and waited for by close.
//   - syncer (sync.go, with package syncproto): history reconciliation,
//     /gsio/sync/1.0.0 (docs/PROTOCOL.md 11), only with a history
//     (WithHistory). Goroutines: syncLoop (pending and periodic
//     sessions), one per outbound session (at most Sync.MaxSessions in
//     all). libp2p runs handle for inbound sessions, tracked by hwg
//     (close resets them and waits).
//   - standing (standing.go): which peers are relays in good standing,
//     for the directory's fair share; no goroutine, no state of its own
//     (presence's sweepLoop refreshes the directory's view of it).
//
// Start joins the topics, then starts direct, publisher, presence, gossip,
// discovery, inspect and sync. Close cancels the node's context (every
// component's goroutines stop at once), then closes them in reverse:
// sync and inspect (each: its handler removed, its goroutines and
// handlers waited for),
// discovery (mDNS,
// its goroutines, then the DHT), direct (senders' streams reset, its
// goroutines, then the inbound streams reset and their handlers waited
// for), publisher, presence, gossip (its goroutines, then pubsub, then the
// subscriptions and topics: pubsub is stopped first on purpose, a graceful
// unsubscribe would make the neighbours refuse this peer id in their
// meshes for a minute after a quick restart), and last the host.
//
// Locks, one per table; none is held while another is taken, except
// direct.sendersMu -> sender.mu (close resets the senders' streams):
//   - Node.mu: started and closed; serializes Start and Close, which
//     alone write gossip's topic handles;
//   - presence.mu: the local node set, its digest and pending presence
//     deltas; presence.pl.mu: the pull schedule (taken alone);
//   - directory.mu: the presence directory;
//   - speakFor.mu: messages held by the speak-for wait, per origin, per
//     peer and in all;
//   - buckets.mu: the per-origin rate buckets (originRate), and those of
//     the per-peer gate (peerGate, taken on pubsub's event loop);
//   - publisher.peersMu: the peers subscribed to the broadcast topic;
//   - direct.sendersMu: the per-relay senders; sender.mu: a sender's
//     stream;
//   - direct.inMu: inbound direct streams;
//   - the ttlset.Set locks of direct.seen and direct.sent (dedup of
//     delivered direct messages; the sent log a NACK must match);
//   - gossip.scoresMu: the last sampled peer scores;
//   - tracer.mu: drop counts, mesh membership, pubsub's outbound streams;
//   - reservations.mu: the mirror of the relay service's reservations
//     (taken inside go-libp2p's relay lock, via the connection manager);
//   - discovery.mu: discovered peers' last dial and source;
//   - allowBlacklist.mu: peers blacklisted by pubsub.BlacklistPeer;
//   - syncer.mu: running sessions, backoffs, pending sessions, inbound
//     sync streams;
//   - inspectService.mu (token buckets, inbound count), sampleMu
//     (counter samples, the reused summary), viewMu (the cached view,
//     the sweep in flight).
package node
