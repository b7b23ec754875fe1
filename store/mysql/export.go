package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Export calls fn for each event matching f, oldest first (by ReceivedAt,
// then id), with its envelope, deliveries and raw request (nil when none
// was stored). It reads exportChunk events per read-only transaction (one
// consistent view each) and calls fn outside of it, resuming after the
// last event read: an event stored throughout is seen exactly once while
// writes go on.
func (db *DB) Export(ctx context.Context, f relay.EventFilter, fn func(e *relay.Event, raw *relay.Raw) error) error {
	type item struct {
		e   relay.Event
		raw *relay.Raw
	}
	var (
		afterAt time.Time
		afterID string
		started bool
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var items []item
		err := db.read(ctx, func(tx *sql.Tx) error {
			items = nil
			where, args := eventWhere(f)
			if started {
				where = append(where, "(received_at > ? OR received_at = ? AND id > ?)")
				args = append(args, afterAt, afterAt, afterID)
			}
			args = append(args, exportChunk)
			// An event that shares its request's raw request reads its
			// owner's (rawrefs).
			rows, err := tx.QueryContext(ctx, db.t.expand("SELECT "+prefixed("e.", eventCols)+", b.envelope, COALESCE(b.raw, o.raw), COALESCE(r.owner_id, e.id)"+
				" FROM {events} e LEFT JOIN {bodies} b ON b.event_id = e.id LEFT JOIN {rawrefs} r ON r.event_id = e.id LEFT JOIN {bodies} o ON o.event_id = r.owner_id"+
				whereClause(where)+" ORDER BY e.received_at, e.id LIMIT ?"), args...)
			if err != nil {
				return err
			}
			var evs []relay.Event
			var raws [][]byte
			var owners []string
			for rows.Next() {
				var env, raw []byte
				var owner string
				e, err := scanEvent(rows, &env, &raw, &owner)
				if err != nil {
					rows.Close()
					return err
				}
				if env != nil {
					if e.Envelope, err = db.sealer.Open(labelEnvelope, e.ID, env); err != nil {
						rows.Close()
						return err
					}
				}
				evs = append(evs, e)
				raws = append(raws, raw)
				owners = append(owners, owner)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if err := db.attachDeliveries(ctx, tx, evs); err != nil {
				return err
			}
			for i := range evs {
				it := item{e: evs[i]}
				if raws[i] != nil {
					raw, err := db.decodeRaw(owners[i], raws[i])
					if err != nil {
						return fmt.Errorf("raw %s: %w", evs[i].ID, err)
					}
					it.raw = raw
				}
				items = append(items, it)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		for i := range items {
			if err := fn(&items[i].e, items[i].raw); err != nil {
				return err
			}
		}
		if len(items) < exportChunk {
			return nil
		}
		last := items[len(items)-1].e
		afterAt, afterID, started = last.ReceivedAt, last.ID, true
	}
}
