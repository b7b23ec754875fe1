package store

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/internal/seal"
)

// Key, Sealer and ErrWrongKey are the shared ones (internal/seal): both
// stores seal in one format.
type (
	Key    = seal.Key
	Sealer = seal.Sealer
)

// ErrWrongKey is returned at Open when the configured keys cannot open what
// the store holds.
var ErrWrongKey = seal.ErrWrongKey

// NewSealer returns a sealer for keys; keys[0] seals.
func NewSealer(keys []Key) (*Sealer, error) { return seal.New(keys) }

var metaCanary = []byte(seal.CanaryName)

// checkSealer makes sure the configured keys fit the store
// (seal.CheckCanary).
func checkSealer(tx *bolt.Tx, s *Sealer) error {
	meta := tx.Bucket(bucketMeta)
	put, err := seal.CheckCanary(s, meta.Get(metaCanary))
	if err != nil || !put {
		return err
	}
	return meta.Put(metaCanary, s.NewCanary())
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
				if s.Stale(v) || v == nil {
					todo = append(todo, rec{bytes.Clone(k), bytes.Clone(v)})
				}
				if seen == max {
					next = fmt.Sprintf("%d:%s", bi, k)
				}
			}
			// Writes after the scan: a cursor is not valid across a Put.
			for _, r := range todo {
				plain, err := s.Open(buckets[bi], string(r.k), r.v)
				if err != nil {
					return err
				}
				if err := tx.Bucket(buckets[bi]).Put(r.k, s.Seal(buckets[bi], string(r.k), plain)); err != nil {
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
	return seal.ResealAll(ctx, db.Reseal, batch, progress)
}
