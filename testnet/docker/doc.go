// Package docker drives the docker compose testnet of gsio-relay: N relays
// of the FROM-scratch image on one private docker network, one federation,
// each relay with its own identity in its own volume and its WebSocket and
// admin ports published on the host's 127.0.0.1.
//
// NewState and Compose write the compose file for N relays (tnctl gen, run
// by testnet.sh up); State is the description of a running testnet that
// testnet.sh leaves in .run/testnet.json; WaitWhole waits until every
// relay is healthy and every relay delivers to every other (tnctl wait,
// the end of make testnet-up). The tests behind the build tag "testnet"
// (make testnet-test) drive a running testnet through this package, the
// published ports and the docker CLI.
//
// RunChaos is the chaos mode (tnctl chaos, make testnet-chaos,
// docs/TESTNET.md): clients of package client on every relay broadcast
// while relays are partitioned (chaosnet.go: iptables rules inside the
// relays' network namespaces) and killed and started again; then it heals
// everything, waits for convergence and checks it (chaoscheck.go, pure
// logic with unit tests).
//
// The package runs no long-lived goroutine: the WebSocket probes of
// WaitWhole are closed before it returns, and RunChaos stops its clients,
// senders and auditors before it returns.
package docker
