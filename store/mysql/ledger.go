package mysql

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// defaultLimit is the page size when a caller passes a limit <= 0.
const defaultLimit = 50

// replayChunk is how many dead deliveries ReplayDead replays per
// transaction.
const replayChunk = 256

// exportChunk is how many events Export reads per transaction.
const exportChunk = 256

const eventCols = "id, source, tenant, type, idempotency_key, status, received_at, occurred_at, causation_id, traceparent"

const deliveryCols = "event_id, target, status, attempts, next_at, last_status, last_error, dead_at, reason, created_at, history, " +
	"mirror, request, result_id, order_key, order_flags, out_of_order"

type scanner interface{ Scan(dest ...any) error }

func scanEvent(s scanner, extra ...any) (relay.Event, error) {
	var (
		e         relay.Event
		occurred  sql.NullTime
		causation sql.NullString
	)
	dest := append([]any{&e.ID, &e.Source, &e.Tenant, &e.Type, &e.IdempotencyKey, &e.Status, &e.ReceivedAt, &occurred, &causation, &e.TraceParent}, extra...)
	if err := s.Scan(dest...); err != nil {
		return e, err
	}
	e.ReceivedAt, e.OccurredAt, e.CausationID = e.ReceivedAt.UTC(), timeOf(occurred), causation.String
	e.Deliveries = []relay.Delivery{}
	return e, nil
}

func (db *DB) scanDelivery(s scanner) (relay.Delivery, error) {
	var (
		d                       relay.Delivery
		next, dead              sql.NullTime
		lastErr, reason, result sql.NullString
		key                     sql.NullString
		flags                   int
		history, request        []byte
	)
	if err := s.Scan(&d.EventID, &d.Target, &d.Status, &d.Attempts, &next, &d.LastStatus, &lastErr, &dead, &reason, &d.CreatedAt, &history,
		&d.Mirror, &request, &result, &key, &flags, &d.OutOfOrder); err != nil {
		return d, err
	}
	d.NextAt, d.DeadAt, d.CreatedAt = timeOf(next), timeOf(dead), d.CreatedAt.UTC()
	d.LastError, d.Reason, d.ResultID = lastErr.String, reason.String, result.String
	d.History = []relay.Attempt{}
	if len(history) > 0 {
		if err := json.Unmarshal(history, &d.History); err != nil {
			return d, fmt.Errorf("decode history of %s: %w", d.Key(), err)
		}
	}
	if key.Valid {
		d.Order = &relay.Order{Key: key.String, Coalesce: flags&orderCoalesce != 0, Skip: flags&orderSkip != 0}
	}
	if request != nil && d.Status == relay.DeliverySkipped {
		plain, err := db.sealer.Open(labelRequest, requestID(d.EventID, d.Target), request)
		if err != nil {
			return d, err
		}
		d.Request = &relay.Request{}
		if err := json.Unmarshal(plain, d.Request); err != nil {
			return d, fmt.Errorf("decode request of %s: %w", d.Key(), err)
		}
	}
	return d, nil
}

// deliveriesOf reads the deliveries of events ids, ordered by target.
func (db *DB) deliveriesOf(ctx context.Context, tx *sql.Tx, ids []any) (map[string][]relay.Delivery, error) {
	out := map[string][]relay.Delivery{}
	err := queryChunks(ctx, tx, db.t.expand("SELECT "+deliveryCols+" FROM {deliveries} WHERE event_id IN (%s) ORDER BY event_id, target"), ids, func(rows *sql.Rows) error {
		d, err := db.scanDelivery(rows)
		if err != nil {
			return err
		}
		out[d.EventID] = append(out[d.EventID], d)
		return nil
	})
	return out, err
}

// Event returns an event with its envelope, every delivery and its history.
func (db *DB) Event(ctx context.Context, id string) (*relay.Event, error) {
	var e relay.Event
	err := db.read(ctx, func(tx *sql.Tx) error {
		var env []byte
		var err error
		e, err = scanEvent(tx.QueryRowContext(ctx, db.t.expand("SELECT "+prefixed("e.", eventCols)+", b.envelope FROM {events} e LEFT JOIN {bodies} b ON b.event_id = e.id WHERE e.id = ?"), id), &env)
		if errors.Is(err, sql.ErrNoRows) {
			return relay.ErrNotFound
		}
		if err != nil {
			return err
		}
		if env != nil {
			plain, err := db.sealer.Open(labelEnvelope, id, env)
			if err != nil {
				return err
			}
			e.Envelope = plain
		}
		ds, err := db.deliveriesOf(ctx, tx, []any{id})
		if err != nil {
			return err
		}
		if ds[id] != nil {
			e.Deliveries = ds[id]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	return &e, nil
}

// prefixed qualifies each column of cols with p.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// Raw returns the request as stored; relay.ErrNotFound when the event is
// unknown or was stored without one.
func (db *DB) Raw(ctx context.Context, id string) (*relay.Raw, error) {
	var (
		v     []byte
		owner string
	)
	// An event that shares its request's raw request reads its owner's.
	err := db.sql.QueryRowContext(ctx, db.t.expand("SELECT COALESCE(b.raw, o.raw), COALESCE(r.owner_id, b.event_id) FROM {bodies} b"+
		" LEFT JOIN {rawrefs} r ON r.event_id = b.event_id LEFT JOIN {bodies} o ON o.event_id = r.owner_id WHERE b.event_id = ?"), id).Scan(&v, &owner)
	if errors.Is(err, sql.ErrNoRows) || err == nil && v == nil {
		return nil, fmt.Errorf("raw %s: %w", id, relay.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("raw %s: %w", id, unavailable(err))
	}
	raw, err := db.decodeRaw(owner, v)
	if err != nil {
		return nil, fmt.Errorf("raw %s: %w", id, err)
	}
	return raw, nil
}

func (db *DB) decodeRaw(id string, v []byte) (*relay.Raw, error) {
	plain, err := db.sealer.Open(labelRaw, id, v)
	if err != nil {
		return nil, err
	}
	var raw relay.Raw
	if err := json.Unmarshal(plain, &raw); err != nil {
		return nil, fmt.Errorf("decode raw: %w", err)
	}
	return &raw, nil
}

// Cursors are opaque: base64 of a kind letter and the position of the last
// item returned.
func encodeCursor(kind string, at time.Time, parts ...string) string {
	s := kind + "|" + strconv.FormatInt(at.UnixNano(), 10) + "|" + strings.Join(parts, "\x00")
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func decodeCursor(kind, c string, nparts int) (time.Time, []string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, nil, relay.ErrInvalidCursor
	}
	k, rest, ok1 := strings.Cut(string(b), "|")
	ns, rest, ok2 := strings.Cut(rest, "|")
	n, err := strconv.ParseInt(ns, 10, 64)
	parts := strings.Split(rest, "\x00")
	if !ok1 || !ok2 || k != kind || err != nil || len(parts) != nparts {
		return time.Time{}, nil, relay.ErrInvalidCursor
	}
	return time.Unix(0, n).UTC(), parts, nil
}

// eventWhere returns the conditions and arguments of f.
func eventWhere(f relay.EventFilter) ([]string, []any) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"status", f.Status}, {"source", f.Source}, {"tenant", f.Tenant}, {"type", f.Type}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "received_at >= ?")
		args = append(args, f.Since.UTC())
	}
	if !f.Until.IsZero() {
		where = append(where, "received_at < ?")
		args = append(args, f.Until.UTC())
	}
	return where, args
}

func whereClause(where []string) string {
	if len(where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(where, " AND ")
}

// Events lists events newest first (by ReceivedAt, then id), with their
// deliveries. The cursor is the position of the last event returned, so
// pages stay stable while new events arrive. Each page is read in one
// consistent view.
func (db *DB) Events(ctx context.Context, f relay.EventFilter, cursor string, limit int) ([]relay.Event, string, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	where, args := eventWhere(f)
	if cursor != "" {
		at, parts, err := decodeCursor("e", cursor, 1)
		if err != nil {
			return nil, "", fmt.Errorf("events: %w", err)
		}
		where = append(where, "(received_at < ? OR received_at = ? AND id < ?)")
		args = append(args, at, at, parts[0])
	}
	args = append(args, limit+1)
	var (
		out  []relay.Event
		next string
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		out, next = nil, ""
		rows, err := tx.QueryContext(ctx, db.t.expand("SELECT "+eventCols+" FROM {events}"+whereClause(where)+" ORDER BY received_at DESC, id DESC LIMIT ?"), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) > limit {
			out = out[:limit]
			last := out[limit-1]
			next = encodeCursor("e", last.ReceivedAt, last.ID)
		}
		return db.attachDeliveries(ctx, tx, out)
	})
	if err != nil {
		return nil, "", fmt.Errorf("events: %w", err)
	}
	return out, next, nil
}

func (db *DB) attachDeliveries(ctx context.Context, tx *sql.Tx, evs []relay.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ids := make([]any, len(evs))
	for i := range evs {
		ids[i] = evs[i].ID
	}
	ds, err := db.deliveriesOf(ctx, tx, ids)
	if err != nil {
		return err
	}
	for i := range evs {
		if d := ds[evs[i].ID]; d != nil {
			evs[i].Deliveries = d
		}
	}
	return nil
}

// deadWhere returns the conditions and arguments of f.
func deadWhere(f relay.DeadFilter) ([]string, []any) {
	where := []string{"dead_at IS NOT NULL"}
	var args []any
	if f.Source != "" {
		where = append(where, "source = ?")
		args = append(args, f.Source)
	}
	if f.Target != "" {
		where = append(where, "target = ?")
		args = append(args, f.Target)
	}
	if !f.Since.IsZero() {
		where = append(where, "dead_at >= ?")
		args = append(args, f.Since.UTC())
	}
	if !f.Until.IsZero() {
		where = append(where, "dead_at < ?")
		args = append(args, f.Until.UTC())
	}
	return where, args
}

// DeadLetters lists dead deliveries, most recently dead first.
func (db *DB) DeadLetters(ctx context.Context, f relay.DeadFilter, cursor string, limit int) ([]relay.Delivery, string, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	where, args := deadWhere(f)
	if cursor != "" {
		at, parts, err := decodeCursor("d", cursor, 2)
		if err != nil {
			return nil, "", fmt.Errorf("dead letters: %w", err)
		}
		where = append(where, "(dead_at < ? OR dead_at = ? AND (event_id < ? OR event_id = ? AND target < ?))")
		args = append(args, at, at, parts[0], parts[0], parts[1])
	}
	args = append(args, limit+1)
	rows, err := db.sql.QueryContext(ctx, db.t.expand("SELECT "+deliveryCols+" FROM {deliveries}"+whereClause(where)+
		" ORDER BY dead_at DESC, event_id DESC, target DESC LIMIT ?"), args...)
	if err != nil {
		return nil, "", fmt.Errorf("dead letters: %w", unavailable(err))
	}
	defer rows.Close()
	var out []relay.Delivery
	for rows.Next() {
		d, err := db.scanDelivery(rows)
		if err != nil {
			return nil, "", fmt.Errorf("dead letters: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("dead letters: %w", unavailable(err))
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor("d", last.DeadAt, last.EventID, last.Target)
	}
	return out, next, nil
}

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
		if r.status == relay.DeliveryInFlight || r.status == relay.DeliverySkipped || onlyDead && r.status != relay.DeliveryDead {
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

// Stats returns counts by event and delivery status (kept in the counters
// table by the transactions that change them), the queue depth and the
// time the oldest waiting (pending or retrying) delivery was due.
func (db *DB) Stats(ctx context.Context) (relay.Stats, error) {
	s := relay.NewStats()
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.t.expand("SELECT kind, status, SUM(n) FROM {stats} GROUP BY kind, status"))
		if err != nil {
			return err
		}
		for rows.Next() {
			var kind, status string
			var n int64
			if err := rows.Scan(&kind, &status, &n); err != nil {
				rows.Close()
				return err
			}
			switch kind {
			case "event":
				s.Events[status] = int(n)
			case "delivery":
				s.Deliveries[status] = int(n)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var p, r sql.NullTime
		err = tx.QueryRowContext(ctx, db.t.expand(`SELECT (SELECT MIN(due_at) FROM {deliveries} WHERE status = 'pending'),
			(SELECT MIN(due_at) FROM {deliveries} WHERE status = 'retrying')`)).Scan(&p, &r)
		if err != nil {
			return err
		}
		switch {
		case p.Valid && (!r.Valid || p.Time.Before(r.Time)):
			s.OldestDue = p.Time.UTC()
		case r.Valid:
			s.OldestDue = r.Time.UTC()
		}
		return nil
	})
	if err != nil {
		return relay.Stats{}, fmt.Errorf("stats: %w", err)
	}
	for _, st := range notFinal {
		s.Pending += s.Deliveries[st]
	}
	s.Dead = s.Deliveries[relay.DeliveryDead]
	return s, nil
}

// Effects returns the ids of the events whose causation id is id (the
// results its deliveries produced), oldest first, at most limit.
func (db *DB) Effects(ctx context.Context, id string, limit int) ([]string, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	var one int
	err := db.sql.QueryRowContext(ctx, db.t.expand("SELECT 1 FROM {events} WHERE id = ?"), id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("effects of %s: %w", id, relay.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("effects of %s: %w", id, unavailable(err))
	}
	rows, err := db.sql.QueryContext(ctx, db.t.expand("SELECT id FROM {events} WHERE causation_id = ? ORDER BY received_at, id LIMIT ?"), id, limit)
	if err != nil {
		return nil, fmt.Errorf("effects of %s: %w", id, unavailable(err))
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

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
