package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

// A nonce stored by an earlier version (in the nonces bucket, keyed by the
// jti alone) is still refused, whatever expiry the replay carries.
func TestEnqueue_NonceFromEarlierLayout(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "wprelay.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exp := time.Now().Add(5 * time.Minute)
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketNonces).Put([]byte("old-jti"), u64(nanos(exp))); err != nil {
			return err
		}
		return tx.Bucket(bucketNonceExp).Put(timedKey(nil, nanos(exp), []byte("old-jti")), nil)
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	in := relay.Incoming{Event: relay.Event{Source: "s", Type: "t", IdempotencyKey: "s::1", ReceivedAt: now, OccurredAt: now}}
	for _, e := range []time.Time{exp, exp.Add(time.Second)} {
		_, err := db.Enqueue(t.Context(), &relay.Batch{Nonce: "old-jti", NonceExpires: e, Events: []relay.Incoming{in}})
		if !errors.Is(err, relay.ErrReplayed) {
			t.Errorf("expiry %v: err = %v, want relay.ErrReplayed", e, err)
		}
	}
	// And it is pruned as before.
	n, err := db.Prune(t.Context(), exp.Add(time.Minute), time.Time{}, 100)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if _, err := db.Enqueue(t.Context(), &relay.Batch{Nonce: "old-jti", NonceExpires: exp.Add(time.Hour), Events: []relay.Incoming{in}}); err != nil {
		t.Errorf("after the prune: %v", err)
	}
}
