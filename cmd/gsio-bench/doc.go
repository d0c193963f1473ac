// Command gsio-bench is the load generator of `make bench`: it starts
// gsio-relay processes (bin/gsio-relay), nats-server processes (the
// reference, spoken to over WebSocket) and its own reference hub, runs the
// scenarios against each on loopback, and prints delivered messages/s,
// loss, duplicates, publish-to-receive latency and the servers' CPU and
// RSS, with the ratio gsio-relay / nats-server. docs/BENCHMARKS.md says
// what the scenarios are and what the numbers mean.
//
// It shares the machine with the servers it measures, so the receive path
// is lean: one reader goroutine per connection parses WebSocket frames in
// place out of a 64 KiB buffer (ws.go), NATS frames go through a streaming
// parser that copies only a message cut by a frame boundary (nats.go),
// and a GSIO message is never decoded: the benchmark fields are found by
// scanning for a marker in the payload (msg.go). One clock reading per
// read, not per message. The generator's ceiling is measured against the
// reference hub (hub.go: frames forwarded unparsed, coalesced writes).
//
// Goroutines: per connection of a traffic scenario one reader (started by
// conn.start, ended by closing the socket); one per publisher while it
// publishes; dialling workers while connecting. Idle clients (S4) have no
// goroutine. Servers are child processes in their own process group, with
// SIGKILL as parent-death signal; every scenario starts fresh servers and
// stops them (SIGTERM, then SIGKILL after 5 s) before the next.
//
// Files: main.go (flags, the plan, results files), scenario.go (fan-out
// and direct runs), idle.go (S4), client.go (connections, receivers,
// publishers), ws.go, nats.go, msg.go, stats.go (latency histogram,
// sequence sets), targets.go and proc.go (server processes, /proc
// readings), hub.go (the reference hub), report.go (tables).
package main
