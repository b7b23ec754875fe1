package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Imported is one event copied from another store (wprelay migrate-store):
// the event with its envelope and its deliveries in whatever state they
// reached, its raw request (nil for none), and what its idempotency key
// needs.
type Imported struct {
	Event      *relay.Event
	Raw        *relay.Raw
	BodyHash   [32]byte  // as ingest computed it (zero unless the source checks bodies)
	KeyExpires time.Time // when the key may be forgotten; zero: never
}

// Import stores the events of items that are not stored yet (by id), with
// their deliveries as they are (attempts, history, dead letters), in one
// transaction, and gives each its idempotency key unless another event
// holds it. A delivery that was in flight is due again at once (pending,
// or retrying after attempts), as after a restart. It reports how many
// events it stored; importing the same events again stores none.
func (db *DB) Import(ctx context.Context, items []Imported) (int, error) {
	now := db.Now()
	var stored int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		stored = 0
		exec := func(q string, args []any) error {
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		}
		ids := make([]any, 0, len(items))
		for _, it := range items {
			if err := checkName("id", it.Event.ID, maxID, true); err != nil {
				return err
			}
			ids = append(ids, it.Event.ID)
		}
		existing := map[string]bool{}
		err := queryChunks(ctx, tx, db.t.expand("SELECT id FROM {events} WHERE id IN (%s)"), ids, func(rows *sql.Rows) error {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			existing[id] = true
			return nil
		})
		if err != nil {
			return err
		}
		keys := &bulk{head: db.t.expand("INSERT INTO {keys} (key_hash, idem_key, body_hash, event_id, expires_at)"), width: 5,
			tail: " ON DUPLICATE KEY UPDATE key_hash = key_hash", budget: db.packet, exec: exec}
		evs := &bulk{head: db.t.expand("INSERT INTO {events} (" + eventCols + ")"), width: 10, budget: db.packet, exec: exec}
		bodies := &bulk{head: db.t.expand("INSERT INTO {bodies} (event_id, envelope, raw)"), width: 3, budget: db.packet, exec: exec}
		dels := &bulk{head: db.t.expand(`INSERT INTO {deliveries} (event_id, target, source, status, attempts, tries, since, created_at,
			next_at, due_at, last_status, last_error, dead_at, reason, history,
			mirror, request, result_id, order_key, order_flags, order_at, queued, parked, out_of_order)`), width: 24, budget: db.packet, exec: exec}
		c := counts{}
		var subjects []subject
		for _, it := range items {
			e := it.Event
			if existing[e.ID] {
				continue
			}
			existing[e.ID] = true // the same event twice in items
			if e.IdempotencyKey == "" || e.ReceivedAt.IsZero() {
				return fmt.Errorf("event %s: no idempotency key or received_at", e.ID)
			}
			if it.KeyExpires.IsZero() || it.KeyExpires.After(now) {
				h := hashKey(keyLabel, e.IdempotencyKey)
				if err := keys.add(h[:], e.IdempotencyKey, it.BodyHash[:], e.ID, nullTime(it.KeyExpires)); err != nil {
					return err
				}
			}
			var states []relay.DeliveryState
			for _, d := range e.Deliveries {
				if err := checkName("target", d.Target, maxName, true); err != nil {
					return fmt.Errorf("event %s: %w", e.ID, err)
				}
				status, nextAt, due := d.Status, d.NextAt, time.Time{}
				switch status {
				case relay.DeliveryInFlight:
					status = relay.DeliveryPending
					if d.Attempts > 0 {
						status = relay.DeliveryRetrying
					}
					fallthrough
				case relay.DeliveryPending, relay.DeliveryRetrying:
					if nextAt.IsZero() {
						nextAt = now
					}
					due = nextAt
				case relay.DeliverySucceeded, relay.DeliverySkipped, relay.DeliveryDead:
				default:
					return fmt.Errorf("event %s: delivery %s: unknown status %q", e.ID, d.Target, d.Status)
				}
				hist := d.History
				if hist == nil {
					hist = []relay.Attempt{}
				}
				if len(hist) > relay.MaxHistory {
					hist = hist[len(hist)-relay.MaxHistory:]
				}
				hb, err := json.Marshal(hist)
				if err != nil {
					return err
				}
				created := d.CreatedAt
				if created.IsZero() {
					created = e.ReceivedAt
				}
				var lastErr, reason, deadAt any
				if d.LastError != "" {
					lastErr = d.LastError
				}
				if status == relay.DeliveryDead {
					reason, deadAt = d.Reason, nullTime(d.DeadAt)
					if d.DeadAt.IsZero() {
						deadAt = created.UTC()
					}
				}
				if status == relay.DeliverySucceeded || status == relay.DeliveryDead || status == relay.DeliverySkipped {
					nextAt = time.Time{}
				}
				if status == relay.DeliverySkipped {
					reason = d.Reason
				}
				var req, resultID, key any
				if d.Request != nil && status == relay.DeliverySkipped {
					b, err := json.Marshal(d.Request)
					if err != nil {
						return err
					}
					req = db.sealer.Seal(labelRequest, requestID(e.ID, d.Target), b)
				}
				if d.ResultID != "" {
					resultID = d.ResultID
				}
				flags, queued, parked := 0, 0, 0
				if d.Order != nil && usableKey(d.Order.Key) {
					key, flags = d.Order.Key, orderFlags(d.Order)
					if !relay.Final(status) {
						// Parked; each subject's queue is settled below.
						queued, parked, due = 1, 1, time.Time{}
					}
					subjects = append(subjects, subject{d.Target, d.Order.Key})
				}
				if err := dels.add(e.ID, d.Target, e.Source, status, d.Attempts, d.Attempts, created.UTC(), created.UTC(),
					nullTime(nextAt), nullTime(due), d.LastStatus, lastErr, deadAt, reason, hb,
					d.Mirror, req, resultID, key, flags, nullTime(e.OccurredAt), queued, parked, d.OutOfOrder); err != nil {
					return err
				}
				c.add("delivery", status, 1)
				states = append(states, relay.DeliveryState{Status: status, Mirror: d.Mirror})
			}
			status := relay.EventStatus(states, e.Status)
			var causation any
			if e.CausationID != "" {
				causation = e.CausationID
			}
			if err := evs.add(e.ID, e.Source, e.Tenant, e.Type, e.IdempotencyKey, status, e.ReceivedAt.UTC(),
				nullTime(e.OccurredAt), causation, e.TraceParent); err != nil {
				return err
			}
			env := []byte(e.Envelope)
			if env == nil {
				env = []byte{}
			}
			var raw any
			if it.Raw != nil {
				b, err := json.Marshal(it.Raw)
				if err != nil {
					return err
				}
				raw = db.sealer.Seal(labelRaw, e.ID, b)
			}
			if err := bodies.add(e.ID, db.sealer.Seal(labelEnvelope, e.ID, env), raw); err != nil {
				return err
			}
			c.add("event", status, 1)
			stored++
		}
		if len(subjects) > 0 {
			if err := db.lockSubjects(ctx, tx, subjects); err != nil {
				return err
			}
		}
		for _, b := range []*bulk{keys, evs, bodies, dels} {
			if err := b.flush(); err != nil {
				return err
			}
		}
		// Each subject: the newest event delivered, and one active delivery.
		slices.SortFunc(subjects, compareSubjects)
		for _, s := range slices.Compact(subjects) {
			var at sql.NullTime
			var id string
			err := tx.QueryRowContext(ctx, db.t.expand(`SELECT order_at, event_id FROM {deliveries} WHERE target = ? AND order_key = ? AND status = 'succeeded'
				ORDER BY order_at DESC, event_id DESC LIMIT 1`), s.target, s.key).Scan(&at, &id)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if err == nil {
				if err := db.noteDelivered(ctx, tx, s, timeOf(at), id); err != nil {
					return err
				}
			}
			if err := db.settle(ctx, tx, s); err != nil {
				return err
			}
		}
		return db.flushCounts(ctx, tx, c)
	})
	if err != nil {
		return 0, fmt.Errorf("import: %w", err)
	}
	return stored, nil
}
