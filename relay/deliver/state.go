// What the dispatcher reports about its targets: breakers, load and
// guardrails (stats, metrics).

package deliver

import (
	"time"
)

// TargetState is a target's delivery health and guardrails, for stats.
type TargetState struct {
	Breaker      string    `json:"breaker"`
	BreakerSince time.Time `json:"breaker_since,omitzero"`
	RetryAt      time.Time `json:"breaker_retry_at,omitzero"`
	InFlight     int       `json:"in_flight"`
	Concurrency  int       `json:"concurrency"`
	// RatePerMinute is the configured cap (0 = none).
	RatePerMinute float64 `json:"rate_per_minute,omitempty"`
	// Budget is the daily request budget, when the target has one.
	Budget *BudgetState `json:"budget,omitempty"`
	// Waiting says why due deliveries are held back now: "budget",
	// "breaker", "rate", or "" when they are not.
	Waiting string `json:"waiting,omitempty"`
}

// Breakers reports each target's breaker state (for metrics).
func (d *Dispatcher) Breakers() map[string]string {
	out := make(map[string]string, len(d.targets))
	for _, l := range d.targets {
		s, _, _ := l.breaker.State()
		out[l.t.Name] = s
	}
	return out
}

// Targets reports each target's breaker state, load and guardrails.
func (d *Dispatcher) Targets() map[string]TargetState {
	out := make(map[string]TargetState, len(d.targets))
	now := d.Now()
	for _, l := range d.targets {
		s, since, retry := l.breaker.State()
		ts := TargetState{Breaker: s, BreakerSince: since, RetryAt: retry, InFlight: int(l.inflight.Load()),
			Concurrency: l.t.Concurrency, RatePerMinute: l.t.RatePerMinute}
		if l.budget != nil {
			b := l.budget.state(now)
			ts.Budget = &b
		}
		if w, ok := l.waiting.Load().(string); ok {
			ts.Waiting = w
		}
		out[l.t.Name] = ts
	}
	return out
}

// Budgets reports the daily request budget of each target that has one.
func (d *Dispatcher) Budgets() map[string]BudgetState {
	out := map[string]BudgetState{}
	now := d.Now()
	for _, l := range d.targets {
		if l.budget != nil {
			out[l.t.Name] = l.budget.state(now)
		}
	}
	return out
}
