package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/wprelay/wprelay/relay"
)

// item is one Incoming of a group of Enqueue calls.
type item struct {
	op *enqueueOp
	i  int
}

// claimBodyKeys claims, in tx, the body keys (relay.Incoming.BodyKey) of
// cands, the events new by their idempotency key, and returns those that
// stay new. A candidate whose body key another event holds, unexpired, is
// a duplicate of that event (its outcome is set) and gives back the
// idempotency key it claimed. Keys are inserted in hash order, after the
// idempotency keys, as those are.
func (db *DB) claimBodyKeys(ctx context.Context, tx *sql.Tx, exec func(string, []any) error, cands []item) ([]item, error) {
	var with []item
	for _, it := range cands {
		if it.op.preps[it.i].bodyKey != "" {
			with = append(with, it)
		}
	}
	if len(with) == 0 {
		return cands, nil
	}
	hashOf := func(it item) [32]byte { return hashKey(keyLabel, it.op.preps[it.i].bodyKey) }
	sorted := slices.Clone(with)
	slices.SortStableFunc(sorted, func(a, b item) int { ha, hb := hashOf(a), hashOf(b); return bytes.Compare(ha[:], hb[:]) })
	ins := &bulk{head: db.t.expand("INSERT INTO {keys} (key_hash, idem_key, body_hash, event_id, expires_at)"), width: 5,
		tail: " ON DUPLICATE KEY UPDATE key_hash = key_hash", budget: db.packet, exec: exec}
	var hashes []any
	for _, it := range sorted {
		p, h := &it.op.preps[it.i], hashOf(it)
		if err := ins.add(h[:], p.bodyKey, p.bodyHash[:], p.id, nullTime(p.expires)); err != nil {
			return nil, err
		}
		hashes = append(hashes, h[:])
	}
	if err := ins.flush(); err != nil {
		return nil, err
	}
	stored := map[[32]byte]*keyRow{}
	err := queryChunks(ctx, tx, db.t.expand("SELECT key_hash, event_id, expires_at FROM {keys} WHERE key_hash IN (%s)"), hashes, func(rows *sql.Rows) error {
		var h []byte
		var r keyRow
		var exp sql.NullTime
		if err := rows.Scan(&h, &r.eventID, &exp); err != nil {
			return err
		}
		r.expires = timeOf(exp)
		stored[[32]byte(h)] = &r
		return nil
	})
	if err != nil {
		return nil, err
	}
	dups := map[item]bool{}
	for _, it := range with {
		p, h := &it.op.preps[it.i], hashOf(it)
		r := stored[h]
		switch {
		case r == nil:
			return nil, fmt.Errorf("body key of event %s: not stored", p.id)
		case r.eventID == p.id:
			// Ours: inserted just now.
		case !r.expires.IsZero() && !r.expires.After(p.received):
			// Expired but not pruned yet: take it over.
			res, err := tx.ExecContext(ctx, db.t.expand("UPDATE {keys} SET idem_key = ?, body_hash = ?, event_id = ?, expires_at = ? WHERE key_hash = ? AND event_id = ?"),
				p.bodyKey, p.bodyHash[:], p.id, nullTime(p.expires), h[:], r.eventID)
			if err != nil {
				return nil, err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return nil, fmt.Errorf("body key of event %s changed while taking it over: %w", p.id, errRetryGroup)
			}
			*r = keyRow{eventID: p.id, expires: p.expires}
		default:
			// The same body under another id: a duplicate of the event
			// that holds it; the idempotency key claimed for p goes.
			if _, err := tx.ExecContext(ctx, db.t.expand("DELETE FROM {keys} WHERE key_hash = ? AND event_id = ?"), p.keyHash[:], p.id); err != nil {
				return nil, err
			}
			it.op.outs[it.i] = relay.Outcome{ID: r.eventID, Duplicate: true}
			dups[it] = true
		}
	}
	kept := cands[:0:0]
	for _, it := range cands {
		if !dups[it] {
			kept = append(kept, it)
		}
	}
	return kept, nil
}
