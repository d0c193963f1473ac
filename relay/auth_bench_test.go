package relay

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/message"
	"github.com/gsio-net/gsio-relay/nodeauth"
)

// BenchmarkKeyIDBind is the relay's side of one key-id bind: Open (a
// challenge with a fresh nonce), then the NodeAuth answer checked and the
// id bound (RelayAuthOk). The client's signature is made outside the timer.
// Compare BenchmarkPlainBind for a bind without proof.
func BenchmarkKeyIDBind(b *testing.B) {
	r, err := New(DefaultConfig(), nil, WithRelayPeerID(relayPeer))
	if err != nil {
		b.Fatal(err)
	}
	k := seededKey(1)
	id := nodeauth.KeyID(k.Public().(ed25519.PublicKey))
	b.ReportAllocs()
	for b.Loop() {
		c := &memConn{id: 1, query: map[string][]string{"node_id": {id}}}
		s := r.Open(c)
		var ch nodeauth.Challenge
		b.StopTimer()
		var m got
		json.Unmarshal(c.frames[0], &m)
		json.Unmarshal(m.Payload, &ch)
		_, p := ch.Answer(k, time.Now())
		pb, _ := json.Marshal(p)
		frame := message.Build(message.TypeNodeAuth, "a", id, "relay", pb)
		b.StartTimer()
		s.Frame(frame)
		if s.nodeID != id {
			b.Fatal("not bound")
		}
		s.Closed()
	}
}

func BenchmarkPlainBind(b *testing.B) {
	r, err := New(DefaultConfig(), nil, WithRelayPeerID(relayPeer))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c := &memConn{id: 1, query: map[string][]string{"node_id": {"plain-node"}}}
		s := r.Open(c)
		s.Closed()
	}
}
