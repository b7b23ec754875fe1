package mysql

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Key is one encryption key: an id stored with every value it seals, and
// 32 bytes of AES-256 key.
type Key struct {
	ID     string
	Secret []byte
}

// Sealer encrypts envelopes and raw requests at rest with AES-256-GCM, as
// the bbolt store's Sealer does and in the same format:
//
//	0x01 | len(id) | id | 12-byte nonce | ciphertext+tag
//
// with the kind of value ("envelopes", "raws") and the event id as
// additional data, so that a sealed value cannot be moved to another
// record. The first key seals; every key opens (rotation). JSON never
// starts with 0x01, which tells sealed values from plain ones.
type Sealer struct {
	active string
	aeads  map[string]cipher.AEAD
}

const sealMark = 0x01

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
var ErrWrongKey = errors.New("encryption key does not match the store")

// NewSealer returns a sealer for keys; keys[0] seals.
func NewSealer(keys []Key) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("encryption: no keys")
	}
	s := &Sealer{active: keys[0].ID, aeads: map[string]cipher.AEAD{}}
	for i, k := range keys {
		if k.ID == "" || len(k.ID) > 64 {
			return nil, fmt.Errorf("encryption key %d: id must be 1 to 64 characters", i)
		}
		if len(k.Secret) != 32 {
			return nil, fmt.Errorf("encryption key %q: must be 32 bytes, got %d", k.ID, len(k.Secret))
		}
		if _, dup := s.aeads[k.ID]; dup {
			return nil, fmt.Errorf("encryption key %q: listed twice", k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.aeads[k.ID] = aead
	}
	return s, nil
}

// seal encrypts plain for record id. A nil sealer returns plain.
func (s *Sealer) seal(label []byte, id string, plain []byte) []byte {
	if s == nil || plain == nil {
		return plain
	}
	aead := s.aeads[s.active]
	out := make([]byte, 0, 2+len(s.active)+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, sealMark, byte(len(s.active)))
	out = append(out, s.active...)
	nonce := out[len(out) : len(out)+aead.NonceSize()]
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	out = out[:len(out)+aead.NonceSize()]
	return aead.Seal(out, nonce, plain, aad(label, id))
}

// open decrypts v; plain values pass through.
func (s *Sealer) open(label []byte, id string, v []byte) ([]byte, error) {
	kid, ok := sealedBy(v)
	if !ok {
		return v, nil
	}
	if s == nil {
		return nil, fmt.Errorf("%s %s is encrypted (key %q) but no encryption keys are configured", label, id, kid)
	}
	aead := s.aeads[kid]
	if aead == nil {
		return nil, fmt.Errorf("%s %s is sealed with key %q, which is not configured", label, id, kid)
	}
	body := v[2+len(kid):]
	if len(body) < aead.NonceSize() {
		return nil, fmt.Errorf("%s %s: sealed value too short", label, id)
	}
	plain, err := aead.Open(nil, body[:aead.NonceSize()], body[aead.NonceSize():], aad(label, id))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", label, id, ErrWrongKey)
	}
	return plain, nil
}

// requestID is the record id a dry-run request is sealed under (the bbolt
// store's delivery key).
func requestID(eventID, target string) string { return eventID + "\x00" + target }

func sealedBy(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != sealMark || len(v) < 2+int(v[1]) {
		return "", false
	}
	return string(v[2 : 2+int(v[1])]), true
}

func aad(label []byte, id string) []byte {
	a := make([]byte, 0, len(label)+1+len(id))
	a = append(a, label...)
	a = append(a, 0)
	return append(a, id...)
}

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
				canaryName, s.seal(labelMeta, canaryName, []byte("wprelay")))
			return err
		}
		switch {
		case canary == nil && s == nil:
			return nil
		case canary == nil:
			return put()
		case s == nil:
			kid, _ := sealedBy(canary)
			return fmt.Errorf("the store is encrypted (key %q) but no encryption keys are configured: set encryption.keys", kid)
		}
		if _, err := s.open(labelMeta, canaryName, canary); err != nil {
			return fmt.Errorf("%w: %w (the first configured key seals; keep the old key listed until every value is re-sealed)", ErrWrongKey, err)
		}
		if kid, _ := sealedBy(canary); kid != s.active {
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
func (s *Sealer) stale(v []byte) bool {
	if v == nil {
		return false
	}
	kid, _ := sealedBy(v)
	return kid != s.active
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
			if s.stale(r.env) || s.stale(r.raw) {
				todo = append(todo, r)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range todo {
			env, err := s.open(labelEnvelope, r.id, r.env)
			if err != nil {
				return err
			}
			var raw []byte
			if r.raw != nil {
				if raw, err = s.open(labelRaw, r.id, r.raw); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, db.t.expand("UPDATE {bodies} SET envelope = ?, raw = ? WHERE event_id = ?"),
				s.seal(labelEnvelope, r.id, bytes.Clone(env)), s.seal(labelRaw, r.id, raw), r.id); err != nil {
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
			if s.stale(r.req) {
				todo = append(todo, r)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range todo {
			plain, err := s.open(labelRequest, requestID(r.id, r.target), r.req)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.t.expand("UPDATE {deliveries} SET request = ? WHERE event_id = ? AND target = ?"),
				s.seal(labelRequest, requestID(r.id, r.target), bytes.Clone(plain)), r.id, r.target); err != nil {
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
