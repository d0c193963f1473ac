package testnet

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/client"
	"github.com/gsio-net/gsio-relay/nodeauth"
	"github.com/gsio-net/gsio-relay/relay"
)

// keyClient connects a node with key k to url with the client package
// (challenge and answer), failing the test on error.
func keyClient(t *testing.T, url string, k ed25519.PrivateKey) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.URLs = []string{url}
	cfg.NodeKey = k
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("key client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive waits for the next message of type typ on c.
func receive(t *testing.T, c *client.Client, typ string) client.Message {
	t.Helper()
	deadline := time.After(Wait)
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				t.Fatalf("client closed: %v", c.Err())
			}
			if m.Type == typ {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within %v", typ, Wait)
		}
	}
}

// TestKeyIDAcrossFederation: with real relays and real WebSocket clients
// in a 3-relay federation, an impostor without the key can neither bind a
// key id (on the owner's relay or another), nor take it over, nor receive
// its direct messages; the owner can take over its own older connection.
func TestKeyIDAcrossFederation(t *testing.T) {
	h := StartHarness(t, 3, Full)
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	k := ed25519.NewKeyFromSeed(seed)
	kid := nodeauth.KeyID(k.Public().(ed25519.PublicKey))
	owner := keyClient(t, h.Relays[0].URL, k)
	if owner.NodeID() != kid {
		t.Fatalf("bound as %q, want the key id %q", owner.NodeID(), kid)
	}
	h.WaitNodes(10*time.Second, kid)

	sender := Dial(t, h.Relays[2].URL+"?node_id=plain-sender", "plain-sender")
	Eventually(t, Wait, "plain-sender known at relay 0", func() bool {
		return slices.Contains(h.Nodes(0), "plain-sender")
	})

	// Impostors: a challenge it cannot answer, on relay 1 and on the
	// owner's relay 0, is closed 4001; a first message in the key id's
	// name gets auth_required.
	for _, r := range []int{1, 0} {
		imp := Dial(t, h.Relays[r].URL+"?node_id="+kid, kid)
		ch := imp.Expect("RelayChallenge")
		var c nodeauth.Challenge
		json.Unmarshal(ch.Payload, &c)
		_, p := c.Answer(ed25519.NewKeyFromSeed(make([]byte, 32)), time.Now()) // another key
		b, _ := json.Marshal(p)
		imp.Send("NodeAuth", "imp-auth", "relay", string(b))
		imp.ExpectClose(relay.CloseAuthFailed)
	}
	imp := Dial(t, h.Relays[1].URL, kid)
	imp.Send("NodeAnnounce", "imp-1", "", `{}`)
	if e := imp.ExpectError("auth_required"); e.Ref != "imp-1" {
		t.Fatalf("auth_required for %q, want imp-1", e.Ref)
	}
	// The owner was not disturbed: every direct message reaches it.
	for i := range 20 {
		sender.Send("EntryRequest", fmt.Sprint("d", i), kid, `{}`)
	}
	for i := range 20 {
		if m := receive(t, owner, "EntryRequest"); m.ID != fmt.Sprint("d", i) || m.Sender != "plain-sender" {
			t.Fatalf("owner got %s from %s, want d%d", m.ID, m.Sender, i)
		}
	}
	if n := imp.Pending(); n != 0 {
		t.Fatalf("the impostor received %d messages", n)
	}
	// The owner takes over its own older connection.
	newer := keyClient(t, h.Relays[0].URL, k)
	select {
	case <-owner.Done():
		if !errors.Is(owner.Err(), client.ErrReplaced) {
			t.Fatalf("older connection ended with %v, want replaced (4000)", owner.Err())
		}
	case <-time.After(Wait):
		t.Fatal("older connection not closed by the owner's newer one")
	}
	sender.Send("EntryRequest", "after", kid, `{}`)
	if m := receive(t, newer, "EntryRequest"); m.ID != "after" {
		t.Fatalf("newer connection got %s", m.ID)
	}
}
