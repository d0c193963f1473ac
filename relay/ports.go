package relay

import (
	"context"
	"time"

	"github.com/gsio-net/gsio-relay/history"
	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/wsframe"
)

// The ports of the router: what it needs from the WebSocket side (Conn) and
// from the federation (Mesh), and what it offers each (Session, Inbound).
// transport.Conn and node.Node implement them without importing relay; cmd
// wires them.

// Close codes the router uses beyond RFC 6455's (docs/PROTOCOL.md).
const (
	ClosePolicy   = 1008 // RFC 6455 policy violation: flooding, bad node_id
	CloseReplaced = 4000 // the node id was taken over by a newer connection
)

// History is the relay's store of broadcasts (history.Store implements
// it). Append must not block; Range may (it runs on the reader's pump).
type History interface {
	Append(ts int64, sender, id string, frame []byte)
	Flush(ctx context.Context) error
	Range(since, until int64, limit int, skipSender string, fn func(ts int64, sender string, frame []byte) error) (history.Result, error)
}

// Conn is one client connection as the router sees it.
type Conn interface {
	// ID is unique among the connections of one listener.
	ID() uint64
	// RemoteAddr is the client's "ip:port" (logs, admin API).
	RemoteAddr() string
	// ConnectedAt is when the connection was accepted.
	ConnectedAt() time.Time
	// Query returns a connect parameter (node_id, ...), or "".
	Query(name string) string
	// Send queues f and never blocks; an error says why it was not
	// queued (closing, slow consumer: the connection is then closing).
	Send(f *wsframe.Frame) error
	// Close starts closing with a WebSocket close code; it does not block
	// and only the first call counts.
	Close(code int, reason string)
	// QueueLen reports the frames and bytes waiting to be written.
	QueueLen() (frames, bytes int)
}

// Mesh is the federation as the router sees it. node.Node implements it; a
// relay without federation uses a nil Mesh.
type Mesh interface {
	// Broadcast hands a client's broadcast (env.Raw, with its message_id
	// set) to every other relay. It must not block on the network.
	Broadcast(env *message.Envelope) error
	// Direct sends a direct message toward the relay that holds
	// env.Recipient. It reports false when no relay is known to hold it.
	// It must not block on the network for long.
	Direct(env *message.Envelope) bool
	// NodeJoined and NodeLeft announce a change of the local nodes. proof
	// is a key id's proof for this relay (nil for other ids); NodeJoined
	// is called again when a key id binds anew with a newer proof.
	NodeJoined(nodeID string, proof *nodeauth.Proof)
	NodeLeft(nodeID string)
	// RemoteNodes lists node ids held by other relays (any order, may
	// contain local ids for multi-homed nodes).
	RemoteNodes() []string
}

// Inbound is what the federation delivers to the router: node.Receiver.
// Deliver is called for every validated broadcast or direct message from
// another relay (env.Raw must not be modified; it may be retained).
// Learned is Deliver for a broadcast learned by reconciliation, paced
// (it may block). Undeliverable reports a direct message of a local sender
// that the remote relay could not deliver.
type Inbound interface {
	Deliver(env *message.Envelope)
	Learned(env *message.Envelope)
	Undeliverable(sender, messageID, recipient string)
}
