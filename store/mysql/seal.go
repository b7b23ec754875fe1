package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

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
	labelMeta     = []byte("meta")
	canaryName    = "seal_canary"
)

// ErrWrongKey is returned at Open when the configured keys cannot open what
// the store holds.
var ErrWrongKey = seal.ErrWrongKey

// NewSealer returns a sealer for keys; keys[0] seals.
func NewSealer(keys []Key) (*Sealer, error) { return seal.New(keys) }

// requestID is the record id a dry-run request is sealed under (the bbolt
// store's delivery key).
func requestID(eventID, target string) string { return eventID + "\x00" + target }

// checkSealer makes sure the configured keys fit the store: a store with a
// canary sealed by a key we lack, or sealed data while no key is
// configured, refuses to open. A store without a canary gets one; a canary
// sealed by an older key is re-sealed with the first.
func (db *DB) checkSealer(ctx context.Context) error {
	s := db.sealer
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var canary []byte
		err := tx.QueryRowContext(ctx, db.t.expand("SELECT value FROM {meta} WHERE name = ? FOR UPDATE"), canaryName).Scan(&canary)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("seal canary: %w", err)
		}
		put := func() error {
			_, err := tx.ExecContext(ctx, db.t.expand("INSERT INTO {meta} (name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)"),
				canaryName, s.Seal(labelMeta, canaryName, []byte("wprelay")))
			return err
		}
		switch {
		case canary == nil && s == nil:
			return nil
		case canary == nil:
			return put()
		case s == nil:
			kid, _ := seal.KeyID(canary)
			return fmt.Errorf("the store is encrypted (key %q) but no encryption keys are configured: set encryption.keys", kid)
		}
		if _, err := s.Open(labelMeta, canaryName, canary); err != nil {
			return fmt.Errorf("%w: %w (the first configured key seals; keep the old key listed until every value is re-sealed)", ErrWrongKey, err)
		}
		if kid, _ := seal.KeyID(canary); kid != s.Active() {
			return put()
		}
		return nil
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

// stale reports whether v must be re-sealed with s's first key.
func stale(s *Sealer, v []byte) bool {
	if v == nil {
		return false
	}
	kid, _ := seal.KeyID(v)
	return kid != s.Active()
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
			if stale(s, r.env) || stale(s, r.raw) {
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
			if stale(s, r.req) {
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
	total, from := 0, ""
	for {
		n, next, err := db.Reseal(ctx, from, batch)
		if err != nil {
			return total, err
		}
		total += n
		if progress != nil {
			progress(total)
		}
		if next == "" {
			return total, nil
		}
		from = next
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
