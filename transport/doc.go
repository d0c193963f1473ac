// Package transport owns the WebSocket side of the relay: the HTTP listener
// and upgrade, one read pump per connection, a write pump that runs only
// while a connection has frames queued, and every per-connection limit
// (size, UTF-8, binary, keepalive, deadlines, send queue, connection counts,
// Origin, auth token), the client's address behind trusted proxies, and the
// wss certificate. The limits that may change while the server runs
// (limits.go: connection counts, send queue, read limit of new
// connections, large-message budget) are behind an atomic pointer that
// SetLimits replaces; they are read from it, never from the Config.
//
// It knows nothing of GSIO: the Handler (cmd wires relay.Router.Open) gets
// each new connection and returns the Session that takes its text frames;
// connect parameters are plain query parameters (Conn.Query), frames are
// wsframe.Frames, and close codes other than RFC 6455's are the handler's.
//
// Goroutines. Every one is started through Server.wg and ends before
// Server.Close returns (except the waiter noted below):
//
//   - Serve (one, from Start): net/http's accept loop. Ends when Close
//     closes the http.Server. net/http's own per-connection goroutines are
//     counted in wg through ConnState until the connection is closed or
//     hijacked; the upgrade handler holds a count of its own across the
//     hijack until the read pump holds one.
//   - keepalive (one, from Start): every PingInterval it queues a ping to
//     each connection. Ends when Close closes quit.
//   - read pump (one per connection, from the upgrade handler, which then
//     returns): reads frames, calls the Handler, then Session.Frame and Session.Closed, owns the
//     socket's final Close. Ends on a read error, the peer's close frame,
//     or the read deadline (PongTimeout; capped to about a second once a
//     close frame is sent, and to "now" when a write fails).
//   - writer (at most one per connection, only while something is queued):
//     started by Send (or a ping, pong or close); drains the whole queue
//     with one vectored write per batch and exits when the queue is empty,
//     after writing a close frame, or on a write error. An idle connection
//     has no writer.
//   - watchTLS (one, from Start, only with TLS): every 2 s it re-reads
//     TLSCertFile and TLSKeyFile and, when their content changed and the
//     pair loads, serves the new pair to new handshakes (GetCertificate);
//     a pair that fails keeps the old one and is logged once. ReloadTLS
//     (SIGHUP) does the same at once. Established connections are never
//     touched. Ends when Close closes quit.
//   - the Close waiter: Close starts one goroutine that waits on wg and
//     closes done, so that the wait can be bounded by ctx.
//
// The client's address (Conn.RemoteAddr, the MaxConnsPerIP key, the
// "remote" of logs) is decided once, at the upgrade, by
// internal/clientip, the rule the admin API shares. Without TrustedProxies
// it is the TCP peer. With them, a connection from a trusted peer may open
// with a PROXY protocol v1/v2 header (optional; read by go-proxyproto on
// the connection's own goroutine within ReadHeaderTimeout; see
// proxyListener), whose source then stands for the peer; from any other
// peer no header is looked for, and one sent is refused by net/http as a
// malformed request. If the peer (so decided) is trusted, the client is the
// right-most X-Forwarded-For entry that is not a trusted proxy; a malformed
// entry or the walk's bound leaves the last trusted hop.
//
// Shutdown: Close marks the server closing (no new upgrades), stops the
// ticker and the TLS watcher, closes the listener and the not-yet-upgraded HTTP connections,
// and calls Conn.Close(1001) on every connection. Each writer flushes the
// frames queued so far and the close frame; each read pump ends on the
// client's close reply or a second later, closes its socket and calls
// Session.Closed. If ctx ends first, the remaining sockets are closed at
// once.
//
// Locks. Server.mu guards the connection set and the counters.
// certReloader.mu serialises reloads (held while the two files are read and
// parsed; handshakes read the served pair from an atomic pointer). Conn.mu
// guards a connection's queue and closing state. socket.mu serialises
// writes to one socket (the writer's batches and gorilla's own close
// frames). None is acquired while another is held, except that Conn.mu is
// held while Send starts a writer, which takes no lock.
//
// Memory. An idle connection holds its read pump's stack, gorilla's Conn
// with a ReadBufferSize bufio.Reader, and the socket: no writer goroutine,
// no write buffer, no timer. Message buffers come from a pool for the
// length of one Session.Frame call.
package transport
