package client

import (
	"time"
)

// Catch-up: a since_ms replay is one relay answer, at most MaxHistoryLimit
// broadcasts (SPEC section 7); when it is cut, its RelayHistoryEnd gives
// next_since_ms and live traffic follows at once. The client then fetches
// the rest with History calls, page by page, and puts what it did not have
// into Messages() (after live messages that arrived meanwhile: the order
// across the cut is not kept, nothing is lost or repeated). Until the gap
// is filled, a reconnection resumes from its start.

// gapRetry is the pause before a failed catch-up page is asked again.
const gapRetry = 500 * time.Millisecond

// noteCut records that a replay was cut at next (unix ms) and starts the
// catch-up goroutine if it does not run. Session reader.
func (c *Client) noteCut(next int64) {
	for {
		cur := c.gapFrom.Load()
		if cur != 0 && cur <= next {
			break
		}
		if c.gapFrom.CompareAndSwap(cur, next) {
			break
		}
	}
	if c.catching.CompareAndSwap(false, true) {
		c.catchWG.Go(c.catchUp)
	}
}

// catchUp fetches [gapFrom, now) page by page until an answer is not cut.
func (c *Client) catchUp() {
	for c.fetchGap() {
		// Done. A cut noted since fetchGap's last look found catching
		// still set and relies on this goroutine: look once more after
		// clearing it.
		c.catching.Store(false)
		if c.gapFrom.Load() == 0 || !c.catching.CompareAndSwap(false, true) {
			return
		}
	}
	c.catching.Store(false)
}

// fetchGap fetches pages from gapFrom until the gap is closed (true), or
// the client stops or the relay does not move forward (false: the gap
// stays for the next connection).
func (c *Client) fetchGap() bool {
	for c.ctx.Err() == nil {
		from := c.gapFrom.Load()
		if from == 0 {
			return true
		}
		res, err := c.historyCall(c.ctx, time.UnixMilli(from), time.Time{}, 0, true)
		if err != nil {
			c.log.Debug("catch-up page failed", "since_ms", from, "err", err)
			select {
			case <-c.ctx.Done():
				return false
			case <-time.After(gapRetry):
			}
			continue
		}
		for _, m := range res.Messages {
			if !c.deliverLate(m) {
				return false
			}
		}
		next := int64(0)
		if !res.NextSince.IsZero() {
			next = res.NextSince.UnixMilli()
		}
		if next != 0 && next <= from {
			// Asked again, it would answer the same page for ever.
			c.log.Warn("catch-up: the relay's next_since_ms does not move forward; stopped", "since_ms", from, "next_since_ms", next)
			return false
		}
		c.log.Debug("catch-up page", "since_ms", from, "count", len(res.Messages), "next_since_ms", next)
		c.gapFrom.CompareAndSwap(from, next)
	}
	return false
}

// deliverLate puts a fetched message into Messages() unless it was
// delivered already, waiting for room (it is not the connection's reader,
// so waiting stalls nothing); false once the client stops.
func (c *Client) deliverLate(m Message) bool {
	if !c.isNew(m) {
		return true
	}
	c.stats.delivered.Add(1)
	select {
	case c.msgs <- m:
		return true
	case <-c.ctx.Done():
		c.stats.delivered.Add(-1)
		return false
	}
}
