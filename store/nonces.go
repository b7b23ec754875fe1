package store

import (
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

// Nonces (relay.Batch.Nonce, a JWT's jti) are single-use whatever expiry
// comes with them. On disk a nonce is kept in nonceexp only, under its
// expiry and itself: keys that grow with time are appended rather than
// scattered over the pages of a bucket keyed by random jtis (a random
// insert dirties a page of its own in every commit). The lookup by jti
// alone is nonceIndex, in memory, loaded at Open from nonceexp. Earlier
// layouts kept nonces by jti in the nonces bucket: Enqueue still looks
// there, and Prune deletes them.

// nonceIndex is the jtis of the nonces stored. An entry is owned, while
// the Enqueue that stores it has not committed, by that Enqueue's batch:
// a commit path may run a write again (see committer), and the same
// batch then finds its own entry; another finds a replay. Once the
// Enqueue has returned, the entry is kept (committed) or dropped (failed).
type nonceIndex struct {
	mu sync.Mutex
	m  map[string]*relay.Batch // nil: committed
}

// load adds the nonces tx holds.
func (x *nonceIndex) load(tx *bolt.Tx) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.m = map[string]*relay.Batch{}
	return tx.Bucket(bucketNonceExp).ForEach(func(k, _ []byte) error {
		if _, jti, ok := splitTimedKey(k, 0); ok {
			x.m[string(jti)] = nil
		}
		return nil
	})
}

// claim records jti for b; it is false when jti was stored before (by
// another batch).
func (x *nonceIndex) claim(jti string, b *relay.Batch) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if owner, ok := x.m[jti]; ok && owner != b {
		return false
	}
	if x.m == nil {
		x.m = map[string]*relay.Batch{}
	}
	x.m[jti] = b
	return true
}

// settle ends b's claim on jti: kept when b committed, else dropped.
func (x *nonceIndex) settle(jti string, b *relay.Batch, committed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if owner, ok := x.m[jti]; !ok || owner != b {
		return
	}
	if committed {
		x.m[jti] = nil
	} else {
		delete(x.m, jti)
	}
}

// forget drops jtis that Prune deleted.
func (x *nonceIndex) forget(jtis []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, j := range jtis {
		if x.m[j] == nil {
			delete(x.m, j)
		}
	}
}
