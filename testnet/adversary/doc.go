// Package adversary is a library of hostile libp2p peers for the
// federation's adversary suite (SPEC 8, docs/PROTOCOL.md): each Peer is a
// bare go-libp2p host with plain GossipSub and keys of its own, and each
// attack is one function that speaks the federation's public wire formats
// (the presence JSON, broadcasts and batches, /gsio/direct/1.0.0 frames,
// raw GossipSub RPCs) against real relays. It does not import package
// node: node's own tests use it as well as the in-process harness.
//
// Probe samples a process's goroutines, heap and open file descriptors,
// before, at the peak of and after an attack.
//
// Goroutines: a Peer runs go-libp2p's and pubsub's, ended by Close; Probe
// runs one sampler between Start and Stop. Nothing else is left running
// when an attack function returns.
package adversary
