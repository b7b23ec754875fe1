package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/wprelay/wprelay/internal/seal"
)

// Key, Sealer and ErrWrongKey are the shared ones (internal/seal): this
// store seals envelopes and raw requests as the bbolt store does, in the
// same format.
type (
	Key    = seal.Key
	Sealer = seal.Sealer
)

// Labels bound into each sealed value (the bbolt store's bucket names).
var (
	labelEnvelope = []byte("envelopes")
	labelRaw      = []byte("raws")
	labelRequest  = []byte("requests")
)

// ErrWrongKey is returned at Open when the configured keys cannot open what
// the store holds.
var ErrWrongKey = seal.ErrWrongKey

// NewSealer returns a sealer for keys; keys[0] seals.
func NewSealer(keys []Key) (*Sealer, error) { return seal.New(keys) }

// requestID is the record id a dry-run request is sealed under (the bbolt
// store's delivery key).
func requestID(eventID, target string) string { return eventID + "\x00" + target }

// checkSealer makes sure the configured keys fit the store
// (seal.CheckCanary).
func (db *DB) checkSealer(ctx context.Context) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var canary []byte
		err := tx.QueryRowContext(ctx, db.t.expand("SELECT value FROM {meta} WHERE name = ? FOR UPDATE"), seal.CanaryName).Scan(&canary)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("seal canary: %w", err)
		}
		put, err := seal.CheckCanary(db.sealer, canary)
		if err != nil || !put {
			return err
		}
		_, err = tx.ExecContext(ctx, db.t.expand("INSERT INTO {meta} (name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)"),
			seal.CanaryName, db.sealer.NewCanary())
		return err
	})
}

// Reseal re-encrypts up to max envelopes, raw requests and dry-run
// requests that are plain or sealed with a key other than the first,
// looking at the records after position from ("" = the start); it returns
// how many it re-sealed and where to go on ("" once every record has been
// seen). Positions are "b" + event id (bodies), then "r" + event id, NUL,
// target (dry-run requests). Without a sealer it does nothing.
func (db *DB) Reseal(ctx context.Context, from string, max int) (n int, next string, err error) {
	s := db.sealer
	if s == nil || max <= 0 {
		return 0, "", nil
	}
	if from == "" {
		from = "b"
	}
	if from[0] == 'b' {
		n, next, err = db.resealBodies(ctx, from[1:], max)
		if err != nil || next != "" {
			return n, next, err
		}
		from = "r"
	}
	if from[0] != 'r' {
		return 0, "", fmt.Errorf("reseal: bad position %q", from)
	}
	m, next, err := db.resealRequests(ctx, from[1:], max)
	return n + m, next, err
}

func (db *DB) resealBodies(ctx context.Context, after string, max int) (n int, next string, err error) {
	s := db.sealer
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		n, next = 0, ""
		rows, err := tx.QueryContext(ctx, db.t.expand("SELECT event_id, envelope, raw FROM {bodies} WHERE event_id > ? ORDER BY event_id LIMIT ? FOR UPDATE"), after, max)
		if err != nil {
			return err
		}
		type rec struct {
			id       string
			env, raw []byte
		}
		var todo []rec
		seen, last := 0, ""
		for rows.Next() {
			var r rec
			if err := rows.Scan(&r.id, &r.env, &r.raw); err != nil {
				rows.Close()
				return err
			}
			seen, last = seen+1, r.id
			if s.Stale(r.env) || s.Stale(r.raw) {
				todo = append(todo, r)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range todo {
			env, err := s.Open(labelEnvelope, r.id, r.env)
			if err != nil {
				return err
			}
			var raw []byte
			if r.raw != nil {
				if raw, err = s.Open(labelRaw, r.id, r.raw); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, db.t.expand("UPDATE {bodies} SET envelope = ?, raw = ? WHERE event_id = ?"),
				s.Seal(labelEnvelope, r.id, bytes.Clone(env)), s.Seal(labelRaw, r.id, raw), r.id); err != nil {
				return err
			}
			n++
		}
		if seen == max {
			next = "b" + last
		}
		return nil
	})
	return n, next, err
}

func (db *DB) resealRequests(ctx context.Context, after string, max int) (n int, next string, err error) {
	s := db.sealer
	afterID, afterTarget, _ := strings.Cut(after, "\x00")
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		n, next = 0, ""
		rows, err := tx.QueryContext(ctx, db.t.expand(`SELECT event_id, target, request FROM {deliveries}
			WHERE request IS NOT NULL AND (event_id > ? OR event_id = ? AND target > ?) ORDER BY event_id, target LIMIT ? FOR UPDATE`),
			afterID, afterID, afterTarget, max)
		if err != nil {
			return err
		}
		type rec struct {
			id, target string
			req        []byte
		}
		var todo []rec
		seen, last := 0, ""
		for rows.Next() {
			var r rec
			if err := rows.Scan(&r.id, &r.target, &r.req); err != nil {
				rows.Close()
				return err
			}
			seen, last = seen+1, requestID(r.id, r.target)
			if s.Stale(r.req) {
				todo = append(todo, r)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range todo {
			plain, err := s.Open(labelRequest, requestID(r.id, r.target), r.req)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.t.expand("UPDATE {deliveries} SET request = ? WHERE event_id = ? AND target = ?"),
				s.Seal(labelRequest, requestID(r.id, r.target), bytes.Clone(plain)), r.id, r.target); err != nil {
				return err
			}
			n++
		}
		if seen == max {
			next = "r" + last
		}
		return nil
	})
	return n, next, err
}

// ResealAll re-seals the whole store in small transactions, calling
// progress after each. It is safe while serving (on every node at once).
func (db *DB) ResealAll(ctx context.Context, batch int, progress func(done int)) (int, error) {
	return seal.ResealAll(ctx, db.Reseal, batch, progress)
}
