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
// The package runs no long-lived goroutine: the WebSocket probes of
// WaitWhole are closed before it returns.
package docker
