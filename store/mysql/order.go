package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Per-subject ordering (relay.Order).
//
// An ordered delivery that is not final is queued (column queued) in its
// subject's queue: the deliveries to the same target with the same
// order_key, sorted by order_at (its event's OccurredAt), then event id.
// Of a queue exactly one delivery is active, that is has a due_at: the one
// in flight, if any, else the first. The others are parked (no due_at), so
// that Claim and NextDue never see them and a blocked subject costs nothing
// while it waits. settle restores that rule after every change.
//
// Every transaction that changes a queue first locks the subject's row in
// the subjects table (which also remembers the newest event delivered, to
// tell an out-of-order delivery when it is handed out). That serialises a
// subject's changes across nodes. Claim takes that lock with SKIP LOCKED:
// a subject another node is working on is left for the next claim.

// Order flags (column order_flags).
const (
	orderCoalesce = 1
	orderSkip     = 2
)

// subject names one ordered queue.
type subject struct{ target, key string }

func compareSubjects(a, b subject) int {
	if c := strings.Compare(a.target, b.target); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

// usableKey reports whether an order key can be stored; a delivery with
// another key is delivered unordered.
func usableKey(k string) bool { return relay.ValidName(k) && len(k) <= maxType }

func orderFlags(o *relay.Order) int {
	f := 0
	if o.Coalesce {
		f |= orderCoalesce
	}
	if o.Skip {
		f |= orderSkip
	}
	return f
}

// lockSubjects creates or locks the rows of subs, in order (the lock order
// of every writer), waiting for other transactions.
func (db *DB) lockSubjects(ctx context.Context, tx *sql.Tx, subs []subject) error {
	subs = slices.Clone(subs)
	slices.SortFunc(subs, compareSubjects)
	subs = slices.Compact(subs)
	for len(subs) > 0 {
		n := min(len(subs), inChunk)
		args := make([]any, 0, 2*n)
		for _, s := range subs[:n] {
			args = append(args, s.target, s.key)
		}
		if _, err := tx.ExecContext(ctx, db.t.expand("INSERT INTO {subjects} (target, order_key) VALUES ")+rowsPlaceholders(n, 2)+
			" ON DUPLICATE KEY UPDATE target = target", args...); err != nil {
			return err
		}
		subs = subs[n:]
	}
	return nil
}

// trySubject locks s's row unless another transaction holds it, in which
// case it reports false at once.
func (db *DB) trySubject(ctx context.Context, tx *sql.Tx, s subject) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, db.t.expand("SELECT 1 FROM {subjects} WHERE target = ? AND order_key = ? FOR UPDATE SKIP LOCKED"), s.target, s.key).Scan(&one)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	// Locked, or gone (pruned): a plain read tells.
	err = tx.QueryRowContext(ctx, db.t.expand("SELECT 1 FROM {subjects} WHERE target = ? AND order_key = ?"), s.target, s.key).Scan(&one)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	return true, db.lockSubjects(ctx, tx, []subject{s})
}

// subjectLast returns the newest event of s delivered so far ("" for none).
func (db *DB) subjectLast(ctx context.Context, tx *sql.Tx, s subject) (time.Time, string, error) {
	var (
		at sql.NullTime
		id sql.NullString
	)
	err := tx.QueryRowContext(ctx, db.t.expand("SELECT last_at, last_id FROM {subjects} WHERE target = ? AND order_key = ?"), s.target, s.key).Scan(&at, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", nil
	}
	return timeOf(at), id.String, err
}

// noteDelivered records that event id (which occurred at at) was delivered
// to s's target, when it is the newest of s so far.
func (db *DB) noteDelivered(ctx context.Context, tx *sql.Tx, s subject, at time.Time, id string) error {
	lastAt, lastID, err := db.subjectLast(ctx, tx, s)
	if err != nil {
		return err
	}
	if lastID != "" && (lastAt.After(at) || lastAt.Equal(at) && lastID >= id) {
		return nil
	}
	_, err = tx.ExecContext(ctx, db.t.expand("UPDATE {subjects} SET last_at = ?, last_id = ? WHERE target = ? AND order_key = ?"),
		nullTime(at), id, s.target, s.key)
	return err
}

// queueRow is a delivery as Claim and the queue functions need it.
type queueRow struct {
	eventID    string
	status     string
	attempts   int
	tries      int
	since      time.Time
	claims     uint32
	mirror     bool
	key        string // "" for unordered
	flags      int
	orderAt    time.Time
	parked     bool
	nextAt     sql.NullTime
	dueAt      sql.NullTime
	outOfOrder bool
}

const queueCols = "event_id, status, attempts, tries, since, claims, mirror, order_key, order_flags, order_at, parked, next_at, due_at, out_of_order"

func scanQueueRow(s scanner) (queueRow, error) {
	var (
		r       queueRow
		key     sql.NullString
		orderAt sql.NullTime
	)
	err := s.Scan(&r.eventID, &r.status, &r.attempts, &r.tries, &r.since, &r.claims, &r.mirror, &key, &r.flags, &orderAt,
		&r.parked, &r.nextAt, &r.dueAt, &r.outOfOrder)
	r.key, r.orderAt, r.since = key.String, timeOf(orderAt), r.since.UTC()
	return r, err
}

// queue reads s's queued deliveries in order, locking them.
func (db *DB) queue(ctx context.Context, tx *sql.Tx, s subject) ([]queueRow, error) {
	rows, err := tx.QueryContext(ctx, db.t.expand("SELECT "+queueCols+" FROM {deliveries} FORCE INDEX (subject) WHERE target = ? AND order_key = ? AND queued = 1 ORDER BY order_at, event_id FOR UPDATE"),
		s.target, s.key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var q []queueRow
	for rows.Next() {
		r, err := scanQueueRow(rows)
		if err != nil {
			return nil, err
		}
		q = append(q, r)
	}
	return q, rows.Err()
}

// settle makes s's queue keep its rule: the delivery in flight, else the
// first, is active (due at its next_at); every other one is parked. The
// caller holds s's lock.
func (db *DB) settle(ctx context.Context, tx *sql.Tx, s subject) error {
	q, err := db.queue(ctx, tx, s)
	if err != nil || len(q) == 0 {
		return err
	}
	for _, r := range q {
		if r.status == relay.DeliveryInFlight {
			return nil // the others were parked when it was handed out
		}
	}
	for _, r := range q[1:] {
		if !r.parked {
			if _, err := tx.ExecContext(ctx, db.t.expand("UPDATE {deliveries} SET parked = 1, due_at = NULL WHERE event_id = ? AND target = ?"), r.eventID, s.target); err != nil {
				return err
			}
		}
	}
	if first := q[0]; first.parked || !first.dueAt.Valid {
		_, err := tx.ExecContext(ctx, db.t.expand("UPDATE {deliveries} SET parked = 0, due_at = COALESCE(next_at, ?) WHERE event_id = ? AND target = ?"),
			minTime, first.eventID, s.target)
		return err
	}
	return nil
}

// skipDelivery makes the queued delivery d of target skipped with reason,
// taking it out of its queue; its event is to be refreshed.
func (db *DB) skipDelivery(ctx context.Context, tx *sql.Tx, target string, d queueRow, reason string, c counts, refresh map[string]bool) error {
	_, err := tx.ExecContext(ctx, db.t.expand(`UPDATE {deliveries} SET status = 'skipped', reason = ?, next_at = NULL, due_at = NULL, queued = 0, parked = 0
		WHERE event_id = ? AND target = ?`), reason, d.eventID, target)
	if err != nil {
		return err
	}
	c.move("delivery", d.status, relay.DeliverySkipped)
	refresh[d.eventID] = true
	return nil
}

// orderedTurn decides (relay.OrderedTurn) what becomes of d, the active
// delivery of its subject, due at or before now (the caller holds the
// subject's lock). It returns the delivery to hand out, if any.
func (db *DB) orderedTurn(ctx context.Context, tx *sql.Tx, target string, d queueRow, now time.Time, c counts, refresh map[string]bool) (queueRow, bool, error) {
	q := &subjectQueue{db: db, ctx: ctx, tx: tx, s: subject{target, d.key}, now: now, c: c, refresh: refresh, active: &d}
	turn, outOfOrder, _, err := relay.OrderedTurn(q, d.eventID)
	if err != nil || turn == "" {
		return d, false, err
	}
	r, err := q.row(turn)
	if err != nil {
		return d, false, err
	}
	r.outOfOrder = outOfOrder
	return r, true, nil
}

// subjectQueue is a subject's queue as relay.OrderedTurn sees it. It reads
// the queue once and keeps its list up to date as it skips deliveries;
// the queue is settled and read again before Ready looks at a delivery.
type subjectQueue struct {
	db      *DB
	ctx     context.Context
	tx      *sql.Tx
	s       subject
	now     time.Time
	c       counts
	refresh map[string]bool
	active  *queueRow  // as claimed; nil once skipped
	q       []queueRow // the queue as read
	read    bool
	stale   bool // deliveries were skipped: settle before Ready
}

func (q *subjectQueue) queue() ([]queueRow, error) {
	if q.read {
		return q.q, nil
	}
	rows, err := q.db.queue(q.ctx, q.tx, q.s)
	q.q, q.read = rows, err == nil
	return rows, err
}

func (q *subjectQueue) row(id string) (queueRow, error) {
	if q.active != nil && q.active.eventID == id {
		return *q.active, nil
	}
	rows, err := q.queue()
	if err != nil {
		return queueRow{}, err
	}
	for _, r := range rows {
		if r.eventID == id {
			return r, nil
		}
	}
	return queueRow{}, fmt.Errorf("delivery %s:%s is not in its subject's queue", id, q.s.target)
}

func (q *subjectQueue) Ends() (first, last string, err error) {
	rows, err := q.queue()
	if err != nil || len(rows) == 0 {
		return "", "", err
	}
	return rows[0].eventID, rows[len(rows)-1].eventID, nil
}

func (q *subjectQueue) Order(id string) (relay.Order, error) {
	r, err := q.row(id)
	return relay.Order{Key: r.key, Coalesce: r.flags&orderCoalesce != 0, Skip: r.flags&orderSkip != 0}, err
}

func (q *subjectQueue) NewerDelivered(id string) (string, error) {
	r, err := q.row(id)
	if err != nil {
		return "", err
	}
	lastAt, lastID, err := q.db.subjectLast(q.ctx, q.tx, q.s)
	if err != nil || lastID == "" || !lastAt.After(r.orderAt) {
		return "", err
	}
	return lastID, nil
}

// Skip skips id's delivery; its queue is settled before Ready.
func (q *subjectQueue) Skip(id, reason string) error {
	r, err := q.row(id)
	if err != nil {
		return err
	}
	if err := q.db.skipDelivery(q.ctx, q.tx, q.s.target, r, reason, q.c, q.refresh); err != nil {
		return err
	}
	if q.active != nil && q.active.eventID == id {
		q.active = nil
	}
	q.q = slices.DeleteFunc(q.q, func(r queueRow) bool { return r.eventID == id })
	q.stale = true
	return nil
}

func (q *subjectQueue) Ready(id string) (bool, error) {
	if q.stale {
		if err := q.db.settle(q.ctx, q.tx, q.s); err != nil {
			return false, err
		}
		q.read, q.stale = false, false
	}
	r, err := q.row(id)
	if err != nil {
		return false, err
	}
	return !r.parked && r.status != relay.DeliveryInFlight && r.dueAt.Valid && !r.dueAt.Time.After(q.now), nil
}
