// Package seal encrypts records at rest with AES-256-GCM, for both stores
// (bbolt and MySQL/MariaDB), in one format:
//
//	0x01 | len(key id) | key id | 12-byte nonce | ciphertext+tag
//
// with the kind of record (a bucket name: "envelopes", "raws", …) and the
// record's id as additional data, so that a sealed value cannot be moved to
// another record. The first key seals; every key opens (rotation). JSON, a
// binary raw record (0x02) and a spliced envelope (0x03) never start with
// 0x01, which tells sealed values from plain ones written before
// encryption was on.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Key is one encryption key: an id stored with every record it seals, and
// 32 bytes of AES-256 key.
type Key struct {
	ID     string
	Secret []byte
}

// Sealer seals and opens records. A nil *Sealer leaves records plain.
type Sealer struct {
	active string
	aeads  map[string]cipher.AEAD
}

const mark = 0x01

// ErrWrongKey is returned when the configured keys cannot open a record.
var ErrWrongKey = errors.New("encryption key does not match the store")

// New returns a sealer for keys; keys[0] seals.
func New(keys []Key) (*Sealer, error) {
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

// Active is the id of the key that seals.
func (s *Sealer) Active() string { return s.active }

// Seal encrypts plain as record id of kind label. A nil sealer, or nil
// plain, returns plain.
func (s *Sealer) Seal(label []byte, id string, plain []byte) []byte {
	if s == nil || plain == nil {
		return plain
	}
	aead := s.aeads[s.active]
	out := make([]byte, 0, 2+len(s.active)+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, mark, byte(len(s.active)))
	out = append(out, s.active...)
	nonce := out[len(out) : len(out)+aead.NonceSize()]
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	out = out[:len(out)+aead.NonceSize()]
	return aead.Seal(out, nonce, plain, aad(label, id))
}

// Open decrypts v, record id of kind label; a plain value passes through.
// The result is always a copy (v may live in a transaction's memory).
func (s *Sealer) Open(label []byte, id string, v []byte) ([]byte, error) {
	kid, ok := KeyID(v)
	if !ok {
		return bytes.Clone(v), nil
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

// KeyID returns the id of the key that sealed v; ok is false for a plain
// value.
func KeyID(v []byte) (id string, ok bool) {
	if len(v) < 2 || v[0] != mark || len(v) < 2+int(v[1]) {
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
