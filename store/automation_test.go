package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/store"
)

// A version 1 file (before dry-run requests, ordering and counters) is
// read as is by OpenReadOnly and upgraded by Open.
func TestOpen_UpgradesVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db := mustOpen(t, path, store.Options{NoSync: true})
	id := enqueue(t, db, event("k1", time.Now(), "wordpress"))[0].ID
	db.Close()
	// Make it the file an older wprelay wrote.
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"requests", "subjq", "subjlast", "counters"} {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte{0, 0, 0, 0, 0, 0, 0, 1})
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}

	ro, err := store.OpenReadOnly(path, store.Options{})
	if err != nil {
		t.Fatalf("OpenReadOnly of a version 1 file: %v", err)
	}
	if ev, err := ro.Event(context.Background(), id); err != nil || len(ev.Deliveries) != 1 {
		t.Fatalf("Event from a version 1 file: %v %+v", err, ev)
	}
	if n, err := ro.Add(context.Background(), "budget:x", 0, time.Now()); err != nil || n != 0 {
		t.Fatalf("counter of a version 1 file: %d %v", n, err)
	}
	ro.Close()

	db = mustOpen(t, path, store.Options{NoSync: true})
	if n, err := db.Add(context.Background(), "budget:x", 2, time.Now().Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("counter after the upgrade: %d %v", n, err)
	}
	jobs, err := db.Claim(context.Background(), "wordpress", time.Now().Add(time.Second), 1, time.Minute)
	if err != nil || len(jobs) != 1 || jobs[0].EventID != id {
		t.Fatalf("claim after the upgrade: %v %+v", err, jobs)
	}
	db.Close()
	bdb, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	_ = bdb.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("meta")).Get([]byte("version")); !bytes.Equal(v, []byte{0, 0, 0, 0, 0, 0, 0, 5}) {
			t.Errorf("version after Open = %v, want 5", v)
		}
		return nil
	})
}

// Ordering state (the held-back deliveries and the newest delivered per
// subject) and counters survive a restart; the delivery in flight when the
// process died goes out again before the ones held back behind it.
func TestDB_Reopen_KeepsOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db := mustOpen(t, path, store.Options{NoSync: true})
	now := time.Now()
	ordered := func(key string, occurred time.Time) relay.Incoming {
		in := event(key, now, "crm")
		in.Event.OccurredAt = occurred
		in.Event.Deliveries[0].Order = &relay.Order{Key: "order:1"}
		return in
	}
	outs := enqueue(t, db, ordered("k1", now.Add(-3*time.Minute)), ordered("k2", now.Add(-2*time.Minute)))
	ctx := context.Background()
	jobs, err := db.Claim(ctx, "crm", now, 10, time.Hour)
	if err != nil || len(jobs) != 1 || jobs[0].EventID != outs[0].ID {
		t.Fatalf("claim: %v %+v", err, jobs)
	}
	if _, err := db.Add(ctx, "budget:crm:day", 1, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	db.Close() // as if the process died with k1 in flight

	db = mustOpen(t, path, store.Options{NoSync: true})
	if n, _ := db.Pending(ctx); n != 2 {
		t.Fatalf("pending after reopen = %d, want 2", n)
	}
	for _, want := range []string{outs[0].ID, outs[1].ID} {
		jobs, err := db.Claim(ctx, "crm", now.Add(time.Second), 10, time.Hour)
		if err != nil || len(jobs) != 1 || jobs[0].EventID != want {
			t.Fatalf("claim after reopen: %v %+v, want only %s", err, jobs, want)
		}
		if err := db.Complete(ctx, relay.Result{EventID: want, Target: "crm", Attempt: relay.Attempt{At: now, Status: 200}, Status: relay.DeliverySucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	// In flight when the process dies, with an earlier event arriving
	// meanwhile: after the restart the earlier one goes first.
	newer := enqueue(t, db, ordered("k4", now.Add(time.Minute)))[0].ID
	if jobs, err := db.Claim(ctx, "crm", now.Add(time.Second), 10, time.Hour); err != nil || len(jobs) != 1 || jobs[0].EventID != newer {
		t.Fatalf("claim: %v %+v", err, jobs)
	}
	older := enqueue(t, db, ordered("k3", now.Add(30*time.Second)))[0].ID
	db.Close()
	db = mustOpen(t, path, store.Options{NoSync: true})
	for _, want := range []string{older, newer} {
		jobs, err := db.Claim(ctx, "crm", now.Add(2*time.Second), 10, time.Hour)
		if err != nil || len(jobs) != 1 || jobs[0].EventID != want || jobs[0].OutOfOrder {
			t.Fatalf("claim after the crash: %v %+v, want %s in order", err, jobs, want)
		}
		if err := db.Complete(ctx, relay.Result{EventID: want, Target: "crm", Attempt: relay.Attempt{At: now, Status: 200}, Status: relay.DeliverySucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	late := enqueue(t, db, ordered("k0", now.Add(-time.Hour)))[0].ID
	jobs, err = db.Claim(ctx, "crm", now.Add(time.Second), 10, time.Hour)
	if err != nil || len(jobs) != 1 || jobs[0].EventID != late || !jobs[0].OutOfOrder {
		t.Fatalf("a late, older event after reopen: %v %+v, want it marked out of order", err, jobs)
	}
	if n, err := db.Add(ctx, "budget:crm:day", 0, time.Time{}); err != nil || n != 1 {
		t.Fatalf("counter after reopen = %d, %v", n, err)
	}
}

// Dry-run requests are sealed at rest like envelopes and re-sealed on key
// rotation.
func TestSealer_DryRunRequestSealed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true, Sealer: testSealer(t, "k1")})
	if err != nil {
		t.Fatal(err)
	}
	in := sealedEvent("stripe:acme:evt_dry")
	in.Event.Deliveries[0].Status = relay.DeliverySkipped
	in.Event.Deliveries[0].Request = &relay.Request{Method: "POST", URL: "https://ai.example/v1",
		Header: map[string][]string{"Authorization": {"REDACTED"}}, Body: []byte(`{"pan":"` + secretMarker + `"}`)}
	id := enqueueOne(t, db, in)
	db.Close()
	if file, _ := os.ReadFile(path); bytes.Contains(file, []byte(secretMarker)) {
		t.Fatal("the store file holds the dry-run request in plain text")
	}
	// Rotate: k2 seals, k1 still opens; ResealAll moves the request to k2.
	db, err = store.Open(path, store.Options{NoSync: true, Sealer: testSealer(t, "k2", "k1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResealAll(context.Background(), 10, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = store.Open(path, store.Options{NoSync: true, Sealer: testSealer(t, "k2")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ev, err := db.Event(context.Background(), id)
	if err != nil || ev.Deliveries[0].Request == nil || !bytes.Contains(ev.Deliveries[0].Request.Body, []byte(secretMarker)) {
		t.Fatalf("request after rotation: %v %+v", err, ev)
	}
}
