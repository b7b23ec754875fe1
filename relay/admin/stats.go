package admin

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
)

// TargetHealth is one target's delivery health in stats: its circuit
// breaker, and its attempts since the process started with their success
// rate (succeeded / attempts; null before the first attempt).
type TargetHealth struct {
	Breaker      string    `json:"breaker"` // closed, open or half_open
	BreakerSince time.Time `json:"breaker_since,omitzero"`
	RetryAt      time.Time `json:"breaker_retry_at,omitzero"` // when an open breaker lets a probe through
	Attempts     int64     `json:"attempts"`
	Succeeded    int64     `json:"succeeded"`
	SuccessRate  *float64  `json:"success_rate"`
	// The dispatcher's guardrails: attempts in flight and the cap, the
	// rate_per_minute cap, the daily request budget (daily, used,
	// remaining, resets_at, exhausted) when there is one, and why due
	// deliveries wait now ("budget", "rate", "breaker"; "" when they do
	// not).
	InFlight      int     `json:"in_flight"`
	Concurrency   int     `json:"concurrency"`
	RatePerMinute float64 `json:"rate_per_minute,omitempty"`
	Budget        any     `json:"budget,omitempty"`
	Waiting       string  `json:"waiting,omitempty"`
}

// StatsView is the answer of GET /admin/v1/stats.
type StatsView struct {
	Version    string         `json:"version"`
	StartedAt  time.Time      `json:"started_at"`
	Now        time.Time      `json:"now"`
	Events     map[string]int `json:"events"`     // by event status
	Deliveries map[string]int `json:"deliveries"` // by delivery status
	QueueDepth int            `json:"queue_depth"`
	DeadLetter int            `json:"dead_letters"`
	// OldestPending is when the oldest delivery waiting (pending or
	// retrying, not in flight) was due; its age in seconds is
	// OldestPendingAge. Both are absent when nothing waits.
	OldestPending    time.Time               `json:"oldest_pending,omitzero"`
	OldestPendingAge *float64                `json:"oldest_pending_age_seconds,omitempty"`
	Targets          map[string]TargetHealth `json:"targets"`
	// SuccessRateWindow says what the targets' counts cover: "since_start"
	// (since StartedAt; they reset when the sidecar restarts).
	SuccessRateWindow string `json:"success_rate_window"`
}

func (a *API) stats(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if !query(w, r.URL.Query()) {
		return
	}
	s, err := a.Store.Stats(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	now := a.Now()
	out := StatsView{
		Version: a.Version, StartedAt: a.started.UTC(), Now: now.UTC(),
		Events: s.Events, Deliveries: s.Deliveries, QueueDepth: s.Pending, DeadLetter: s.Dead,
		Targets: map[string]TargetHealth{}, SuccessRateWindow: "since_start",
	}
	if !s.OldestDue.IsZero() {
		age := max(0, now.Sub(s.OldestDue).Seconds())
		out.OldestPending, out.OldestPendingAge = s.OldestDue.UTC(), &age
	}
	if a.Targets != nil {
		for name, t := range a.Targets() {
			if t.Attempts > 0 {
				rate := float64(t.Succeeded) / float64(t.Attempts)
				t.SuccessRate = &rate
			}
			out.Targets[name] = t
		}
	}
	writeJSON(w, http.StatusOK, out)
}
