package deliver

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// BudgetState is a target's daily request budget as of now.
type BudgetState struct {
	Daily     int       `json:"daily"`
	Used      int       `json:"used"`
	Remaining int       `json:"remaining"`
	ResetsAt  time.Time `json:"resets_at"` // the next UTC midnight
	Exhausted bool      `json:"exhausted"`
}

// budget counts a target's requests per UTC day. The count is kept in the
// store's counters (when the dispatcher has them), so that a restart does
// not hand out a fresh budget; the in-memory copy follows it.
type budget struct {
	limit int

	mu     sync.Mutex
	day    string // the UTC day used counts, "2006-01-02"
	used   int
	loaded bool // used was read from the counters for day
}

func dayOf(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func nextMidnight(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// state reports the budget at now.
func (b *budget) state(now time.Time) BudgetState {
	b.mu.Lock()
	used := b.used
	if b.day != dayOf(now) {
		used = 0
	}
	b.mu.Unlock()
	rem := max(b.limit-used, 0)
	return BudgetState{Daily: b.limit, Used: used, Remaining: rem, ResetsAt: nextMidnight(now), Exhausted: rem == 0}
}

// counterName is the store counter of target's budget on day.
func counterName(target, day string) string { return "budget:" + target + ":" + day }

// guard returns how many deliveries may be claimed now (at most free): the
// rate limits' tokens and the budget's remainder. When that is 0, held
// says which guardrail holds them back and until when it does.
func (l *loop) guard(ctx context.Context, now time.Time, free int) (want int, held string, until time.Time) {
	want = free
	if free <= 0 {
		return 0, "", time.Time{}
	}
	if l.budget != nil {
		rem := l.remaining(ctx, now)
		if rem <= 0 {
			return 0, "budget", nextMidnight(now)
		}
		want = min(want, rem)
	}
	for _, lim := range l.limits {
		tokens := int(math.Floor(lim.TokensAt(now)))
		if tokens <= 0 {
			r := lim.ReserveN(now, 1)
			wait := r.DelayFrom(now)
			r.CancelAt(now)
			return 0, "rate", now.Add(wait)
		}
		want = min(want, tokens)
	}
	return want, "", time.Time{}
}

// remaining is what is left of today's budget, read from the counters
// once a day (and at start).
func (l *loop) remaining(ctx context.Context, now time.Time) int {
	b := l.budget
	day := dayOf(now)
	b.mu.Lock()
	if b.day != day {
		b.day, b.used, b.loaded = day, 0, false
	}
	loaded := b.loaded
	b.mu.Unlock()
	if !loaded && l.d.Counters != nil {
		n, err := l.d.Counters.Add(ctx, counterName(l.t.Name, day), 0, time.Time{})
		if err != nil {
			l.d.Logger.Warn("budget: reading the count", slog.String(relay.LogKeyTarget, l.t.Name), slog.String(relay.LogKeyError, err.Error()))
		} else {
			b.mu.Lock()
			if b.day == day {
				b.used, b.loaded = max(b.used, n), true
			}
			b.mu.Unlock()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limit - b.used
}

// spend takes n claimed deliveries from the rate limits and the budget.
func (l *loop) spend(ctx context.Context, now time.Time, n int) {
	if n <= 0 {
		return
	}
	for _, lim := range l.limits {
		lim.ReserveN(now, n) // may go into debt when n exceeds the tokens
	}
	b := l.budget
	if b == nil {
		return
	}
	day := dayOf(now)
	b.mu.Lock()
	if b.day != day {
		b.day, b.used, b.loaded = day, 0, false
	}
	b.used += n
	b.mu.Unlock()
	if l.d.Counters == nil {
		return
	}
	total, err := l.d.Counters.Add(ctx, counterName(l.t.Name, day), n, nextMidnight(now).Add(24*time.Hour))
	if err != nil {
		l.d.Logger.Warn("budget: storing the count", slog.String(relay.LogKeyTarget, l.t.Name), slog.String(relay.LogKeyError, err.Error()))
		return
	}
	b.mu.Lock()
	if b.day == day {
		b.used, b.loaded = max(b.used, total), true // other sidecars may spend too
	}
	b.mu.Unlock()
}
