package store

import (
	"bytes"
	"math"
	"time"
)

// Since version 5 an event's idempotency key has no entry in keyexp when
// it is written: ingest gives every key the same lifetime (the dedupe
// window), so keys expire in the order their events arrived, and Prune
// finds them by walking bytime (walkKeys) from where it stopped last
// (metaKeyWalk). An entry in keyexp is written only for a key that the walk
// cannot reach: a body key (relay.Incoming.BodyKey), and the key of an
// event pruned before its key expired (deleteEvent). Keys that a changed
// window makes expire out of arrival order wait for the ones before them:
// they are forgotten late, never early (Enqueue reads a key's own expiry).

// metaKeyWalk is where walkKeys stopped: the bytime position (received_at,
// id) of the last event whose key it is done with.
var metaKeyWalk = []byte("keywalk")

// keyWalkScan bounds how many events one walkKeys call looks at, so that a
// long stretch of events whose keys are gone already (forgotten through
// keyexp, or reused) costs no single transaction much; the next call goes
// on from there.
const keyWalkScan = 10000

// walkKeys deletes up to max idempotency keys of events in arrival order
// that expired at or before now, stopping at the first key that has not.
// A key that never expires is passed over; one that now belongs to another
// event (reused after it expired) is that event's.
func walkKeys(w *wtx, now time.Time, max int) (int, error) {
	limit := nanos(now)
	meta := w.b(bucketMeta)
	from := meta.Get(metaKeyWalk)
	var (
		last []byte
		dels [][]byte // key, then its keyexp entry
		n    int
	)
	c := w.b(bucketByTime).Cursor()
	k, _ := c.First()
	if from != nil {
		if k, _ = c.Seek(from); k != nil && bytes.Equal(k, from) {
			k, _ = c.Next()
		}
	}
	for seen := 0; k != nil && n < max && seen < keyWalkScan; k, _ = c.Next() {
		seen++
		_, id, ok := splitTimedKey(k, 0)
		if !ok {
			last = k
			continue
		}
		var r eventRec
		found, err := getJSON(w.tx, bucketEvents, id, &r)
		if err != nil {
			return 0, err
		}
		if found && r.IdempotencyKey != "" {
			key := []byte(r.IdempotencyKey)
			if exp, _, owner, ok := parseKeyRecord(w.b(bucketKeys).Get(key)); ok && owner == r.ID && exp != math.MaxInt64 {
				if exp > limit {
					break // not yet, nor (most likely) any after it
				}
				dels = append(dels, key, timedKey(nil, exp, key))
				n++
			}
		}
		last = k
	}
	if last == nil {
		return 0, nil
	}
	last = bytes.Clone(last)
	for i := 0; i < len(dels); i += 2 {
		if err := w.b(bucketKeys).Delete(dels[i]); err != nil {
			return 0, err
		}
		if err := w.b(bucketKeyExp).Delete(dels[i+1]); err != nil {
			return 0, err
		}
	}
	return n, w.put(bucketMeta, metaKeyWalk, last)
}

// keepKeyExpiry gives the key of event r, pruned now, an entry in keyexp
// when it is still r's: past the walk's reach, it is forgotten by its
// expiry like the keys written before version 5.
func keepKeyExpiry(w *wtx, r *eventRec) error {
	if r.IdempotencyKey == "" {
		return nil
	}
	key := []byte(r.IdempotencyKey)
	exp, _, owner, ok := parseKeyRecord(w.b(bucketKeys).Get(key))
	if !ok || owner != r.ID {
		return nil
	}
	return w.put(bucketKeyExp, timedKey(nil, exp, key), nil)
}
