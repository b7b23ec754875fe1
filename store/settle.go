package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

// Settle records the outcomes rs, as Complete would each, and then claims
// up to n deliveries for target, as Claim would, in one commit: a
// dispatcher's outcomes ride with its next claim instead of costing a
// commit each. errs[i] is rs[i]'s error (one failing fails no other); err
// is the claim's. With no outcome and nothing due it commits nothing.
func (db *DB) Settle(ctx context.Context, rs []relay.Result, target string, now time.Time, n int, lease time.Duration) (jobs []relay.Job, errs []error, err error) {
	errs = make([]error, len(rs))
	var (
		fns    []func(*bolt.Tx) error
		slots  []int // fns[j] answers errs[slots[j]]; -1 for the claim
		deltas = make([]int64, len(rs))
		softs  = make([]error, len(rs)) // outcomes that wrote nothing
	)
	for i, r := range rs {
		if err := r.Check(); err != nil {
			errs[i] = fmt.Errorf("complete %s:%s: %w", r.EventID, r.Target, err)
			continue
		}
		op, soft := db.completeOp(r, &deltas[i]), &softs[i]
		// A delivery no longer in flight fails its outcome alone, before
		// it writes anything: the transaction goes on, so that the commit
		// path does not re-run it after the claim (which may have claimed
		// that delivery again).
		fns, slots = append(fns, db.txFunc(func(w *wtx) error {
			if *soft = op(w); errors.Is(*soft, errNotInFlight) {
				return nil
			}
			return *soft
		})), append(slots, i)
	}
	var skipped int64
	if n > 0 {
		if at, ok, err := db.NextDue(ctx, target); err != nil || (ok && !at.After(now)) {
			fns, slots = append(fns, db.txFunc(db.claimOp(target, now, n, lease, &jobs, &skipped))), append(slots, -1)
		}
	}
	if len(fns) == 0 {
		return nil, errs, nil
	}
	for j, e := range db.commit.doAll(ctx, fns) {
		switch i := slots[j]; {
		case i < 0 && e != nil:
			jobs, err = nil, fmt.Errorf("claim %s: %w", target, e)
		case i < 0:
			db.pending.Add(-skipped)
		case e == nil && softs[i] != nil:
			e = softs[i]
			fallthrough
		case e != nil:
			errs[i] = fmt.Errorf("complete %s:%s: %w", rs[i].EventID, rs[i].Target, e)
		default:
			db.pending.Add(deltas[i])
		}
	}
	return jobs, errs, err
}
