package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

// defaultLimit is the page size when a caller passes a limit <= 0.
const defaultLimit = 50

// Event returns an event with its envelope, every delivery and its history.
func (db *DB) Event(ctx context.Context, id string) (*relay.Event, error) {
	var e *relay.Event
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		e, err = loadEvent(tx, id, true, db.sealer)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	return e, nil
}

// loadEvent reads event id with its deliveries (and envelope, when asked).
func loadEvent(tx *bolt.Tx, id string, envelope bool, sealer *Sealer) (*relay.Event, error) {
	var r eventRec
	ok, err := getJSON(tx, bucketEvents, []byte(id), &r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, relay.ErrNotFound
	}
	return withDeliveries(tx, &r, envelope, sealer)
}

func withDeliveries(tx *bolt.Tx, r *eventRec, envelope bool, sealer *Sealer) (*relay.Event, error) {
	e := r.event()
	if envelope {
		env, err := loadEnvelope(tx, sealer, []byte(r.ID))
		if err != nil {
			return nil, err
		}
		e.Envelope = env
	}
	recs, err := deliveries(tx, r.ID)
	if err != nil {
		return nil, err
	}
	for _, d := range recs {
		if d.Request, err = loadRequest(tx, &d, sealer); err != nil {
			return nil, err
		}
		e.Deliveries = append(e.Deliveries, d.Delivery)
	}
	return &e, nil
}

// loadRequest returns the stored request of d (a dry-run delivery), or nil.
func loadRequest(tx *bolt.Tx, d *deliveryRec, sealer *Sealer) (*relay.Request, error) {
	b := tx.Bucket(bucketRequests) // nil in a version 1 file opened read-only
	if b == nil || d.Status != relay.DeliverySkipped {
		return nil, nil
	}
	k := deliveryKey(d.EventID, d.Target)
	v := b.Get(k)
	if v == nil {
		return nil, nil
	}
	plain, err := sealer.Open(bucketRequests, string(k), v)
	if err != nil {
		return nil, err
	}
	var req relay.Request
	if err := json.Unmarshal(plain, &req); err != nil {
		return nil, fmt.Errorf("decode request %q: %w", k, err)
	}
	return &req, nil
}

// Raw returns the request as stored; relay.ErrNotFound when the event is
// unknown or was stored without one.
func (db *DB) Raw(ctx context.Context, id string) (*relay.Raw, error) {
	var raw relay.Raw
	err := db.view(func(tx *bolt.Tx) error {
		plain, err := loadRaw(tx, db.sealer, []byte(id))
		if err != nil {
			return err
		}
		if plain == nil {
			return relay.ErrNotFound
		}
		raw, err = decodeRaw(plain)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("raw %s: %w", id, err)
	}
	return &raw, nil
}

// eventIndex picks the index that serves f: the status index for a status
// it holds (statusIndexed), the source index for a result source (the only
// sources it holds since version 5), else time, through which the other
// filters are a scan (bounded per page by eventScan, see Events).
func eventIndex(f relay.EventFilter) (bucket, prefix []byte) {
	switch {
	case f.Status != "" && statusIndexed(f.Status):
		return bucketByStatus, namePrefix(f.Status)
	case strings.HasPrefix(f.Source, resultSourcePrefix):
		return bucketBySource, namePrefix(f.Source)
	}
	return bucketByTime, nil
}

// eventScan bounds how many index entries, beyond its limit, one page of
// Events looks at when its filter is answered by a scan: a page that
// reaches the bound ends early, with fewer events than asked (maybe none)
// and a cursor to go on from where it stopped. A variable for tests.
var eventScan = 20000

func (r *eventRec) matches(f relay.EventFilter) bool {
	return (f.Status == "" || r.Status == f.Status) &&
		(f.Source == "" || r.Source == f.Source) &&
		(f.Tenant == "" || r.Tenant == f.Tenant) &&
		(f.Type == "" || r.Type == f.Type)
}

// seekBefore positions c on the last key before key (the last key when
// key is nil).
func seekBefore(c *bolt.Cursor, key []byte) ([]byte, []byte) {
	if key == nil {
		return c.Last()
	}
	if k, _ := c.Seek(key); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// Events lists events newest first (by ReceivedAt, then id). The cursor is
// the position of the last event returned, so pages stay stable while new
// events arrive. A filter that no index serves (eventIndex) is a scan,
// which stops after eventScan entries: a page may then hold fewer events
// than limit and still have a cursor.
func (db *DB) Events(ctx context.Context, f relay.EventFilter, cursor string, limit int) ([]relay.Event, string, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	var pos []byte
	if cursor != "" {
		var err error
		if pos, err = decodeCursor(cursor); err != nil {
			return nil, "", fmt.Errorf("events: %w", err)
		}
	}
	bucket, prefix := eventIndex(f)
	var (
		out  []relay.Event
		next string
	)
	err := db.view(func(tx *bolt.Tx) error {
		var upper []byte
		if pos != nil {
			upper = append(bytes.Clone(prefix), pos...)
		}
		if !f.Until.IsZero() {
			if u := timedKey(prefix, nanos(f.Until), nil); upper == nil || bytes.Compare(u, upper) < 0 {
				upper = u
			}
		}
		if upper == nil && prefix != nil {
			upper = prefixEnd(prefix)
		}
		since := nanos(f.Since)
		var last, seen []byte // the last event returned, the last entry looked at
		scanned := 0
		c := tx.Bucket(bucket).Cursor()
		for k, _ := seekBefore(c, upper); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			at, id, ok := splitTimedKey(k, len(prefix))
			if !ok {
				continue
			}
			if at < since {
				break
			}
			if scanned == eventScan+limit {
				next = encodeCursor(seen) // the next page goes on before it
				break
			}
			scanned++
			seen = k[len(prefix):]
			var r eventRec
			found, err := getJSON(tx, bucketEvents, id, &r)
			if err != nil {
				return err
			}
			if !found || !r.matches(f) {
				continue
			}
			if len(out) == limit {
				next = encodeCursor(last)
				break
			}
			e, err := withDeliveries(tx, &r, false, nil)
			if err != nil {
				return err
			}
			out = append(out, *e)
			last = bytes.Clone(k[len(prefix):])
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("events: %w", err)
	}
	return out, next, nil
}

// deadMatches reports whether the dead-index entry k (value v, the source)
// matches f, apart from Since.
func deadMatches(f relay.DeadFilter, k, v []byte) bool {
	if f.Source != "" && string(v) != f.Source {
		return false
	}
	if f.Target != "" {
		_, dk, _ := splitTimedKey(k, 0)
		if _, target := splitDeliveryKey(dk); target != f.Target {
			return false
		}
	}
	return true
}

// DeadLetters lists dead deliveries, most recently dead first.
func (db *DB) DeadLetters(ctx context.Context, f relay.DeadFilter, cursor string, limit int) ([]relay.Delivery, string, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	var pos []byte
	if cursor != "" {
		var err error
		if pos, err = decodeCursor(cursor); err != nil {
			return nil, "", fmt.Errorf("dead letters: %w", err)
		}
	}
	var (
		out  []relay.Delivery
		next string
	)
	if !f.Until.IsZero() {
		if u := tkey(f.Until); pos == nil || bytes.Compare(u, pos) < 0 {
			pos = u
		}
	}
	err := db.view(func(tx *bolt.Tx) error {
		since := nanos(f.Since)
		var last []byte
		c := tx.Bucket(bucketDead).Cursor()
		for k, v := seekBefore(c, pos); k != nil; k, v = c.Prev() {
			at, dk, ok := splitTimedKey(k, 0)
			if !ok {
				continue
			}
			if at < since {
				break
			}
			if !deadMatches(f, k, v) {
				continue
			}
			if len(out) == limit {
				next = encodeCursor(last)
				break
			}
			var d deliveryRec
			found, err := getJSON(tx, bucketDeliveries, dk, &d)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			out = append(out, d.Delivery)
			last = bytes.Clone(k)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("dead letters: %w", err)
	}
	return out, next, nil
}

// Stats returns counts by event and delivery status (kept up to date in
// the transactions that change them), the queue depth and the time the
// oldest pending delivery was due.
func (db *DB) Stats(ctx context.Context) (relay.Stats, error) {
	s := relay.NewStats()
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCounts).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			kind, status, _ := strings.Cut(string(k), "/")
			switch kind {
			case "event":
				s.Events[status] = int(getInt64(v))
			case "delivery":
				s.Deliveries[status] = int(getInt64(v))
			}
		}
		s.OldestDue = oldestDue(tx)
		return nil
	})
	if err != nil {
		return relay.Stats{}, fmt.Errorf("stats: %w", err)
	}
	s.Pending = int(db.pending.Load())
	s.Dead = s.Deliveries[relay.DeliveryDead]
	return s, nil
}

// oldestDue returns the earliest due time of a delivery that is pending or
// retrying (not in flight), looking at the head of each target's range of
// the due index.
func oldestDue(tx *bolt.Tx) time.Time {
	var oldest uint64
	found := false
	inflight := tx.Bucket(bucketInFlight)
	c := tx.Bucket(bucketDue).Cursor()
	for k, _ := c.First(); k != nil; {
		i := bytes.IndexByte(k, sep)
		if i < 0 {
			k, _ = c.Next()
			continue
		}
		prefix := bytes.Clone(k[:i+1])
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			at, dk, ok := splitTimedKey(k, len(prefix))
			if ok && inflight.Get(dk) == nil {
				if !found || at < oldest {
					oldest, found = at, true
				}
				break
			}
		}
		k, _ = c.Seek(prefixEnd(prefix))
	}
	if !found {
		return time.Time{}
	}
	return fromNanos(oldest)
}
