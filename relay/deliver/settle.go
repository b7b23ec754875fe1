// Outcomes grouped with claims: with a store that can commit both at once
// (Settler), an attempt's outcome waits for the loop's next claim, so that
// a sidecar with a trickle of events pays one commit per event for its
// dispatching instead of two.

package deliver

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Settler records outcomes and claims in one commit (store.DB): rs as
// Complete would each, then a claim as Claim would. It must be the same
// store as the Dispatcher's Queue.
// errs[i] is rs[i]'s error; err is the claim's.
type Settler interface {
	Settle(ctx context.Context, rs []relay.Result, target string, now time.Time, n int, lease time.Duration) (jobs []relay.Job, errs []error, err error)
}

// settleLinger is how long an outcome may wait for a claim to ride with
// before it is committed alone. Until then the delivery reads in flight; a
// crash meanwhile sends it again, as one during the attempt would.
const settleLinger = 20 * time.Millisecond

// outcomes are the recorded attempts a loop has not committed yet.
type outcomes struct {
	mu    sync.Mutex
	rs    []relay.Result
	since time.Time // when the oldest of rs was recorded
}

func (o *outcomes) add(r relay.Result, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.rs) == 0 {
		o.since = now
	}
	o.rs = append(o.rs, r)
}

// take returns and forgets the outcomes, and when the oldest was recorded.
func (o *outcomes) take() ([]relay.Result, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs, since := o.rs, o.since
	o.rs = nil
	return rs, since
}

// pending reports when the oldest uncommitted outcome was recorded.
func (o *outcomes) pending() (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.since, len(o.rs) > 0
}

// record commits an attempt's outcome, or leaves it for the loop's next
// claim when the store can group them.
func (l *loop) record(ctx context.Context, res relay.Result) {
	if l.d.Settler != nil {
		l.outs.add(res, l.d.Now())
		return
	}
	if err := l.d.Queue.Complete(context.WithoutCancel(ctx), res); err != nil {
		l.completeFailed(res, err)
	}
}

func (l *loop) completeFailed(res relay.Result, err error) {
	l.d.Logger.Error("complete", slog.String(relay.LogKeyEventID, res.EventID), slog.String(relay.LogKeyTarget, res.Target), slog.String(relay.LogKeyError, err.Error()))
}

// claim claims up to n deliveries (none: only commit the outcomes left),
// committing the outcomes recorded so far with the claim. With nothing
// due, outcomes younger than settleLinger stay for the next claim; linger
// then says how long the loop may sleep before they must be committed.
func (l *loop) claim(ctx context.Context, now time.Time, n int) (jobs []relay.Job, linger time.Duration, err error) {
	settler := l.d.Settler
	if settler == nil {
		if n == 0 {
			return nil, 0, nil
		}
		jobs, err = l.d.Queue.Claim(ctx, l.t.Name, now, n, l.lease())
		return jobs, 0, err
	}
	since, ok := l.outs.pending()
	if n > 0 && ok {
		if age := l.d.Now().Sub(since); age < settleLinger {
			if at, due, err := l.d.Queue.NextDue(ctx, l.t.Name); err == nil && (!due || at.After(now)) {
				return nil, settleLinger - age, nil // nothing to ride with yet
			}
		}
	}
	rs, _ := l.outs.take()
	if n == 0 && len(rs) == 0 {
		return nil, 0, nil
	}
	jobs, errs, err := settler.Settle(context.WithoutCancel(ctx), rs, l.t.Name, now, n, l.lease())
	for i, e := range errs {
		if e != nil {
			l.completeFailed(rs[i], e)
		}
	}
	return jobs, 0, err
}
