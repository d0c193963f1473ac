// Package transport owns the WebSocket side of the relay: the HTTP listener
// and upgrade, one read pump per connection, a write pump that runs only
// while a connection has frames queued, and every per-connection limit
// (size, UTF-8, binary, keepalive, deadlines, send queue, connection counts,
// Origin, auth token).
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
//   - the Close waiter: Close starts one goroutine that waits on wg and
//     closes done, so that the wait can be bounded by ctx.
//
// Shutdown: Close marks the server closing (no new upgrades), stops the
// ticker, closes the listener and the not-yet-upgraded HTTP connections,
// and calls Conn.Close(1001) on every connection. Each writer flushes the
// frames queued so far and the close frame; each read pump ends on the
// client's close reply or a second later, closes its socket and calls
// Session.Closed. If ctx ends first, the remaining sockets are closed at
// once.
//
// Locks. Server.mu guards the connection set and the counters. Conn.mu
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
