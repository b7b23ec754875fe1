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

// The jti index outlives the process (it is rebuilt from the file at
// Open), and a batch that fails keeps no nonce: the same token sent again
// with a valid batch is accepted.
func TestEnqueue_NonceIndexReopenAndFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	exp := now.Add(5 * time.Minute)
	in := func(key, id string) relay.Incoming {
		return relay.Incoming{Event: relay.Event{ID: id, Source: "s", Type: "t", IdempotencyKey: key, ReceivedAt: now, OccurredAt: now}}
	}
	if _, err := db.Enqueue(t.Context(), &relay.Batch{Nonce: "jti-1", NonceExpires: exp, Events: []relay.Incoming{in("k1", "0194f3c8-0000-7000-8000-000000000001")}}); err != nil {
		t.Fatal(err)
	}
	// Fails: the id is taken (under another key); its nonce is not kept.
	if _, err := db.Enqueue(t.Context(), &relay.Batch{Nonce: "jti-2", NonceExpires: exp, Events: []relay.Incoming{in("k2", "0194f3c8-0000-7000-8000-000000000001")}}); err == nil || errors.Is(err, relay.ErrReplayed) {
		t.Fatalf("batch with a taken id: err = %v, want an error that is not a replay", err)
	}
	if _, err := db.Enqueue(t.Context(), &relay.Batch{Nonce: "jti-2", NonceExpires: exp, Events: []relay.Incoming{in("k2", "")}}); err != nil {
		t.Fatalf("the failed batch's token again: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, jti := range []string{"jti-1", "jti-2"} {
		_, err := db.Enqueue(t.Context(), &relay.Batch{Nonce: jti, NonceExpires: exp.Add(time.Minute), Events: []relay.Incoming{in("k3", "")}})
		if !errors.Is(err, relay.ErrReplayed) {
			t.Errorf("%s after a restart, another exp: err = %v, want relay.ErrReplayed", jti, err)
		}
	}
}
