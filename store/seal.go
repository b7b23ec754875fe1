package store

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Key is one encryption key: an id stored with every record it seals, and
// 32 bytes of AES-256 key.
type Key struct {
	ID     string
	Secret []byte
}

// Sealer encrypts raw bodies and envelopes at rest with AES-256-GCM. The
// first key seals; every key opens (rotation). Each sealed value is
//
//	0x01 | len(id) | id | 12-byte nonce | ciphertext+tag
//
// with the bucket name and record id as additional data, so a sealed value
// cannot be moved to another record. JSON (and a binary raw record, 0x02)
// never starts with 0x01, which tells sealed values from the plain ones
// written before encryption was on.
type Sealer struct {
	active string
	aeads  map[string]cipher.AEAD
}

const sealMark = 0x01

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
			return nil, fmt.Errorf("encryption key %q: must be 32 bytes (base64 of 32 random bytes: head -c32 /dev/urandom | base64), got %d", k.ID, len(k.Secret))
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

// seal encrypts plain for record id of bucket. A nil sealer returns plain.
func (s *Sealer) seal(bucket, id, plain []byte) []byte {
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
	return aead.Seal(out, nonce, plain, aad(bucket, id))
}

// open decrypts v (a copy is returned either way). Plain values pass through.
func (s *Sealer) open(bucket, id, v []byte) ([]byte, error) {
	kid, ok := sealedBy(v)
	if !ok {
		return bytes.Clone(v), nil
	}
	if s == nil {
		return nil, fmt.Errorf("%s %s is encrypted (key %q) but no encryption keys are configured", bucket, id, kid)
	}
	aead := s.aeads[kid]
	if aead == nil {
		return nil, fmt.Errorf("%s %s is sealed with key %q, which is not configured", bucket, id, kid)
	}
	body := v[2+len(kid):]
	if len(body) < aead.NonceSize() {
		return nil, fmt.Errorf("%s %s: sealed value too short", bucket, id)
	}
	plain, err := aead.Open(nil, body[:aead.NonceSize()], body[aead.NonceSize():], aad(bucket, id))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", bucket, id, ErrWrongKey)
	}
	return plain, nil
}

// sealedBy returns the key id of a sealed value.
func sealedBy(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != sealMark || len(v) < 2+int(v[1]) {
		return "", false
	}
	return string(v[2 : 2+int(v[1])]), true
}

func aad(bucket, id []byte) []byte {
	a := make([]byte, 0, len(bucket)+1+len(id))
	a = append(a, bucket...)
	a = append(a, 0)
	return append(a, id...)
}

var metaCanary = []byte("seal_canary")

// checkSealer makes sure the configured keys fit the store: a store that
// holds a canary sealed with a key we cannot use, or sealed data while no
// key is configured, refuses to open (loudly, at start, rather than failing
// on every read later). A store without a canary gets one.
func checkSealer(tx *bolt.Tx, s *Sealer) error {
	meta := tx.Bucket(bucketMeta)
	canary := meta.Get(metaCanary)
	switch {
	case canary == nil && s == nil:
		return nil
	case canary == nil:
		return meta.Put(metaCanary, s.seal(bucketMeta, metaCanary, []byte("wprelay")))
	case s == nil:
		kid, _ := sealedBy(canary)
		return fmt.Errorf("the store is encrypted (key %q) but no encryption keys are configured: set encryption.keys", kid)
	}
	if _, err := s.open(bucketMeta, metaCanary, canary); err != nil {
		return fmt.Errorf("%w: %w (the first configured key seals; keep the old key listed until wprelay rotate-key has run)", ErrWrongKey, err)
	}
	if kid, _ := sealedBy(canary); kid != s.active {
		return meta.Put(metaCanary, s.seal(bucketMeta, metaCanary, []byte("wprelay")))
	}
	return nil
}

// Reseal re-encrypts up to max raw bodies, envelopes and dry-run requests
// that are plain or
// sealed with a key other than the active one, looking at records after the
// position from; it returns how many it re-sealed and where to go on (""
// once the whole store has been seen). Without a sealer it does nothing.
func (db *DB) Reseal(ctx context.Context, from string, max int) (n int, next string, err error) {
	s := db.sealer
	if s == nil {
		return 0, "", nil
	}
	buckets := [][]byte{bucketEnvelopes, bucketRaws, bucketRequests}
	err = db.commit.do(ctx, func(tx *bolt.Tx) error {
		n, next = 0, ""
		bi, after := 0, []byte(nil)
		if from != "" {
			// Positions are "<bucket index>:<record id>".
			if len(from) < 2 || from[1] != ':' || from[0] < '0' || int(from[0]-'0') >= len(buckets) {
				return fmt.Errorf("reseal: bad position %q", from)
			}
			bi, after = int(from[0]-'0'), []byte(from[2:])
		}
		type rec struct{ k, v []byte }
		seen := 0
		for ; bi < len(buckets); bi, after = bi+1, nil {
			var todo []rec
			c := tx.Bucket(buckets[bi]).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && seen < max; k, v = c.Next() {
				seen++
				if kid, _ := sealedBy(v); kid != s.active {
					todo = append(todo, rec{bytes.Clone(k), bytes.Clone(v)})
				}
				if seen == max {
					next = fmt.Sprintf("%d:%s", bi, k)
				}
			}
			// Writes after the scan: a cursor is not valid across a Put.
			for _, r := range todo {
				plain, err := s.open(buckets[bi], r.k, r.v)
				if err != nil {
					return err
				}
				if err := tx.Bucket(buckets[bi]).Put(r.k, s.seal(buckets[bi], r.k, plain)); err != nil {
					return err
				}
				n++
			}
			if next != "" {
				return nil
			}
		}
		return nil
	})
	return n, next, err
}

// ResealAll re-seals the whole store in small transactions, calling
// progress after each. It is safe while serving.
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
