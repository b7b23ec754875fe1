package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Prune deletes, in one transaction, at most max records: idempotency keys,
// nonces and counters that expired at or before now, then events received before
// eventsBefore whose deliveries are all final (an event with a pending, in
// flight or retrying delivery is never deleted). It reports how many it
// deleted (an event with its deliveries counts as one); 0 means nothing is
// left to do.
func (db *DB) Prune(ctx context.Context, now, eventsBefore time.Time, max int) (int, error) {
	if max <= 0 {
		return 0, nil // no transaction for nothing
	}
	var n int
	err := db.update(ctx, func(w *wtx) (err error) {
		n, err = relay.Prune(max,
			relay.PruneStep{Kind: "keys", Delete: func(max int) (int, error) {
				n, err := pruneExpired(w, bucketKeyExp, bucketKeys, now, max, nil)
				if err != nil || n >= max {
					return n, err
				}
				m, err := walkKeys(w, now, max-n)
				return n + m, err
			}},
			relay.PruneStep{Kind: "nonces", Delete: func(max int) (int, error) { return db.pruneNonces(w, now, max) }},
			relay.PruneStep{Kind: "counters", Delete: func(max int) (int, error) { return pruneCounters(w, now, max) }},
			relay.PruneStep{Kind: "events", Delete: func(max int) (int, error) { return pruneEvents(w, eventsBefore, max) }},
		)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// pruneNonces deletes up to max expired nonces; once the transaction has
// committed, the index forgets them.
func (db *DB) pruneNonces(w *wtx, now time.Time, max int) (int, error) {
	var jtis []string
	n, err := pruneExpired(w, bucketNonceExp, bucketNonces, now, max, func(name []byte) { jtis = append(jtis, string(name)) })
	if err == nil && len(jtis) > 0 {
		w.tx.OnCommit(func() { db.nonces.forget(jtis) })
	}
	return n, err
}

// pruneExpired deletes up to max entries of the expiry index idx that are
// due at or before now, and the records of bucket main they point at
// (whose value starts with the same 8-byte expiry).
func pruneExpired(w *wtx, idx, main []byte, now time.Time, max int, deleted func(name []byte)) (int, error) {
	limit := nanos(now)
	var keys [][]byte
	c := w.b(idx).Cursor()
	for k, _ := c.First(); k != nil && len(keys) < max; k, _ = c.Next() {
		if at, _, ok := splitTimedKey(k, 0); ok && at > limit {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := w.b(idx).Delete(k); err != nil {
			return 0, err
		}
		at, name, ok := splitTimedKey(k, 0)
		if !ok {
			continue
		}
		if deleted != nil {
			deleted(name)
		}
		if v := w.b(main).Get(name); len(v) >= 8 && binary.BigEndian.Uint64(v) == at {
			if err := w.b(main).Delete(name); err != nil {
				return 0, err
			}
		}
	}
	return len(keys), nil
}

// pruneEvents deletes up to max events received before before whose
// deliveries are all final. It walks the status index, so that queued
// events are never even looked at.
func pruneEvents(w *wtx, before time.Time, max int) (int, error) {
	limit := nanos(before)
	var ids []string
	for _, status := range []string{relay.EventDelivered, relay.EventDiscarded, relay.EventFailed} {
		prefix := namePrefix(status)
		c := w.b(bucketByStatus).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(ids) < max; k, _ = c.Next() {
			at, id, ok := splitTimedKey(k, len(prefix))
			if !ok || at >= limit {
				break
			}
			if hasSiblings(w, id) {
				continue // events of its request still read its raw request
			}
			if status != relay.EventDiscarded {
				// A failed event may still have a delivery under way, a
				// delivered one a mirror copy.
				ss, err := deliveryStates(w.tx, string(id))
				if err != nil {
					return 0, err
				}
				if !allFinal(ss) {
					continue
				}
			}
			ids = append(ids, string(id))
		}
	}
	for _, id := range ids {
		if err := deleteEvent(w, id); err != nil {
			return 0, fmt.Errorf("delete %s: %w", id, err)
		}
	}
	return len(ids), nil
}

func allFinal(states []relay.DeliveryState) bool {
	for _, s := range states {
		if !relay.Final(s.Status) {
			return false
		}
	}
	return true
}

// deleteEvent removes an event whose deliveries are all final, with its
// envelope, raw request, deliveries and index entries.
func deleteEvent(w *wtx, id string) error {
	var r eventRec
	ok, err := getJSON(w.tx, bucketEvents, []byte(id), &r)
	if err != nil || !ok {
		return err
	}
	recs, err := deliveries(w.tx, id)
	if err != nil {
		return err
	}
	var dels [][2][]byte
	for i := range recs {
		d := &recs[i]
		if !relay.Final(d.Status) {
			return fmt.Errorf("delivery to %s is %s", d.Target, d.Status)
		}
		if d.Status == relay.DeliveryDead {
			dels = append(dels, [2][]byte{bucketDead, deadKey(d)})
		}
		dels = append(dels, [2][]byte{bucketDeliveries, deliveryKey(id, d.Target)},
			[2][]byte{bucketRequests, deliveryKey(id, d.Target)})
		w.count("delivery", d.Status, -1)
	}
	if err := w.forgetDelivered(id, recs); err != nil {
		return err
	}
	if err := keepKeyExpiry(w, &r); err != nil {
		return err
	}
	bid := []byte(id)
	if b := w.tx.Bucket(bucketRawOf); b != nil {
		if owner := b.Get(bid); owner != nil {
			dels = append(dels, [2][]byte{bucketRawOf, bid}, [2][]byte{bucketRawSibs, siblingKey(string(owner), id)})
		}
	}
	dels = append(dels, [2][]byte{bucketEvents, bid}, [2][]byte{bucketEnvelopes, bid}, [2][]byte{bucketRaws, bid})
	dels = append(dels, r.indexKeys(true)...)
	for _, del := range dels {
		if err := w.b(del[0]).Delete(del[1]); err != nil {
			return err
		}
	}
	w.count("event", r.Status, -1)
	return nil
}

// hasSiblings reports whether other events read event id's raw request.
func hasSiblings(w *wtx, id []byte) bool {
	b := w.tx.Bucket(bucketRawSibs)
	if b == nil {
		return false
	}
	prefix := append(bytes.Clone(id), sep)
	k, _ := b.Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}
