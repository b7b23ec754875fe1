package deliver

import (
	"sync"
	"time"
)

// Breaker states.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half_open"
)

// Breaker is a per-target circuit breaker that fits the durable queue: it
// does not fail requests, it tells the target's loop whether to claim. While
// it is open nothing is claimed, so deliveries wait in the queue without
// spending attempts. After Cooldown one probe attempt is let through
// (half-open): success closes it, failure opens it again with the cool-down
// doubled, up to MaxCooldown.
//
// We keep our own rather than sony/gobreaker because the decision we need is
// "claim or not" before anything is taken from the queue, and a probe that
// is in flight must hold the breaker half-open across the store round trip;
// gobreaker's Execute wraps the call itself and counts requests it admitted.
type Breaker struct {
	Failures    int           // consecutive failures that open it; default 5
	Cooldown    time.Duration // first cool-down; default 30s
	MaxCooldown time.Duration // default 5m

	mu       sync.Mutex
	state    string
	fails    int
	openedAt time.Time
	cooldown time.Duration
	probing  bool
	changed  time.Time
}

// Allow reports how many attempts may start now: want when closed, at most
// one probe when half-open, none while open or while a probe is in flight.
func (b *Breaker) Allow(now time.Time, want int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	switch b.state {
	case BreakerOpen:
		if now.Sub(b.openedAt) < b.cooldown {
			return 0
		}
		b.set(BreakerHalfOpen, now)
		fallthrough
	case BreakerHalfOpen:
		if b.probing || want == 0 {
			return 0
		}
		b.probing = true
		return 1
	}
	return want
}

// Release gives back a probe slot that was allowed but not used (nothing
// was due).
func (b *Breaker) Release() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// Record counts an attempt's outcome. Only failures that say something about
// the target (network errors, timeouts, 5xx, 429) count; a 4xx the target
// answered on purpose does not.
func (b *Breaker) Record(now time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	if ok {
		b.fails = 0
		b.probing = false
		if b.state != BreakerClosed {
			b.cooldown = b.Cooldown
			b.set(BreakerClosed, now)
		}
		return
	}
	b.fails++
	switch {
	case b.state == BreakerHalfOpen:
		b.probing = false
		b.cooldown = min(b.cooldown*2, b.MaxCooldown)
		b.openedAt = now
		b.set(BreakerOpen, now)
	case b.state == BreakerClosed && b.fails >= b.Failures:
		b.openedAt = now
		b.set(BreakerOpen, now)
	}
}

// State returns the state, when it last changed, and when an open breaker
// will let a probe through.
func (b *Breaker) State() (state string, since, retryAt time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	if b.state == BreakerOpen {
		retryAt = b.openedAt.Add(b.cooldown)
	}
	return b.state, b.changed, retryAt
}

// Wait returns how long until an open breaker half-opens (0 otherwise).
func (b *Breaker) Wait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	if b.state != BreakerOpen {
		return 0
	}
	return max(b.openedAt.Add(b.cooldown).Sub(now), 0)
}

func (b *Breaker) init() {
	if b.state != "" {
		return
	}
	if b.Failures <= 0 {
		b.Failures = 5
	}
	if b.Cooldown <= 0 {
		b.Cooldown = 30 * time.Second
	}
	if b.MaxCooldown < b.Cooldown {
		b.MaxCooldown = max(5*time.Minute, b.Cooldown)
	}
	b.state, b.cooldown = BreakerClosed, b.Cooldown
}

func (b *Breaker) set(state string, now time.Time) {
	b.state, b.changed = state, now
}
