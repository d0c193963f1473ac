package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/internal/testutil"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	dto "github.com/prometheus/client_model/go"
)

// TestSubscriptionWatch: a relay of the federation (it announces presence)
// that stays connected without being subscribed to the broadcast topic, as
// go-libp2p-pubsub v0.19 leaves a relay after a reconnect, is disconnected
// after SubscriptionGrace; a healthy relay is not.
func TestSubscriptionWatch(t *testing.T) {
	grace := func(c *Config) { c.Gossip.SubscriptionGrace = time.Second }
	a, b := newNode(t, "a", grace), newNode(t, "b", grace)
	connectFull(t, a, b)
	_, pt := a.Topics()
	half := newBareHost(t, pubsub.WithMessageIdFn(pubsubMsgID))
	pres := half.join(t, pt)
	sub, err := pres.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	half.connect(t, a)

	// It announces itself until a has it in its directory.
	epoch, seq := time.Now().UnixMilli(), uint64(0)
	testutil.CheckFor(t, 10*time.Second, func() error {
		seq++
		data, _ := json.Marshal(presenceMessage{Type: presenceSnapshot, Relay: half.ID().String(),
			Epoch: epoch, Seq: seq, IntervalMS: 8000, Nodes: []string{"half-node"}})
		if err := pres.Publish(context.Background(), data); err != nil {
			return err
		}
		if a.dir.lastSeen(half.ID()).IsZero() {
			return errors.New("a does not know the half-subscribed relay yet")
		}
		return nil
	})
	connectedAt := time.Now()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if a.Host().Network().Connectedness(half.ID()) == network.Connected {
			return fmt.Errorf("a still connected to the relay that is not subscribed to broadcast")
		}
		return nil
	})
	t.Logf("disconnected %v after a knew it (grace 1 s)", time.Since(connectedAt).Round(time.Millisecond))
	var m dto.Metric
	if err := a.gossip.m.subResets.Write(&m); err != nil || m.GetCounter().GetValue() < 1 {
		t.Fatalf("subscription_resets_total = %v (%v); want >= 1", m.GetCounter().GetValue(), err)
	}
	testutil.Stays(t, 3*time.Second, func() error {
		if a.Host().Network().Connectedness(b.ID()) != network.Connected {
			return errors.New("a disconnected the healthy relay b")
		}
		return nil
	})
}
