// Package testnet runs relays for tests and benchmarks: WebSocket test
// clients, an in-process harness of N relays on loopback with topologies,
// and (in testnet/docker) the docker compose testnet.
//
// Every goroutine here belongs to a Client or a relay of the harness and is
// stopped by its Close, registered with t.Cleanup.
package testnet
