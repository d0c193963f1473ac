package testnet

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/gsio-net/gsio-relay/client"
)

// BenchmarkBindLatency is what a client sees: connect over loopback,
// receive the challenge, sign, answer, and get RelayAuthOk (key), or
// connect and be bound by ?node_id= (plain), with the client package.
func BenchmarkBindLatency(b *testing.B) {
	r := StartStandalone(b, nil, nil)
	_, k, _ := ed25519.GenerateKey(nil)
	for _, bc := range []struct {
		name string
		key  ed25519.PrivateKey
	}{{"key", k}, {"plain", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := client.DefaultConfig()
			cfg.URLs = []string{r.URL}
			cfg.NodeKey = bc.key
			if bc.key == nil {
				cfg.NodeID = "plain-node"
			}
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := client.Dial(ctx, cfg)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
