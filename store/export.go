package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

// exportChunk is how many events Export reads per read transaction. A read
// transaction that stays open keeps bbolt from remapping a growing file,
// which would stall every write (ingest included) until it ends, so a long
// export reads in short transactions and never calls fn inside one.
const exportChunk = 256

// effectsScan bounds how many index entries Effects looks at per result
// source.
const effectsScan = 5000

// resultSourcePrefix starts the source of reply_to result events
// ("target:{name}", DESIGN.md).
const resultSourcePrefix = "target:"

// Export calls fn for each event matching f, oldest first (by ReceivedAt,
// then id), with its envelope, deliveries and raw request (nil when none
// was stored). It reads exportChunk events per read transaction and calls
// fn outside of it, resuming after the last index key it read: the keys of
// an event never change (received_at and id), so an event stored
// throughout is seen exactly once even though writes go on meanwhile.
func (db *DB) Export(ctx context.Context, f relay.EventFilter, fn func(e *relay.Event, raw *relay.Raw) error) error {
	bucket, prefix := eventIndex(f)
	start := timedKey(prefix, nanos(f.Since), nil)
	var end []byte // exclusive
	if !f.Until.IsZero() {
		end = timedKey(prefix, nanos(f.Until), nil)
	} else if prefix != nil {
		end = prefixEnd(prefix)
	}
	type item struct {
		e   *relay.Event
		raw *relay.Raw
	}
	var after []byte // the last index key read
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var (
			items []item
			done  bool
		)
		err := db.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			var k []byte
			if after == nil {
				k, _ = c.Seek(start)
			} else if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, _ = c.Next()
			}
			for ; ; k, _ = c.Next() {
				if k == nil || !bytes.HasPrefix(k, prefix) || (end != nil && bytes.Compare(k, end) >= 0) {
					done = true
					return nil
				}
				if len(items) == exportChunk {
					return nil
				}
				after = bytes.Clone(k)
				_, id, ok := splitTimedKey(k, len(prefix))
				if !ok {
					continue
				}
				var r eventRec
				found, err := getJSON(tx, bucketEvents, id, &r)
				if err != nil {
					return err
				}
				if !found || !r.matches(f) {
					continue
				}
				e, err := withDeliveries(tx, &r, true, db.sealer)
				if err != nil {
					return err
				}
				it := item{e: e}
				plain, err := loadRaw(tx, db.sealer, id)
				if err != nil {
					return err
				}
				if plain != nil {
					raw, err := decodeRaw(plain)
					if err != nil {
						return fmt.Errorf("decode raw %s: %w", id, err)
					}
					it.raw = &raw
				}
				items = append(items, it)
			}
		})
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		for _, it := range items {
			if err := fn(it.e, it.raw); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}

// Effects returns the ids of the events whose causation id is id, oldest
// first, at most limit. Result events have a source "target:{name}" and
// are received after their cause, so it reads each such source's index
// from the cause's received_at on, effectsScan entries at most per source.
func (db *DB) Effects(ctx context.Context, id string, limit int) ([]string, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	type hit struct {
		at uint64
		id string
	}
	var hits []hit
	err := db.view(func(tx *bolt.Tx) error {
		var cause eventRec
		ok, err := getJSON(tx, bucketEvents, []byte(id), &cause)
		if err != nil {
			return err
		}
		if !ok {
			return relay.ErrNotFound
		}
		from := nanos(cause.ReceivedAt)
		c := tx.Bucket(bucketBySource).Cursor()
		k, _ := c.Seek([]byte(resultSourcePrefix))
		for k != nil && bytes.HasPrefix(k, []byte(resultSourcePrefix)) {
			i := bytes.IndexByte(k, sep)
			if i < 0 {
				k, _ = c.Next()
				continue
			}
			prefix := bytes.Clone(k[:i+1])
			n := 0
			for k, _ = c.Seek(timedKey(prefix, from, nil)); k != nil && bytes.HasPrefix(k, prefix) && n < effectsScan; k, _ = c.Next() {
				n++
				at, eid, ok := splitTimedKey(k, len(prefix))
				if !ok {
					continue
				}
				var r eventRec
				if found, err := getJSON(tx, bucketEvents, eid, &r); err != nil {
					return err
				} else if found && r.CausationID == id {
					hits = append(hits, hit{at, string(eid)})
				}
			}
			k, _ = c.Seek(prefixEnd(prefix))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("effects of %s: %w", id, err)
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	out := make([]string, 0, min(len(hits), limit))
	for _, h := range hits[:min(len(hits), limit)] {
		out = append(out, h.id)
	}
	return out, nil
}
