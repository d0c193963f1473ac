// Package syncproto is range-based set reconciliation of two relays'
// histories over one stream, /gsio/sync/1.0.0 (docs/PROTOCOL.md 11): the
// frame codec (frame.go), the bounds of a session (limits.go) and the
// two roles (session.go). It knows the history only through Store (the
// entries (ts, key), their per-range count and XOR fingerprint, and a
// frame by its key) and judges nothing itself: Side.Accept validates and
// stores each message received. It owns no goroutine and no lock: a
// session runs on its caller's goroutine, lock-step (one request, one
// answer), and ends with the stream; the caller bounds it in time with a
// deadline on the stream. Package node runs it over libp2p streams.
package syncproto
