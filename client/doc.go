// Package client is the Go client of gsio-nodes (SPEC section 9): it
// connects a node to a federation of gsio-relays over WebSocket and keeps
// it connected.
//
// Dial takes a list of relay URLs and connects to the first that answers,
// binding the node id in one of three ways (SPEC section 6): a plain id
// (?node_id=), a key id proven by challenge and answer (Config.NodeKey), or
// a node token (?jwt=, Config.Token or WithTokenSource). A relay's
// --auth-token goes in the Authorization header (Config.AuthToken).
//
// Failover and backoff. When a connection fails or ends, the client moves
// to the next URL after a delay that doubles from BackoffMin to BackoffMax
// with each consecutive failure, drawn uniformly from [d/2, d] so that the
// nodes of a dead relay do not reconnect in step; a connection that lasted
// 10 s resets it. A relay that drains (RelayDraining, payload
// {"urls":[...],"deadline_ms":T}, docs/CLIENT.md "Drain") adds its peers'
// URLs to the list and the client moves to one of them at random, at once
// (within BackoffMin), resuming with since_ms when Resume is on. What no retry can fix stops the client, with the
// error in Err: a refused proof or token (close 4001, HTTP 401/403,
// ErrAuthFailed), an expired token without a token source (4002,
// ErrTokenExpired), and a newer connection of the same node id (4000,
// ErrReplaced): two processes with one identity should not fight over it.
//
// Resume and duplicates. With Config.Resume each reconnection asks for
// what was missed with ?since_ms= (SPEC section 7): the later of the
// highest federation ts delivered (a ts more than a minute ahead of the
// local clock does not count) and the local time the connection was last
// heard live (its bind, a frame, a ping or a pong; after a replay, only
// once a live broadcast as new as the replay's end has arrived: the
// relay's held backlog comes first), less ResumeMargin, or less
// FailoverMargin (5 minutes) when it connects to another relay than the
// last one: the relay it left may have been cut off from part of the
// federation before it went. Every
// node's message is filtered by (sender_id, message_id) in a bounded set
// (internal/ttlset), so replays, multi-homed senders and resumed overlaps
// are delivered once. A replay longer than one relay answer (10,000
// broadcasts) is continued with History calls until nothing is missing;
// those messages come after the live ones that arrived meanwhile, and a
// reconnection before the end resumes from where the fetching stopped.
// History sends a HistoryRequest and collects the answer until the
// RelayHistoryEnd that refers to it.
//
// Slow readers. Messages() holds Config.Buffer messages and never more.
// When it is full the client neither blocks its connection (which would
// stall pings and get it dropped by the relay as a slow consumer after a
// long silence) nor queues without bound: it closes the connection at once
// (ErrSlowReader to the state hook, Stats.SlowReaderDrops), waits until the
// reader has taken half of the buffer, and reconnects to the same relay;
// meanwhile Send and History fail at once with ErrSlowReader, so that a
// goroutine that both reads and sends does not wait for itself. The message
// that did not fit counts as not received. With Resume (and relays that
// keep history) the reconnection replays what was missed and nothing is
// lost; without it the messages sent meanwhile are lost, as across any
// connection loss.
//
// Goroutines. The client runs one goroutine for its connections (Dial to
// Close), and each connection a reader (the handshake, then every frame
// into Messages) and a writer (every frame out, pings), both stopped and
// waited for before the next connection starts; while a cut replay is
// fetched, one catch-up goroutine (catchup.go). Close cancels the
// client's context, sends the relay a close frame, waits for all of them
// and closes Messages(). Shared state: Client.mu guards the current
// connection and the bound id; session.mu a connection's History call and
// end reason; they are never held together.
//
// Files: client.go (Client, the connection loop, failover), session.go
// (one connection: dial, handshake, reader, writer), inbound.go (what the
// reader does with a frame), send.go (Send, History), catchup.go (the
// rest of a cut replay), token.go (node
// tokens), message.go (Message and the typed helpers), config.go.
package client
