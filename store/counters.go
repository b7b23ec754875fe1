package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

var _ relay.Counters = (*DB)(nil)

// Add adds n to the counter name and returns its new value, committed
// durably; n = 0 reads it (without a write, and without touching its
// expiry). The counter may be forgotten by Prune once
// expires has passed (the latest expires given wins).
func (db *DB) Add(ctx context.Context, name string, n int, expires time.Time) (int, error) {
	if name == "" {
		return 0, fmt.Errorf("counter: empty name")
	}
	var total int64
	var err error
	if n == 0 {
		err = db.view(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bucketCounters); b != nil {
				total, _ = decodeCounter(b.Get([]byte(name)))
			}
			return nil
		})
	} else {
		err = db.update(ctx, func(w *wtx) error {
			b := w.b(bucketCounters)
			count, exp := decodeCounter(b.Get([]byte(name)))
			total = count + int64(n)
			return w.put(bucketCounters, []byte(name), encodeCounter(total, max(exp, nanos(expires))))
		})
	}
	if err != nil {
		return 0, fmt.Errorf("counter %s: %w", name, err)
	}
	return int(total), nil
}

// A counter's value is its count (8 bytes) and its expiry (8 bytes, nanos).
func encodeCounter(count int64, expires uint64) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(count))
	return binary.BigEndian.AppendUint64(v, expires)
}

func decodeCounter(v []byte) (count int64, expires uint64) {
	if len(v) != 16 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(v)), binary.BigEndian.Uint64(v[8:])
}

// pruneCounters deletes up to max counters that expired at or before now.
// There are few (targets × days), so it scans them all.
func pruneCounters(w *wtx, now time.Time, max int) (int, error) {
	limit := nanos(now)
	var keys [][]byte
	c := w.b(bucketCounters).Cursor()
	for k, v := c.First(); k != nil && len(keys) < max; k, v = c.Next() {
		if _, exp := decodeCounter(v); exp <= limit {
			keys = append(keys, bytes.Clone(k))
		}
	}
	for _, k := range keys {
		if err := w.b(bucketCounters).Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
