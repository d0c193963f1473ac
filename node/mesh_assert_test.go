package node_test

import (
	"github.com/gsio-net/gsio-relay/node"
	"github.com/gsio-net/gsio-relay/relay"
)

// node implements the router's view of the federation, and the router's
// inbound side is what node delivers to (structural typing: node does not
// import relay).
var (
	_ relay.Mesh    = (*node.Node)(nil)
	_ node.Receiver = relay.Inbound(nil)
)
