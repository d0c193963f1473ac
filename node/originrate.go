package node

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// buckets are token buckets, one per peer id, created on first use. Idle
// ones (full again) are dropped when there are more than max. One mutex,
// mu, taken alone.
type buckets struct {
	limit rate.Limit
	burst int
	max   int

	mu sync.Mutex
	m  map[peer.ID]*rate.Limiter
}

func newBuckets(limit float64, burst, max int) *buckets {
	return &buckets{limit: rate.Limit(limit), burst: burst, max: max, m: map[peer.ID]*rate.Limiter{}}
}

// take takes n tokens from key's bucket; with partial, as many of them as
// it holds. It returns how many it took.
func (b *buckets) take(key peer.ID, n int, partial bool, now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.m[key]
	if l == nil {
		if len(b.m) >= b.max {
			for k, v := range b.m {
				if v.TokensAt(now) >= float64(b.burst) {
					delete(b.m, k)
				}
			}
		}
		l = rate.NewLimiter(b.limit, b.burst)
		b.m[key] = l
	}
	if partial {
		n = max(min(n, int(l.TokensAt(now))), 0)
	}
	if n == 0 || !l.AllowN(now, n) {
		return 0
	}
	return n
}

// originRate bounds the broadcasts one origin may push into the
// federation (docs/PROTOCOL.md 3): a token bucket of Gossip.OriginRate
// messages a second, Gossip.OriginBurst deep, per origin, counting every
// GSIO message of a batch. The origin is the gossip author when it is a
// relay in the directory; for anyone else (a plain GossipSub peer, keys
// that never sent presence, unsigned gossip) it is the peer that handed
// the message to us, so that one peer signing with any number of keys
// shares one bucket at the relays it connects to, and the relays after
// them see no more than those let through. A message over the rate is
// ignored (not delivered, not forwarded, not penalised: an honest relay
// over the rate is not hostile) and counted (origin_rate). Buckets are
// kept for relays and connected peers, both bounded.
type originRate struct{ *buckets }

func newOriginRate(cfg Config) originRate {
	return originRate{newBuckets(cfg.Gossip.OriginRate, cfg.Gossip.OriginBurst, 4*(cfg.Presence.MaxRelays+cfg.Host.ConnHigh))}
}

// allow takes n messages from key's bucket, if it holds them.
func (o originRate) allow(key peer.ID, n int, now time.Time) bool {
	return o.take(key, n, false, now) == n
}

// peerGate bounds the gossip messages (of any topic; a batch is one) one
// peer may hand us, before pubsub queues them for validation (the
// equivalent of pubsub.WithPeerGater, which throttles by IP address at
// random once validation overflows: it would drop honest relays behind
// the attacker's address, and on loopback every relay): a token bucket of
// Gossip.PeerRate messages a second, Gossip.ValidateQueueSize/4 deep, per
// peer. Messages beyond it are cut from the RPC (not validated, not marked
// seen, so a copy from another peer still counts) and counted
// (peer_rate). So one peer fills at most a quarter of the validation
// queue at once, and honest messages arriving meanwhile find room.
type peerGate struct {
	*buckets
	tracer *tracer
}

func newPeerGate(cfg Config, t *tracer) peerGate {
	return peerGate{newBuckets(cfg.Gossip.PeerRate, max(cfg.Gossip.ValidateQueueSize/4, 1), 4*cfg.Host.ConnHigh), t}
}

// inspect is the pubsub RPC inspector (pubsub.WithAppSpecificRpcInspector).
func (g peerGate) inspect(from peer.ID, rpc *pubsub.RPC) error {
	n := len(rpc.Publish)
	if n == 0 {
		return nil
	}
	if k := g.take(from, n, true, time.Now()); k < n {
		rpc.Publish = rpc.Publish[:k]
		g.tracer.drop("peer_rate", n-k)
	}
	return nil
}
