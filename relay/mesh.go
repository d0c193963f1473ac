package relay

import "github.com/gsio-net/gsio-relay/message"

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
	// NodeJoined and NodeLeft announce a change of the local nodes.
	NodeJoined(nodeID string)
	NodeLeft(nodeID string)
	// RemoteNodes lists node ids held by other relays (any order, may
	// contain local ids for multi-homed nodes).
	RemoteNodes() []string
}

// Inbound is what the federation delivers to the router: node.Receiver.
// Deliver is called for every validated broadcast or direct message from
// another relay (env.Raw must not be modified; it may be retained).
// Undeliverable reports a direct message of a local sender that the remote
// relay could not deliver.
type Inbound interface {
	Deliver(env *message.Envelope)
	Undeliverable(sender, messageID, recipient string)
}
