package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// claimKey names a delivery.
type claimKey struct{ event, target string }

// claim is this node's hold on a delivery: the fencing token it set (the
// delivery's claims counter) and when its lease ends.
type claim struct {
	token uint32
	until time.Time
}

// maxClaims is how many claims the node remembers before it forgets those
// whose lease ended over an hour ago (their Complete never came).
const maxClaims = 100_000

// Claim marks up to n deliveries for target that are due at or before now
// as in flight, oldest due first, leased until now+lease. Rows another
// node is claiming at the same moment are skipped (SKIP LOCKED), so
// concurrent claimers get different deliveries. An in-flight delivery's
// due time is the end of its lease: when it runs out, any node claims it
// again, and the fencing token moves on. An ordered delivery (relay.Order)
// is due only while it is its subject's active delivery (see order.go);
// Claim then coalesces it to its subject's newest delivery, or skips it
// when a newer event was delivered already, as its Order says, and leaves
// it for a later claim while another node holds its subject.
func (db *DB) Claim(ctx context.Context, target string, now time.Time, n int, lease time.Duration) ([]relay.Job, error) {
	if n <= 0 {
		return nil, nil
	}
	until := now.Add(lease).UTC()
	var (
		jobs    []relay.Job
		tokens  []uint32
		skipped int64
	)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		jobs, tokens, skipped = nil, nil, 0
		rows, err := tx.QueryContext(ctx, db.t.expand("SELECT "+queueCols+` FROM {deliveries} FORCE INDEX (due)
			WHERE target = ? AND due_at <= ? ORDER BY due_at, event_id LIMIT ? FOR UPDATE SKIP LOCKED`), target, now.UTC(), n)
		if err != nil {
			return err
		}
		var due []queueRow
		for rows.Next() {
			r, err := scanQueueRow(rows)
			if err != nil {
				rows.Close()
				return err
			}
			due = append(due, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		c := counts{}
		refresh := map[string]bool{}
		var claimed []queueRow
		turned := map[string]bool{} // ordered deliveries whose out_of_order was decided now
		for _, d := range due {
			if d.key == "" || d.status == relay.DeliveryInFlight {
				claimed = append(claimed, d)
				continue
			}
			ok, err := db.trySubject(ctx, tx, subject{target, d.key})
			if err != nil {
				return err
			}
			if !ok {
				continue // another node is changing this subject's queue
			}
			d, ok, err = db.orderedTurn(ctx, tx, target, d, now, c, refresh)
			if err != nil {
				return err
			}
			if ok {
				claimed = append(claimed, d)
				turned[d.eventID] = true
			}
		}
		if len(claimed) > 0 {
			ids := make([]any, 0, len(claimed))
			var ooo, inOrder []any
			for _, d := range claimed {
				ids = append(ids, d.eventID)
				c.move("delivery", d.status, relay.DeliveryInFlight)
				jobs = append(jobs, relay.Job{EventID: d.eventID, Target: target, Attempts: d.attempts, Tries: d.tries, Since: d.since,
					OutOfOrder: d.outOfOrder, Mirror: d.mirror})
				tokens = append(tokens, d.claims+1)
				switch {
				case turned[d.eventID] && d.outOfOrder:
					ooo = append(ooo, d.eventID)
				case turned[d.eventID]:
					inOrder = append(inOrder, d.eventID)
				}
			}
			args := append([]any{until, db.node, target}, ids...)
			if _, err := tx.ExecContext(ctx, db.t.expand(`UPDATE {deliveries} SET status = 'in_flight', due_at = ?, claims = claims + 1, claimed_by = ?, parked = 0
				WHERE target = ? AND event_id IN (`+placeholders(len(ids))+")"), args...); err != nil {
				return err
			}
			for v, list := range map[int][]any{1: ooo, 0: inOrder} {
				if len(list) > 0 {
					if _, err := tx.ExecContext(ctx, db.t.expand("UPDATE {deliveries} SET out_of_order = ? WHERE target = ? AND event_id IN ("+placeholders(len(list))+")"),
						append([]any{v, target}, list...)...); err != nil {
						return err
					}
				}
			}
			if err := db.jobDetails(ctx, tx, jobs, ids); err != nil {
				return err
			}
		}
		for _, id := range slices.Sorted(maps.Keys(refresh)) {
			if err := db.lockAndRefresh(ctx, tx, id, c); err != nil {
				return err
			}
			skipped++
		}
		return db.flushCounts(ctx, tx, c)
	})
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", target, err)
	}
	db.pendingAdd(-skipped)
	db.claimsMu.Lock()
	if len(db.claims) > maxClaims {
		for k, c := range db.claims {
			if now.Sub(c.until) > time.Hour {
				delete(db.claims, k)
			}
		}
	}
	for i, j := range jobs {
		db.claims[claimKey{j.EventID, target}] = claim{token: tokens[i], until: until}
	}
	db.claimsMu.Unlock()
	return jobs, nil
}

// lockAndRefresh locks event id and recomputes its status.
func (db *DB) lockAndRefresh(ctx context.Context, tx *sql.Tx, id string, c counts) error {
	var was string
	err := tx.QueryRowContext(ctx, db.t.expand("SELECT status FROM {events} WHERE id = ? FOR UPDATE"), id).Scan(&was)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return db.refreshEvent(ctx, tx, id, was, c)
}

// jobDetails fills in what the dispatcher sends: the event's fields and
// its envelope.
func (db *DB) jobDetails(ctx context.Context, tx *sql.Tx, jobs []relay.Job, ids []any) error {
	type detail struct {
		typ, source, tenant, trace string
		env                        []byte
	}
	details := map[string]detail{}
	rows, err := tx.QueryContext(ctx, db.t.expand(`SELECT e.id, e.type, e.source, e.tenant, e.traceparent, b.envelope
		FROM {events} e JOIN {bodies} b ON b.event_id = e.id WHERE e.id IN (`+placeholders(len(ids))+")"), ids...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var d detail
		if err := rows.Scan(&id, &d.typ, &d.source, &d.tenant, &d.trace, &d.env); err != nil {
			return err
		}
		details[id] = d
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range jobs {
		j := &jobs[i]
		d, ok := details[j.EventID]
		if !ok {
			return fmt.Errorf("delivery %s:%s has no event", j.EventID, j.Target)
		}
		env, err := db.sealer.Open(labelEnvelope, j.EventID, d.env)
		if err != nil {
			return err
		}
		j.Type, j.Source, j.Tenant, j.TraceParent, j.Envelope = d.typ, d.source, d.tenant, d.trace, json.RawMessage(env)
	}
	return nil
}

// Complete records an attempt at an in-flight delivery and its new state,
// and recomputes the event's status. It applies only while the delivery
// still holds the fencing token this node's Claim set: a delivery that is
// not in flight, that this node did not claim, or that another node
// claimed again after the lease ran out is relay.ErrNotFound (a late
// answer after the lease, with nobody having claimed it since, is still
// recorded). A dead delivery's DeadAt is the attempt's time (db.Now()
// when it has none).
func (db *DB) Complete(ctx context.Context, r relay.Result) error {
	name := r.EventID + ":" + r.Target
	if err := r.Check(); err != nil {
		return fmt.Errorf("complete %s: %w", name, err)
	}
	key := claimKey{r.EventID, r.Target}
	db.claimsMu.Lock()
	cl, ok := db.claims[key]
	db.claimsMu.Unlock()
	if !ok {
		return fmt.Errorf("complete %s: delivery not in flight here: %w", name, relay.ErrNotFound)
	}
	deadAt := r.DeadAt(db.Now())
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		// The subject (of an ordered delivery) is locked before the
		// delivery, as by every writer: read which it is first.
		var key sql.NullString
		err := tx.QueryRowContext(ctx, db.t.expand("SELECT order_key FROM {deliveries} WHERE event_id = ? AND target = ?"), r.EventID, r.Target).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delivery not in flight: %w", relay.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var evStatus string
		err = tx.QueryRowContext(ctx, db.t.expand("SELECT status FROM {events} WHERE id = ? FOR UPDATE"), r.EventID).Scan(&evStatus)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delivery not in flight: %w", relay.ErrNotFound)
		}
		if err != nil {
			return err
		}
		s := subject{r.Target, key.String}
		if key.Valid {
			if err := db.lockSubjects(ctx, tx, []subject{s}); err != nil {
				return err
			}
		}
		var (
			status  string
			token   uint32
			history []byte
			orderAt sql.NullTime
		)
		err = tx.QueryRowContext(ctx, db.t.expand("SELECT status, claims, history, order_at FROM {deliveries} WHERE event_id = ? AND target = ? FOR UPDATE"),
			r.EventID, r.Target).Scan(&status, &token, &history, &orderAt)
		if errors.Is(err, sql.ErrNoRows) || err == nil && (status != relay.DeliveryInFlight || token != cl.token) {
			return fmt.Errorf("delivery not in flight (or claimed again elsewhere): %w", relay.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var hist []relay.Attempt
		if len(history) > 0 {
			if err := json.Unmarshal(history, &hist); err != nil {
				return fmt.Errorf("decode history: %w", err)
			}
		}
		hist = relay.AddAttempt(hist, r.Attempt)
		history, err = json.Marshal(hist)
		if err != nil {
			return err
		}
		var nextAt, dueAt, dead, reason, resultID any
		queued := 0
		switch r.Status {
		case relay.DeliveryRetrying:
			nextAt, dueAt = nullTime(r.NextAt), nullTime(r.NextAt)
			if r.NextAt.IsZero() {
				dueAt = minTime // due at once
			}
			if key.Valid {
				queued = 1
			}
		case relay.DeliveryDead:
			dead, reason = deadAt.UTC(), r.Reason
		case relay.DeliverySucceeded:
			if r.ResultID != "" {
				resultID = r.ResultID
			}
		}
		var lastErr any
		if r.Attempt.Error != "" {
			lastErr = r.Attempt.Error
		}
		_, err = tx.ExecContext(ctx, db.t.expand(`UPDATE {deliveries} SET status = ?, attempts = attempts + 1, tries = tries + 1,
			next_at = ?, due_at = ?, last_status = ?, last_error = ?, dead_at = ?, reason = ?, history = ?, result_id = COALESCE(?, result_id),
			queued = ?, parked = 0
			WHERE event_id = ? AND target = ?`),
			r.Status, nextAt, dueAt, r.Attempt.Status, lastErr, dead, reason, history, resultID, queued, r.EventID, r.Target)
		if err != nil {
			return err
		}
		c := counts{}
		c.move("delivery", status, r.Status)
		if key.Valid {
			if r.Status == relay.DeliverySucceeded {
				if err := db.noteDelivered(ctx, tx, s, timeOf(orderAt), r.EventID); err != nil {
					return err
				}
			}
			// The next delivery of the subject gets its turn; a retry
			// yields it to an older one that arrived meanwhile.
			if err := db.settle(ctx, tx, s); err != nil {
				return err
			}
		}
		if err := db.refreshEvent(ctx, tx, r.EventID, evStatus, c); err != nil {
			return err
		}
		return db.flushCounts(ctx, tx, c)
	})
	if err == nil || errors.Is(err, relay.ErrNotFound) {
		db.claimsMu.Lock()
		if db.claims[key] == cl {
			delete(db.claims, key)
		}
		db.claimsMu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("complete %s: %w", name, err)
	}
	if r.Status != relay.DeliveryRetrying {
		db.pendingAdd(-1)
	}
	return nil
}

// refreshEvent recomputes the status of event id (whose row tx has
// locked, with status was) from its deliveries, and writes it when it
// changed.
func (db *DB) refreshEvent(ctx context.Context, tx *sql.Tx, id, was string, c counts) error {
	rows, err := tx.QueryContext(ctx, db.t.expand("SELECT status, mirror FROM {deliveries} WHERE event_id = ?"), id)
	if err != nil {
		return err
	}
	var ss []relay.DeliveryState
	for rows.Next() {
		var s relay.DeliveryState
		if err := rows.Scan(&s.Status, &s.Mirror); err != nil {
			rows.Close()
			return err
		}
		ss = append(ss, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	status := relay.EventStatus(ss, was)
	if status == was {
		return nil
	}
	if _, err := tx.ExecContext(ctx, db.t.expand("UPDATE {events} SET status = ? WHERE id = ?"), status, id); err != nil {
		return err
	}
	c.move("event", was, status)
	return nil
}

// NextDue reports when target's earliest pending delivery is due. An
// in-flight delivery counts at the end of its lease, when a Claim would
// return it again.
func (db *DB) NextDue(ctx context.Context, target string) (time.Time, bool, error) {
	var at sql.NullTime
	err := db.sql.QueryRowContext(ctx, db.t.expand("SELECT MIN(due_at) FROM {deliveries} WHERE target = ?"), target).Scan(&at)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due %s: %w", target, unavailable(err))
	}
	return timeOf(at), at.Valid, nil
}

// Pending counts deliveries not yet final (pending, in flight, retrying),
// across every node, from the counters. With Options.PendingTTL, it may
// answer from a count that old (adjusted by this node's own changes).
func (db *DB) Pending(ctx context.Context) (int, error) {
	if db.pendingTTL > 0 {
		db.pendingMu.Lock()
		if time.Since(db.pendingAt) < db.pendingTTL {
			n := db.pendingN
			db.pendingMu.Unlock()
			return n, nil
		}
		db.pendingMu.Unlock()
	}
	var n int64
	err := db.sql.QueryRowContext(ctx, db.t.expand("SELECT COALESCE(SUM(n), 0) FROM {stats} WHERE kind = 'delivery' AND status IN (?, ?, ?)"),
		stringArgs(notFinal)...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pending: %w", unavailable(err))
	}
	db.pendingMu.Lock()
	db.pendingN, db.pendingAt = int(n), time.Now()
	db.pendingMu.Unlock()
	return int(n), nil
}

// pendingAdd adjusts the cached pending count by this node's own change.
func (db *DB) pendingAdd(n int64) {
	if db.pendingTTL > 0 && n != 0 {
		db.pendingMu.Lock()
		db.pendingN += int(n)
		db.pendingMu.Unlock()
	}
}
