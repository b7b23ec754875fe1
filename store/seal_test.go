package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/store"
)

func testSealer(tb testing.TB, ids ...string) *store.Sealer {
	tb.Helper()
	var keys []store.Key
	for _, id := range ids {
		sum := sha256.Sum256([]byte("test key " + id))
		keys = append(keys, store.Key{ID: id, Secret: sum[:]})
	}
	s, err := store.NewSealer(keys)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

const secretMarker = "card-4242-4242-4242-4242"

func sealedEvent(key string) relay.Incoming {
	in := event(key, time.Now(), "wordpress")
	in.Event.Envelope = []byte(`{"key":"` + key + `","data":{"pan":"` + secretMarker + `"}}`)
	in.Raw.Body = []byte(`{"id":"` + key + `","pan":"` + secretMarker + `"}`)
	return in
}

func enqueueOne(t *testing.T, db *store.DB, in relay.Incoming) string {
	t.Helper()
	out, err := db.Enqueue(context.Background(), &relay.Batch{Events: []relay.Incoming{in}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0].ID
}

func TestSealer_NothingPlainOnDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true, Sealer: testSealer(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	id := enqueueOne(t, db, sealedEvent("stripe:acme:evt_1"))
	ev, err := db.Event(context.Background(), id)
	if err != nil || !bytes.Contains(ev.Envelope, []byte(secretMarker)) {
		t.Fatalf("envelope not readable: %v %s", err, ev.Envelope)
	}
	raw, err := db.Raw(context.Background(), id)
	if err != nil || !bytes.Contains(raw.Body, []byte(secretMarker)) {
		t.Fatalf("raw not readable: %v", err)
	}
	jobs, err := db.Claim(context.Background(), "wordpress", time.Now().Add(time.Second), 1, time.Minute)
	if err != nil || len(jobs) != 1 || !bytes.Contains(jobs[0].Envelope, []byte(secretMarker)) {
		t.Fatalf("claimed envelope: %v %+v", err, jobs)
	}
	db.Close()
	file, _ := os.ReadFile(path)
	if bytes.Contains(file, []byte(secretMarker)) || bytes.Contains(file, []byte(`"pan"`)) {
		t.Fatal("the store file holds the body in plain text")
	}
}

func TestSealer_WrongKeyFailsAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true, Sealer: testSealer(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	enqueueOne(t, db, sealedEvent("k"))
	db.Close()

	// Same id, other bytes.
	other := sha256.Sum256([]byte("another"))
	wrong, _ := store.NewSealer([]store.Key{{ID: "k1", Secret: other[:]}})
	if _, err := store.Open(path, store.Options{NoSync: true, Sealer: wrong}); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	// A key the store was never sealed with, and the old one missing.
	if _, err := store.Open(path, store.Options{NoSync: true, Sealer: testSealer(t, "k9")}); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("unknown key id: %v", err)
	}
	// No key at all.
	if _, err := store.Open(path, store.Options{NoSync: true}); err == nil || !strings.Contains(err.Error(), "no encryption keys") {
		t.Fatalf("no key: %v", err)
	}
}

func TestSealer_RotateThenDropOldKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	ctx := context.Background()
	// Start plain, then turn encryption on, then rotate to a new key.
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range []string{"a", "b", "c"} {
		ids = append(ids, enqueueOne(t, db, sealedEvent("plain:"+k)))
	}
	db.Close()

	db, err = store.Open(path, store.Options{NoSync: true, Sealer: testSealer(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"d", "e"} {
		ids = append(ids, enqueueOne(t, db, sealedEvent("k1:"+k)))
	}
	db.Close()

	db, err = store.Open(path, store.Options{NoSync: true, Sealer: testSealer(t, "k2", "k1")})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	n, err := db.ResealAll(ctx, 3, func(int) { calls++ })
	if err != nil || n != 5 || calls < 2 {
		t.Fatalf("resealed %d records in %d steps: %v (want 5: the raw records, each holding its event's envelope)", n, calls, err)
	}
	if n, _ := db.ResealAll(ctx, 3, nil); n != 0 {
		t.Fatalf("second pass resealed %d", n)
	}
	db.Close()

	// The old key can go now.
	db, err = store.Open(path, store.Options{NoSync: true, Sealer: testSealer(t, "k2")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range ids {
		ev, err := db.Event(ctx, id)
		if err != nil || !bytes.Contains(ev.Envelope, []byte(secretMarker)) {
			t.Fatalf("event %s after rotation: %v", id, err)
		}
		if _, err := db.Raw(ctx, id); err != nil {
			t.Fatalf("raw %s after rotation: %v", id, err)
		}
	}
}

func TestNewSealer_RejectsBadKeys(t *testing.T) {
	for _, keys := range [][]store.Key{
		nil,
		{{ID: "", Secret: make([]byte, 32)}},
		{{ID: "k", Secret: make([]byte, 16)}},
		{{ID: "k", Secret: make([]byte, 32)}, {ID: "k", Secret: make([]byte, 32)}},
	} {
		if _, err := store.NewSealer(keys); err == nil {
			t.Errorf("NewSealer(%d keys) accepted", len(keys))
		}
	}
}
