package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

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
// over the rate is not hostile) and counted (origin_rate).
//
// Buckets are kept for relays and connected peers (both bounded); idle
// ones (full again) are dropped when there are more than max. One mutex,
// mu, taken alone.
type originRate struct {
	limit rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	buckets map[peer.ID]*rate.Limiter
}

func newOriginRate(cfg Config) *originRate {
	return &originRate{
		limit:   rate.Limit(cfg.Gossip.OriginRate),
		burst:   cfg.Gossip.OriginBurst,
		max:     4 * (cfg.Presence.MaxRelays + cfg.Host.ConnHigh),
		buckets: map[peer.ID]*rate.Limiter{},
	}
}

// allow takes n messages from key's bucket, if it holds them.
func (o *originRate) allow(key peer.ID, n int, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.buckets[key]
	if b == nil {
		if len(o.buckets) >= o.max {
			for k, v := range o.buckets {
				if v.TokensAt(now) >= float64(o.burst) {
					delete(o.buckets, k)
				}
			}
		}
		b = rate.NewLimiter(o.limit, o.burst)
		o.buckets[key] = b
	}
	return b.AllowN(now, n)
}
