package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

// update runs fn through the commit path with a fresh wtx, writing the
// counter changes it made when it succeeds (the commit loop adds them up
// and writes each counter once per transaction).
func (db *DB) update(ctx context.Context, fn func(w *wtx) error) error {
	return db.commit.do(ctx, db.txFunc(fn))
}

// txFunc returns fn as the commit path runs it (see update).
func (db *DB) txFunc(fn func(w *wtx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		w := newWtx(tx)
		if err := fn(w); err != nil {
			return err
		}
		if shared := db.commit.txCounts; shared != nil {
			// The loop writes the counters once per transaction.
			for k, n := range w.counts {
				shared[k] += n
			}
		} else if err := w.flush(); err != nil {
			return err
		}
		puts := uint64(w.puts)
		tx.OnCommit(func() { db.commit.puts.Add(puts) })
		return nil
	}
}

// Claim marks up to n deliveries for target due at or before now as in
// flight, oldest due first, leased until now+lease. An in-flight delivery
// stays in the due index at the end of its lease, so that it is due again
// when the lease runs out.
//
// An ordered delivery (relay.Order) is in the due index only while it is
// its subject's active delivery (see order.go), so what is due may be
// handed out; Claim then coalesces it to its subject's newest delivery, or
// skips it when a newer event was delivered already, as its Order says.
func (db *DB) Claim(ctx context.Context, target string, now time.Time, n int, lease time.Duration) ([]relay.Job, error) {
	if n <= 0 {
		return nil, nil
	}
	// Nothing due is the dispatcher's usual finding once it is idle (it
	// looks again after every attempt): a read says so without a commit.
	if at, ok, err := db.NextDue(ctx, target); err == nil && (!ok || at.After(now)) {
		return nil, nil
	}
	var (
		jobs    []relay.Job
		skipped int64
	)
	err := db.update(ctx, db.claimOp(target, now, n, lease, &jobs, &skipped))
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", target, err)
	}
	db.pending.Add(-skipped)
	return jobs, nil
}

// claimOp is Claim's write: it sets *jobs and *skipped (the ordered
// deliveries it skipped, no longer pending).
func (db *DB) claimOp(target string, now time.Time, n int, lease time.Duration, jobs *[]relay.Job, skipped *int64) func(*wtx) error {
	return func(w *wtx) error {
		*jobs, *skipped = nil, 0
		prefix := namePrefix(target)
		limit, until := nanos(now), nanos(now.Add(lease))
		var keys [][]byte
		c := w.b(bucketDue).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < n; k, _ = c.Next() {
			if at, _, ok := splitTimedKey(k, len(prefix)); !ok || at > limit {
				break
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			_, dk, _ := splitTimedKey(k, len(prefix))
			var d deliveryRec
			ok, err := getJSON(w.tx, bucketDeliveries, dk, &d)
			if err != nil {
				return err
			}
			if !ok || relay.Final(d.Status) || d.Parked || !bytes.Equal(k, dueKey(&d, d.Due)) {
				// A stale index entry; dropping it is the repair.
				if err := w.b(bucketDue).Delete(k); err != nil {
					return err
				}
				continue
			}
			if d.Order != nil && d.Status != relay.DeliveryInFlight {
				var n int64
				if ok, n, err = w.orderedTurn(&d, limit); err != nil {
					return err
				}
				*skipped += n
				if !ok {
					continue
				}
			}
			job, err := db.claimOne(w, &d, until)
			if err != nil {
				return err
			}
			*jobs = append(*jobs, job)
		}
		return nil
	}
}

// claimOne marks d in flight until until and returns its job.
func (db *DB) claimOne(w *wtx, d *deliveryRec, until uint64) (relay.Job, error) {
	dk := deliveryKey(d.EventID, d.Target)
	if d.Due != 0 {
		if err := w.b(bucketDue).Delete(dueKey(d, d.Due)); err != nil {
			return relay.Job{}, err
		}
	}
	w.move("delivery", d.Status, relay.DeliveryInFlight)
	d.Status, d.Due, d.Parked = relay.DeliveryInFlight, until, false
	if err := w.put(bucketDue, dueKey(d, until), nil); err != nil {
		return relay.Job{}, err
	}
	if err := w.put(bucketInFlight, dk, u64(until)); err != nil {
		return relay.Job{}, err
	}
	if err := w.putJSON(bucketDeliveries, dk, d); err != nil {
		return relay.Job{}, err
	}
	var e eventRec
	if _, err := getJSON(w.tx, bucketEvents, []byte(d.EventID), &e); err != nil {
		return relay.Job{}, err
	}
	env, err := loadEnvelope(w.tx, db.sealer, []byte(d.EventID))
	if err != nil {
		return relay.Job{}, err
	}
	return relay.Job{
		EventID:     d.EventID,
		Target:      d.Target,
		Type:        e.Type,
		Source:      e.Source,
		Tenant:      e.Tenant,
		Attempts:    d.Attempts,
		Tries:       d.Tries,
		Since:       d.Since,
		Envelope:    env,
		TraceParent: e.TraceParent,
		OutOfOrder:  d.OutOfOrder,
		Mirror:      d.Mirror,
	}, nil
}

// Complete records an attempt at an in-flight delivery and its new state,
// and recomputes the event's status. A dead delivery's DeadAt is the
// attempt's time (db.Now() when it has none). Completing a delivery that is
// not in flight is relay.ErrNotFound.
func (db *DB) Complete(ctx context.Context, r relay.Result) error {
	name := r.EventID + ":" + r.Target
	if err := r.Check(); err != nil {
		return fmt.Errorf("complete %s: %w", name, err)
	}
	var delta int64
	if err := db.update(ctx, db.completeOp(r, &delta)); err != nil {
		return fmt.Errorf("complete %s: %w", name, err)
	}
	db.pending.Add(delta)
	return nil
}

// errNotInFlight is Complete's error for a delivery that is not in flight.
var errNotInFlight = fmt.Errorf("delivery not in flight: %w", relay.ErrNotFound)

// completeOp is Complete's write for a checked r: it sets *delta (the
// change to the pending count).
func (db *DB) completeOp(r relay.Result, delta *int64) func(*wtx) error {
	deadAt := r.DeadAt(db.Now())
	return func(w *wtx) error {
		*delta = 0
		dk := deliveryKey(r.EventID, r.Target)
		var d deliveryRec
		ok, err := getJSON(w.tx, bucketDeliveries, dk, &d)
		if err != nil {
			return err
		}
		if !ok || d.Status != relay.DeliveryInFlight {
			return errNotInFlight // before any write: see Settle
		}
		if err := w.b(bucketDue).Delete(dueKey(&d, d.Due)); err != nil {
			return err
		}
		if err := w.b(bucketInFlight).Delete(dk); err != nil {
			return err
		}
		d.History = relay.AddAttempt(d.History, r.Attempt)
		d.Attempts++
		d.Tries++
		d.LastStatus, d.LastError = r.Attempt.Status, r.Attempt.Error
		w.move("delivery", d.Status, r.Status)
		d.Status = r.Status
		switch r.Status {
		case relay.DeliverySucceeded:
			d.NextAt, d.Due = time.Time{}, 0
			d.ResultID = r.ResultID
			*delta = -1
		case relay.DeliveryRetrying:
			d.NextAt, d.Due = r.NextAt, nanos(r.NextAt)
			if err := w.put(bucketDue, dueKey(&d, d.Due), nil); err != nil {
				return err
			}
		case relay.DeliveryDead:
			d.NextAt, d.Due = time.Time{}, 0
			d.DeadAt, d.Reason = deadAt, r.Reason
			if err := w.put(bucketDead, deadKey(&d), []byte(d.Source)); err != nil {
				return err
			}
			*delta = -1
		}
		if d.Order != nil {
			var err error
			switch r.Status {
			case relay.DeliverySucceeded:
				if err = w.noteDelivered(&d); err == nil {
					err = w.leaveQueue(&d)
				}
			case relay.DeliveryDead:
				err = w.leaveQueue(&d)
			case relay.DeliveryRetrying:
				err = w.yield(&d)
			}
			if err != nil {
				return err
			}
		}
		if err := w.putJSON(bucketDeliveries, dk, &d); err != nil {
			return err
		}
		return w.refreshEvent(d.EventID)
	}
}

// NextDue reports when target's earliest pending delivery is due. An
// in-flight delivery counts at the end of its lease, when a Claim would
// return it again.
func (db *DB) NextDue(ctx context.Context, target string) (at time.Time, ok bool, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		prefix := namePrefix(target)
		k, _ := tx.Bucket(bucketDue).Cursor().Seek(prefix)
		if k == nil || !bytes.HasPrefix(k, prefix) {
			return nil
		}
		n, _, valid := splitTimedKey(k, len(prefix))
		at, ok = fromNanos(n), valid
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due %s: %w", target, err)
	}
	return at, ok, nil
}

// Pending counts deliveries not yet final (pending, in flight, retrying).
// It reads a counter kept in memory, so it is cheap enough for every
// ingest.
func (db *DB) Pending(ctx context.Context) (int, error) {
	return int(db.pending.Load()), nil
}
