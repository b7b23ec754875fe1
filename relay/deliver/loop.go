// The scheduling loop of one target: claim what the guardrails and the
// breaker allow, run the attempts, sleep until the next is due.

package deliver

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/time/rate"

	"github.com/wprelay/wprelay/relay"
)

// loop schedules one target's deliveries.
type loop struct {
	d        *Dispatcher
	t        Target
	client   *retryablehttp.Client
	limits   []*rate.Limiter // rate and rate_per_minute
	budget   *budget         // nil: no daily budget
	kick     chan struct{}
	breaker  *Breaker
	redact   *relay.Redactor // what is kept out of records and logs
	inflight atomic.Int32
	waiting  atomic.Value // string: why deliveries wait (TargetState.Waiting)
	outs     outcomes     // recorded, not yet committed (see settle.go)
}

func (l *loop) lease() time.Duration {
	// Long enough for the attempt and its quick connection retries.
	return 3*l.t.Timeout + 30*time.Second
}

func (l *loop) run(ctx context.Context) {
	log := l.d.Logger.With(slog.String(relay.LogKeyTarget, l.t.Name))
	inflight := 0
	done := make(chan struct{}, l.t.Concurrency)
	// Attempts outlive ctx so that shutdown lets them finish; each is
	// bounded by the target timeout.
	actx := context.WithoutCancel(ctx)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			for ; inflight > 0; inflight-- {
				<-done
			}
			if _, _, err := l.claim(ctx, l.d.Now(), 0); err != nil {
				log.Error("claim", slog.String(relay.LogKeyError, err.Error()))
			}
			return
		}
		now := l.d.Now()
		free := l.t.Concurrency - inflight
		// The guardrails: requests per second/minute and the daily budget
		// bound what may be claimed now; then the breaker.
		want, held, until := l.guard(ctx, now, free)
		allowed := l.breaker.Allow(now, want)
		jobs, linger, err := l.claim(ctx, now, allowed)
		if err != nil && ctx.Err() == nil {
			log.Error("claim", slog.String(relay.LogKeyError, err.Error()))
		}
		if allowed > 0 {
			if len(jobs) == 0 {
				l.breaker.Release() // an unused half-open probe
			}
			l.spend(ctx, now, len(jobs))
			for _, job := range jobs {
				inflight++
				l.inflight.Add(1)
				go func() {
					l.attempt(actx, job)
					l.inflight.Add(-1)
					done <- struct{}{}
				}()
			}
			if len(jobs) == allowed {
				// Every slot we may use is busy; wait for one to free up.
				free = 0
			}
		}
		wait := 5 * time.Second
		switch w := l.breaker.Wait(now); {
		case w > 0:
			wait, free = w, 0 // open: nothing is claimed until the probe time
			held = "breaker"
		case want == 0 && free > 0:
			// Held back by a guardrail: look again when it lets one through
			// (or sooner, when woken).
			wait, free = min(wait, max(until.Sub(now), 10*time.Millisecond)), 0
		}
		if linger > 0 {
			wait = min(wait, linger) // outcomes wait for a claim that long at most
		}
		l.waiting.Store(held)
		if free > 0 {
			if at, ok, err := l.d.Queue.NextDue(ctx, l.t.Name); err == nil && ok {
				wait = min(wait, max(at.Sub(l.d.Now()), 10*time.Millisecond))
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-l.kick:
		case <-done:
			inflight--
			// Take every other attempt that ended meanwhile, and with many
			// slots wait until a quarter of them are free: claims are store
			// commits, and one claim of many shares one fsync.
			for drained := false; !drained; {
				select {
				case <-done:
					inflight--
				default:
					drained = true
				}
			}
			for batch := max(1, l.t.Concurrency/4); inflight > 0 && l.t.Concurrency-inflight < batch; inflight-- {
				select {
				case <-done:
				case <-time.After(2 * time.Millisecond):
					inflight++ // nothing more ended soon: claim what is free now
					batch = 0
				}
			}
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}
