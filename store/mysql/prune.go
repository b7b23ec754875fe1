package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Prune deletes at most max records: idempotency keys, nonces and counters
// that expired at or before now, then events received before eventsBefore
// whose deliveries are all final, mirror copies included (with their
// bodies and deliveries; an event with a pending, in-flight or retrying
// delivery is never deleted). Each
// kind goes in its own short transaction bounded by max, and events that
// another node is pruning (or replaying) at the same moment are skipped,
// so pruning never holds locks for long. It reports how many records it
// deleted (an event with its deliveries counts as one); 0 means nothing
// is left to do.
func (db *DB) Prune(ctx context.Context, now, eventsBefore time.Time, max int) (int, error) {
	expired := func(table, key string) relay.PruneStep {
		return relay.PruneStep{Kind: db.t.expand(table), Delete: func(max int) (int, error) { return db.pruneExpired(ctx, table, key, now, max) }}
	}
	return relay.Prune(max, expired("{keys}", "key_hash"), expired("{nonces}", "nonce_hash"), expired("{counters}", "name"),
		relay.PruneStep{Kind: "events", Delete: func(max int) (int, error) {
			if eventsBefore.IsZero() {
				return 0, nil
			}
			return db.pruneEvents(ctx, eventsBefore, max)
		}})
}

// pruneExpired deletes up to max rows of table that expired at or before
// now, skipping rows another node is deleting.
func (db *DB) pruneExpired(ctx context.Context, table, key string, now time.Time, max int) (int, error) {
	var n int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		rows, err := tx.QueryContext(ctx, db.t.expand("SELECT "+key+" FROM "+table+" FORCE INDEX (expiry) WHERE expires_at <= ? ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED"), now.UTC(), max)
		if err != nil {
			return err
		}
		var hashes []any
		for rows.Next() {
			var h []byte // a hash, or a counter's name
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return err
			}
			hashes = append(hashes, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(hashes) == 0 {
			return err
		}
		res, err := tx.ExecContext(ctx, db.t.expand("DELETE FROM "+table+" WHERE "+key+" IN ("+placeholders(len(hashes))+")"), hashes...)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		n = int(k)
		return nil
	})
	return n, err
}

// pruneEvents deletes up to max finished events received before before.
func (db *DB) pruneEvents(ctx context.Context, before time.Time, max int) (int, error) {
	var n int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		var ids []any
		statuses := map[string]string{}
		for _, status := range []string{relay.EventDelivered, relay.EventDiscarded, relay.EventFailed} {
			if len(ids) >= max {
				break
			}
			// An event whose raw request others of its request read is
			// kept until they are gone.
			q := "SELECT id FROM {events} e FORCE INDEX (by_status) WHERE status = ? AND received_at < ?" +
				" AND NOT EXISTS (SELECT 1 FROM {rawrefs} r WHERE r.owner_id = e.id)"
			if status != relay.EventDiscarded {
				// A failed event may still have a delivery under way, a
				// delivered one a mirror copy.
				q += " AND NOT EXISTS (SELECT 1 FROM {deliveries} d WHERE d.event_id = e.id AND d.status IN ('pending', 'in_flight', 'retrying'))"
			}
			rows, err := tx.QueryContext(ctx, db.t.expand(q+" ORDER BY received_at, id LIMIT ? FOR UPDATE SKIP LOCKED"), status, before.UTC(), max-len(ids))
			if err != nil {
				return err
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
				statuses[id] = status
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		if len(ids) == 0 {
			return nil
		}
		c := counts{}
		in := "(" + placeholders(len(ids)) + ")"
		rows, err := tx.QueryContext(ctx, db.t.expand("SELECT status, COUNT(*) FROM {deliveries} WHERE event_id IN "+in+" GROUP BY status"), ids...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var st string
			var k int64
			if err := rows.Scan(&st, &k); err != nil {
				rows.Close()
				return err
			}
			if !relay.Final(st) {
				rows.Close()
				return fmt.Errorf("a delivery of a finished event is %s", st)
			}
			c.add("delivery", st, -k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// The subjects whose newest delivered event goes forget it (and
		// their row, which the next ordered delivery makes again).
		for _, q := range []string{"DELETE FROM {deliveries} WHERE event_id IN ", "DELETE FROM {bodies} WHERE event_id IN ", "DELETE FROM {rawrefs} WHERE event_id IN ",
			"DELETE FROM {events} WHERE id IN ", "DELETE FROM {subjects} WHERE last_id IN "} {
			if _, err := tx.ExecContext(ctx, db.t.expand(q+in), ids...); err != nil {
				return err
			}
		}
		for _, st := range statuses {
			c.add("event", st, -1)
		}
		n = len(ids)
		return db.flushCounts(ctx, tx, c)
	})
	return n, err
}
