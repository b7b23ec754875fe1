package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// replayChunk is how many dead deliveries ReplayDead replays per commit.
const replayChunk = 256

// replay makes d due at now with a fresh retry budget. In-flight and
// skipped deliveries are left alone (scheduled is false). wasFinal reports
// whether d leaves a final state (it is pending again).
func (w *wtx) replay(d *deliveryRec, now time.Time) (scheduled, wasFinal bool, err error) {
	if !relay.Replayable(d.Status) {
		return false, false, nil
	}
	switch d.Status {
	case relay.DeliveryDead:
		err = w.b(bucketDead).Delete(deadKey(d))
	case relay.DeliveryPending, relay.DeliveryRetrying:
		err = w.b(bucketDue).Delete(dueKey(d, d.Due))
	}
	if err != nil {
		return false, false, err
	}
	wasFinal = relay.Final(d.Status)
	w.move("delivery", d.Status, relay.DeliveryPending)
	d.Status = relay.DeliveryPending
	d.NextAt, d.Due = now, nanos(now)
	d.Tries, d.Since = 0, now
	d.DeadAt, d.Reason = time.Time{}, ""
	switch {
	case d.Order != nil && wasFinal:
		// Back in its subject's queue, in its place.
		return true, wasFinal, w.enterQueue(d)
	case d.Parked:
		d.Due = 0 // still waiting for its turn
	default:
		if err := w.put(bucketDue, dueKey(d, d.Due), nil); err != nil {
			return false, false, err
		}
	}
	if err := w.putJSON(bucketDeliveries, deliveryKey(d.EventID, d.Target), d); err != nil {
		return false, false, err
	}
	return true, wasFinal, nil
}

// Replay makes the event's deliveries (or only target's) due at now with a
// fresh retry budget (Tries 0, Since now; Attempts and history are kept).
// Succeeded and dead deliveries are sent again; in-flight and skipped ones
// are left alone. An unknown event or target is relay.ErrNotFound.
func (db *DB) Replay(ctx context.Context, eventID, target string, now time.Time) (int, error) {
	var (
		n     int
		delta int64
	)
	err := db.update(ctx, func(w *wtx) error {
		n, delta = 0, 0
		if w.b(bucketEvents).Get([]byte(eventID)) == nil {
			return relay.ErrNotFound
		}
		var recs []deliveryRec
		if target != "" {
			var d deliveryRec
			ok, err := getJSON(w.tx, bucketDeliveries, deliveryKey(eventID, target), &d)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("target %s: %w", target, relay.ErrNotFound)
			}
			recs = append(recs, d)
		} else {
			var err error
			if recs, err = deliveries(w.tx, eventID); err != nil {
				return err
			}
		}
		for i := range recs {
			scheduled, wasFinal, err := w.replay(&recs[i], now)
			if err != nil {
				return err
			}
			if scheduled {
				n++
			}
			if wasFinal {
				delta++
			}
		}
		if n == 0 {
			return nil
		}
		return w.refreshEvent(eventID)
	})
	if err != nil {
		return 0, fmt.Errorf("replay %s: %w", eventID, err)
	}
	db.pending.Add(delta)
	return n, nil
}

// ReplayDead replays the dead deliveries matching f (at most f.Max when
// set), oldest dead first, in commits of a few hundred so that a large
// dead-letter queue does not hold the commit path for long.
func (db *DB) ReplayDead(ctx context.Context, f relay.DeadFilter, now time.Time) (int, error) {
	total := 0
	pos := tkey(f.Since)
	until := nanos(f.Until)
	for {
		chunk := replayChunk
		if f.Max > 0 {
			chunk = min(chunk, f.Max-total)
		}
		var (
			n    int
			more bool
			next []byte
		)
		err := db.update(ctx, func(w *wtx) error {
			n, more, next = 0, false, nil
			var keys [][]byte
			c := w.b(bucketDead).Cursor()
			for k, v := c.Seek(pos); k != nil; k, v = c.Next() {
				if at, _, ok := splitTimedKey(k, 0); ok && until != 0 && at >= until {
					break
				}
				if !deadMatches(f, k, v) {
					continue
				}
				if len(keys) == chunk {
					more = true
					break
				}
				keys = append(keys, bytes.Clone(k))
			}
			events := map[string]bool{}
			for _, k := range keys {
				_, dk, _ := splitTimedKey(k, 0)
				var d deliveryRec
				ok, err := getJSON(w.tx, bucketDeliveries, dk, &d)
				if err != nil {
					return err
				}
				if !ok || d.Status != relay.DeliveryDead {
					if err := w.b(bucketDead).Delete(k); err != nil { // stale entry
						return err
					}
					continue
				}
				if _, _, err := w.replay(&d, now); err != nil {
					return err
				}
				n++
				events[d.EventID] = true
			}
			for id := range events {
				if err := w.refreshEvent(id); err != nil {
					return err
				}
			}
			if len(keys) > 0 {
				next = keys[len(keys)-1] // deleted now: Seek lands after it
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("replay dead: %w", err)
		}
		total += n
		db.pending.Add(int64(n))
		if !more || (f.Max > 0 && total >= f.Max) {
			return total, nil
		}
		pos = next
	}
}
