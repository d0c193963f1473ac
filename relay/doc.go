// Package relay is the bridge between the WebSocket side (transport) and the
// federation (node): it binds connections to node ids, routes each message
// to local nodes and to the mesh, answers NodeListRequest, and turns bad
// input into RelayError messages.
//
// It owns its ports (ports.go): Conn, the client connection it needs, and
// Mesh, the federation it needs; it offers Session (one per connection,
// from Router.Open) and Inbound. It imports neither transport nor node:
// cmd wires them, and router_test.go drives the router with in-memory
// connections.
//
// The data path, one frame at a time:
//
//	transport read pump -> relay inbound routing (inbound.go) -> node publish
//	-> gossip -> remote node subscription loop -> relay outbound delivery
//	(outbound.go) -> transport send -> write pump.
//
// Drain (drain.go): Drain sends every bound node RelayDraining and makes
// Open and bind refuse new nodes (close 1013); the draining flag is set
// with Router.mu held, so no node binds after the nodes are told. Limits
// (limits.go) are the settings that change while the router runs
// (SetLimits, on SIGHUP): an atomic pointer read on each use, never cfg.
//
// Shared state: Router.mu guards the table of bound local nodes. Mesh
// NodeJoined/NodeLeft are called with Router.mu held so that the federation
// sees joins and leaves in order; the Mesh must not call back into the
// Router from those methods. The dedup set (internal/ttlset) has its own
// mutex, never held together with Router.mu.
//
// The Router starts no goroutines: it runs on the transport's read pumps and
// the node's delivery loops, so it has nothing to shut down.
package relay
