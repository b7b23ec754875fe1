package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// dkey names a delivery.
type dkey struct{ event, target string }

// replayDeliveries makes the deliveries keys due at now with a fresh retry
// budget (Tries 0, Since now; Attempts and history are kept), leaving
// in-flight and skipped ones alone (and, with onlyDead, all but dead
// ones). The caller holds the locks of the deliveries' events. An ordered
// delivery that was final goes back into its subject's queue, in its
// place; one waiting there stays parked. It returns how many it scheduled,
// how many of those were final before, and the events they belong to.
func (db *DB) replayDeliveries(ctx context.Context, tx *sql.Tx, keys []dkey, now time.Time, onlyDead bool, c counts) (n, wasFinal int, touched map[string]bool, err error) {
	touched = map[string]bool{}
	if len(keys) == 0 {
		return 0, 0, touched, nil
	}
	// Subjects first (the lock order of every writer), then the rows.
	type row struct {
		dkey
		status string
		key    sql.NullString
		parked bool
	}
	read := func(lock string) ([]row, error) {
		var out []row
		for _, k := range keys {
			var r row
			err := tx.QueryRowContext(ctx, db.t.expand("SELECT status, order_key, parked FROM {deliveries} WHERE event_id = ? AND target = ?"+lock), k.event, k.target).
				Scan(&r.status, &r.key, &r.parked)
			if errors.Is(err, sql.ErrNoRows) {
				continue // pruned meanwhile
			}
			if err != nil {
				return nil, err
			}
			r.dkey = k
			out = append(out, r)
		}
		return out, nil
	}
	rows, err := read("")
	if err != nil {
		return 0, 0, nil, err
	}
	var subs []subject
	for _, r := range rows {
		if r.key.Valid {
			subs = append(subs, subject{r.target, r.key.String})
		}
	}
	if len(subs) > 0 {
		if err := db.lockSubjects(ctx, tx, subs); err != nil {
			return 0, 0, nil, err
		}
	}
	if rows, err = read(" FOR UPDATE"); err != nil {
		return 0, 0, nil, err
	}
	for _, r := range rows {
		if !relay.Replayable(r.status) || onlyDead && r.status != relay.DeliveryDead {
			continue
		}
		due, parked, queued := any(now.UTC()), 0, 0
		if r.key.Valid {
			queued = 1
			if relay.Final(r.status) || r.parked {
				due, parked = nil, 1 // settled below
			}
		}
		_, err := tx.ExecContext(ctx, db.t.expand(`UPDATE {deliveries} SET status = 'pending', next_at = ?, due_at = ?, tries = 0, since = ?,
			dead_at = NULL, reason = NULL, queued = ?, parked = ? WHERE event_id = ? AND target = ?`),
			now.UTC(), due, now.UTC(), queued, parked, r.event, r.target)
		if err != nil {
			return 0, 0, nil, err
		}
		c.move("delivery", r.status, relay.DeliveryPending)
		n++
		if relay.Final(r.status) {
			wasFinal++
		}
		touched[r.event] = true
	}
	slices.SortFunc(subs, compareSubjects)
	for _, sub := range slices.Compact(subs) {
		if err := db.settle(ctx, tx, sub); err != nil {
			return 0, 0, nil, err
		}
	}
	return n, wasFinal, touched, nil
}

// Replay makes the event's deliveries (or only target's) due at now with a
// fresh retry budget (Tries 0, Since now; Attempts and history are kept).
// Succeeded and dead deliveries are sent again; in-flight and skipped ones
// are left alone. An unknown event or target is relay.ErrNotFound.
func (db *DB) Replay(ctx context.Context, eventID, target string, now time.Time) (int, error) {
	var n, wasFinal int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		n, wasFinal = 0, 0
		var evStatus string
		err := tx.QueryRowContext(ctx, db.t.expand("SELECT status FROM {events} WHERE id = ? FOR UPDATE"), eventID).Scan(&evStatus)
		if errors.Is(err, sql.ErrNoRows) {
			return relay.ErrNotFound
		}
		if err != nil {
			return err
		}
		q, args := "SELECT target FROM {deliveries} WHERE event_id = ?", []any{eventID}
		if target != "" {
			q, args = q+" AND target = ?", append(args, target)
		}
		rows, err := tx.QueryContext(ctx, db.t.expand(q+" ORDER BY target"), args...)
		if err != nil {
			return err
		}
		var keys []dkey
		for rows.Next() {
			k := dkey{event: eventID}
			if err := rows.Scan(&k.target); err != nil {
				rows.Close()
				return err
			}
			keys = append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if target != "" && len(keys) == 0 {
			return fmt.Errorf("target %s: %w", target, relay.ErrNotFound)
		}
		c := counts{}
		if n, wasFinal, _, err = db.replayDeliveries(ctx, tx, keys, now, false, c); err != nil || n == 0 {
			return err
		}
		if err := db.refreshEvent(ctx, tx, eventID, evStatus, c); err != nil {
			return err
		}
		return db.flushCounts(ctx, tx, c)
	})
	if err != nil {
		return 0, fmt.Errorf("replay %s: %w", eventID, err)
	}
	db.pendingAdd(int64(wasFinal))
	return n, nil
}

// ReplayDead replays the dead deliveries matching f (at most f.Max when
// set), oldest dead first, in transactions of a few hundred, so that a
// large dead-letter queue never holds locks for long.
func (db *DB) ReplayDead(ctx context.Context, f relay.DeadFilter, now time.Time) (int, error) {
	total := 0
	where, wargs := deadWhere(f)
	for {
		chunk := replayChunk
		if f.Max > 0 {
			chunk = min(chunk, f.Max-total)
		}
		var n, found int
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			n, found = 0, 0
			args := append(slices.Clone(wargs), chunk)
			rows, err := tx.QueryContext(ctx, db.t.expand("SELECT event_id, target FROM {deliveries}"+whereClause(where)+
				" ORDER BY dead_at, event_id, target LIMIT ?"), args...)
			if err != nil {
				return err
			}
			var keys []dkey
			events := map[string]string{}
			for rows.Next() {
				var k dkey
				if err := rows.Scan(&k.event, &k.target); err != nil {
					rows.Close()
					return err
				}
				keys = append(keys, k)
				events[k.event] = ""
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			found = len(keys)
			if found == 0 {
				return nil
			}
			// Events first, in id order (the lock order of every writer).
			ids := make([]any, 0, len(events))
			for _, id := range slices.Sorted(maps.Keys(events)) {
				ids = append(ids, id)
			}
			err = queryChunks(ctx, tx, db.t.expand("SELECT id, status FROM {events} WHERE id IN (%s) ORDER BY id FOR UPDATE"), ids, func(rows *sql.Rows) error {
				var id, st string
				if err := rows.Scan(&id, &st); err != nil {
					return err
				}
				events[id] = st
				return nil
			})
			if err != nil {
				return err
			}
			c := counts{}
			var touched map[string]bool
			if n, _, touched, err = db.replayDeliveries(ctx, tx, keys, now, true, c); err != nil {
				return err
			}
			for _, id := range ids {
				if touched[id.(string)] {
					if err := db.refreshEvent(ctx, tx, id.(string), events[id.(string)], c); err != nil {
						return err
					}
				}
			}
			return db.flushCounts(ctx, tx, c)
		})
		if err != nil {
			return total, fmt.Errorf("replay dead: %w", err)
		}
		total += n
		db.pendingAdd(int64(n))
		if found < chunk || f.Max > 0 && total >= f.Max {
			return total, nil
		}
	}
}
