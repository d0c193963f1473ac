package node

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gsio-net/gsio-relay/message"
)

// Message ids (docs/PROTOCOL.md "Message id"): for data that parses as a
// GSIO message with a non-empty message_id,
//
//	hex(sha256("gsio-msgid/1\x00" || uvarint(len(sender_id)) || sender_id || message_id))
//
// and for anything else (presence messages, garbage)
//
//	hex(sha256("gsio-rawid/1\x00" || data)).
const (
	msgIDPrefix = "gsio-msgid/1\x00"
	rawIDPrefix = "gsio-rawid/1\x00"
)

// messageID is the GossipSub message-id function of the federation, over
// the data of a message (any topic).
func messageID(data []byte) string {
	env, err := message.Parse(data)
	if err == nil && env.ID != "" {
		return envelopeID(env.Sender, env.ID)
	}
	h := sha256.New()
	h.Write([]byte(rawIDPrefix))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// envelopeID is the message id of the GSIO message (sender_id, message_id).
func envelopeID(sender, messageID string) string {
	h := sha256.New()
	var l [binary.MaxVarintLen64]byte
	h.Write([]byte(msgIDPrefix))
	h.Write(l[:binary.PutUvarint(l[:], uint64(len(sender)))])
	h.Write([]byte(sender))
	h.Write([]byte(messageID))
	return hex.EncodeToString(h.Sum(nil))
}

// pubsubMsgID adapts messageID to pubsub.WithMessageIdFn.
func pubsubMsgID(m *pb.Message) string { return messageID(m.GetData()) }

// broadcastTopic is the GossipSub topic carrying GSIO broadcasts.
func broadcastTopic(network string) string { return "gsio/" + network + "/broadcast/1" }

// presenceTopic is the GossipSub topic carrying relay presence.
func presenceTopic(network string) string { return "gsio/" + network + "/presence/1" }

// Score thresholds (docs/PROTOCOL.md "Peer scoring").
const (
	gossipThreshold   = -10
	publishThreshold  = -50
	graylistThreshold = -80
	acceptPXThreshold = 100 // peer exchange is off; only a very good peer could give PX
	oppGraftThreshold = 5
	invalidWeight     = -10 // per topic; P4 is the square of the invalid count

	ipColocationWeight    = -5 // P6 is weight * (peers on one IP - threshold)^2
	ipColocationThreshold = 4
)

// loopbackNets are exempt from IP colocation (P6).
var loopbackNets = []*net.IPNet{
	{IP: net.IPv4(127, 0, 0, 0), Mask: net.CIDRMask(8, 32)},
	{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
}

// scoreThresholds are the GossipSub score thresholds the node uses.
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           acceptPXThreshold,
		OpportunisticGraftThreshold: oppGraftThreshold,
	}
}

// scoreParams are the GossipSub peer score parameters for the two topics
// of network.
func scoreParams(network string) *pubsub.PeerScoreParams {
	topic := func() *pubsub.TopicScoreParams {
		return &pubsub.TopicScoreParams{
			TopicWeight: 1,
			// P1: a little credit for time in the mesh, capped at +10.
			TimeInMeshWeight:  0.01,
			TimeInMeshQuantum: time.Second,
			TimeInMeshCap:     1000,
			// P2: credit for first deliveries, capped at +20.
			FirstMessageDeliveriesWeight: 1,
			FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
			FirstMessageDeliveriesCap:    20,
			// P3/P3b off: traffic is bursty, a quiet mesh peer is fine.
			// P4: each rejected message counts; the penalty is
			// weight * count^2, so 1 invalid message = -10 (at the gossip
			// threshold), 3 = -90 (graylisted).
			InvalidMessageDeliveriesWeight: invalidWeight,
			InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
		}
	}
	return &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{
			broadcastTopic(network): topic(),
			presenceTopic(network):  topic(),
		},
		TopicScoreCap:     50,
		AppSpecificScore:  func(peer.ID) float64 { return 0 },
		AppSpecificWeight: 1,
		// P6: weight * (peers on one IP - 4)^2. Several relays behind one
		// address (NAT, one host) are normal, so up to 4 cost nothing
		// and 5 or 6 (-5, -20) are offset by an active relay's P1 and
		// P2; 8, the most connections the resource manager takes from
		// one IPv4 address, put each at -80, the graylist threshold: one
		// machine's throwaway keys cannot outvote the federation.
		// Loopback is exempt (relays on one host, tests), as it is from
		// the resource manager's per-IP limit.
		IPColocationFactorWeight:    ipColocationWeight,
		IPColocationFactorThreshold: ipColocationThreshold,
		IPColocationFactorWhitelist: loopbackNets,
		// P7: broken gossip promises and GRAFT flooding.
		BehaviourPenaltyWeight:    -1,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
	}
}
