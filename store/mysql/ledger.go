package mysql

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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
