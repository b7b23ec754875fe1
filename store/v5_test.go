package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

var v5t0 = time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)

func v5Event(key, tenant, typ string, at time.Time, targets ...string) relay.Incoming {
	in := relay.Incoming{
		Event: relay.Event{
			Source: "stripe", Tenant: tenant, Type: typ, IdempotencyKey: key,
			ReceivedAt: at, Envelope: []byte(`{"key":"` + key + `"}`),
		},
		Raw:        &relay.Raw{Method: "POST", Path: "/hooks/stripe", Body: []byte(`{"id":"` + key + `"}`)},
		BodyHash:   sha256.Sum256([]byte(key)),
		KeyExpires: at.Add(time.Hour),
	}
	for _, target := range targets {
		in.Event.Deliveries = append(in.Event.Deliveries, relay.Delivery{Target: target, NextAt: at})
	}
	return in
}

func v5IDs(t *testing.T, db *DB, f relay.EventFilter, limit int) (ids []string, pages int) {
	t.Helper()
	cursor := ""
	for {
		evs, next, err := db.Events(context.Background(), f, cursor, limit)
		if err != nil {
			t.Fatalf("Events %+v: %v", f, err)
		}
		pages++
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		if next == "" || pages > 100 {
			return ids, pages
		}
		cursor = next
	}
}

// bucketLen counts the entries of bucket name.
func bucketLen(t *testing.T, db *DB, name []byte) int {
	t.Helper()
	n := 0
	_ = db.bolt.View(func(tx *bolt.Tx) error { n = tx.Bucket(name).Stats().KeyN; return nil })
	return n
}

// A file written by version 4 (an index entry per status, source, tenant
// and type of every event; envelopes in their own bucket) is upgraded in
// place by Open: its envelopes and raw requests are read as they are, its
// index entries are not read (no event listed twice, queued events found
// by the scan), they move with a status change and go with their event
// when it is pruned.
func TestOpen_UpgradesVersion4(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := db.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{
		v5Event("k1", "acme", "invoice.paid", v5t0, "a"),
		v5Event("k2", "", "", v5t0.Add(time.Second), "a"),
		v5Event("k3", "acme", "", v5t0.Add(2*time.Second)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{outs[0].ID, outs[1].ID, outs[2].ID}
	if n := bucketLen(t, db, bucketByTenant) + bucketLen(t, db, bucketByType) + bucketLen(t, db, bucketBySource); n != 0 {
		t.Errorf("version 5 wrote %d tenant, type and source entries, want 0", n)
	}
	if n := bucketLen(t, db, bucketByStatus); n != 1 { // k3, discarded
		t.Errorf("version 5 wrote %d status entries, want 1 (none for the queued events)", n)
	}
	// Make it the file version 4 wrote: every index entry, version 4.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for _, id := range ids {
			var r eventRec
			if _, err := getJSON(tx, bucketEvents, []byte(id), &r); err != nil {
				return err
			}
			at := nanos(r.ReceivedAt)
			for _, ik := range [][2]any{{bucketByStatus, r.Status}, {bucketBySource, r.Source}, {bucketByTenant, r.Tenant}, {bucketByType, r.Type}} {
				if ik[1].(string) == "" && (string(ik[0].([]byte)) == "bytenant" || string(ik[0].([]byte)) == "bytype") {
					continue // version 3 and 4 wrote none for an empty tenant or type
				}
				if err := tx.Bucket(ik[0].([]byte)).Put(timedKey(namePrefix(ik[1].(string)), at, []byte(id)), nil); err != nil {
					return err
				}
			}
		}
		// Version 4 kept every envelope in its own bucket.
		for _, id := range ids {
			env, raw, err := splitRawEnvelope(tx.Bucket(bucketRaws).Get([]byte(id)))
			if err != nil || env == nil {
				return fmt.Errorf("raw record of %s: envelope %q, %v; want the envelope in it", id, env, err)
			}
			if err := tx.Bucket(bucketEnvelopes).Put([]byte(id), bytes.Clone(env)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketRaws).Put([]byte(id), bytes.Clone(raw)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put([]byte("version"), putInt64(4))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open of a version 4 file: %v", err)
	}
	defer db.Close()
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if v := getInt64(tx.Bucket(bucketMeta).Get([]byte("version"))); v != 5 {
			t.Errorf("version after Open = %d, want 5", v)
		}
		return nil
	})
	for i, id := range ids {
		key := fmt.Sprint("k", i+1)
		if e, err := db.Event(ctx, id); err != nil || string(e.Envelope) != `{"key":"`+key+`"}` {
			t.Errorf("Event %s from a version 4 file: %+v, %v", key, e, err)
		}
		if raw, err := db.Raw(ctx, id); err != nil || string(raw.Body) != `{"id":"`+key+`"}` {
			t.Errorf("Raw %s from a version 4 file: %+v, %v", key, raw, err)
		}
	}
	for _, tc := range []struct {
		f    relay.EventFilter
		want []string
	}{
		{relay.EventFilter{}, []string{ids[2], ids[1], ids[0]}},
		{relay.EventFilter{Status: relay.EventQueued}, []string{ids[1], ids[0]}},
		{relay.EventFilter{Status: relay.EventDiscarded}, []string{ids[2]}},
		{relay.EventFilter{Tenant: "acme"}, []string{ids[2], ids[0]}},
		{relay.EventFilter{Type: "invoice.paid"}, []string{ids[0]}},
		{relay.EventFilter{Source: "stripe", Tenant: "acme", Status: relay.EventQueued}, []string{ids[0]}},
	} {
		if got, _ := v5IDs(t, db, tc.f, 1); !slices.Equal(got, tc.want) {
			t.Errorf("Events %+v = %v, want %v", tc.f, got, tc.want)
		}
	}

	// Deliver both queued events: their version 4 queued entries go.
	now := v5t0.Add(time.Minute)
	jobs, err := db.Claim(ctx, "a", now, 10, time.Minute)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("Claim: %d jobs, %v", len(jobs), err)
	}
	for _, j := range jobs {
		if err := db.Complete(ctx, relay.Result{EventID: j.EventID, Target: "a", Status: relay.DeliverySucceeded,
			Attempt: relay.Attempt{At: now, Status: 200}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := v5IDs(t, db, relay.EventFilter{Status: relay.EventDelivered}, 10); !slices.Equal(got, []string{ids[1], ids[0]}) {
		t.Errorf("delivered = %v, want %v", got, []string{ids[1], ids[0]})
	}
	if got, _ := v5IDs(t, db, relay.EventFilter{Status: relay.EventQueued}, 10); len(got) != 0 {
		t.Errorf("queued after delivery = %v, want none", got)
	}

	n, err := db.Prune(ctx, now.Add(2*time.Hour), now.Add(time.Hour), 100)
	if err != nil || n != 6 { // 3 keys, 3 events
		t.Fatalf("Prune = %d, %v; want 6", n, err)
	}
	for _, name := range [][]byte{bucketByTime, bucketByStatus, bucketBySource, bucketByTenant, bucketByType, bucketEvents, bucketEnvelopes, bucketRaws} {
		if n := bucketLen(t, db, name); n != 0 {
			t.Errorf("%s holds %d entries after every event was pruned", name, n)
		}
	}
}

// A filter no index serves is a scan of at most eventScan entries per
// page: a page that reaches it ends with what it found and a cursor, and
// the pages together list every match once.
func TestEvents_ScanIsBoundedPerPage(t *testing.T) {
	defer func(n int) { eventScan = n }(eventScan)
	eventScan = 3
	db, err := Open(filepath.Join(t.TempDir(), "wprelay.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ins []relay.Incoming
	var want []string
	for i := range 10 {
		tenant := "other"
		if i%4 == 0 {
			tenant = "acme"
		}
		ins = append(ins, v5Event(fmt.Sprint("k", i), tenant, "t", v5t0.Add(time.Duration(i)*time.Second), "a"))
	}
	outs, err := db.Enqueue(context.Background(), &relay.Batch{Events: ins})
	if err != nil {
		t.Fatal(err)
	}
	for i := 9; i >= 0; i-- {
		if i%4 == 0 {
			want = append(want, outs[i].ID)
		}
	}
	if got, _ := v5IDs(t, db, relay.EventFilter{Tenant: "acme"}, 1); !slices.Equal(got, want) {
		t.Errorf("tenant acme = %v, want %v", got, want)
	}
	// 10 entries, at most 3+1 looked at per page: 3 pages, all empty.
	if got, pages := v5IDs(t, db, relay.EventFilter{Tenant: "nobody"}, 1); len(got) != 0 || pages != 3 {
		t.Errorf("tenant nobody: %v in %d pages, want none in 3 (the scan bound per page)", got, pages)
	}
	if got, pages := v5IDs(t, db, relay.EventFilter{}, 4); len(got) != 10 || pages != 3 {
		t.Errorf("unfiltered: %d events in %d pages, want 10 in 3", len(got), pages)
	}
}

// Version 5 writes no expiry entry for an idempotency key: Prune walks the
// events in arrival order and forgets their keys as they expire, passes
// over a key that never expires, and gives the key of an event pruned
// before its key expired an expiry entry, by which it is forgotten later.
func TestPrune_KeysByArrival(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "wprelay.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	never := v5Event("k2", "", "", v5t0.Add(time.Second))
	never.KeyExpires = time.Time{}
	later := v5Event("k3", "", "", v5t0.Add(2*time.Second))
	later.KeyExpires = v5t0.Add(2 * time.Hour)
	if _, err := db.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{v5Event("k1", "", "", v5t0), never, later}}); err != nil {
		t.Fatal(err)
	}
	if n := bucketLen(t, db, bucketKeyExp); n != 0 {
		t.Fatalf("%d expiry entries written at ingest, want 0", n)
	}
	prune := func(now, before time.Time) int {
		t.Helper()
		n, err := db.Prune(ctx, now, before, 100)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := prune(v5t0.Add(30*time.Minute), time.Time{}); n != 0 {
		t.Errorf("Prune before any key expired = %d, want 0", n)
	}
	if n := prune(v5t0.Add(90*time.Minute), time.Time{}); n != 1 {
		t.Errorf("Prune once k1 expired = %d, want 1 (k2 never expires, k3 later)", n)
	}
	if n := prune(v5t0.Add(90*time.Minute), time.Time{}); n != 0 {
		t.Errorf("second Prune = %d, want 0", n)
	}
	// The events go (no deliveries: discarded) before k3 expires.
	if n := prune(v5t0.Add(90*time.Minute), v5t0.Add(time.Hour)); n != 3 {
		t.Errorf("Prune of the events = %d, want 3", n)
	}
	if n := prune(v5t0.Add(3*time.Hour), time.Time{}); n != 1 {
		t.Errorf("Prune once k3 expired = %d, want 1 (by its expiry entry)", n)
	}
	if n := bucketLen(t, db, bucketKeys); n != 1 {
		t.Errorf("%d keys left, want 1 (k2, which never expires)", n)
	}
	// A new event with k1 is new again.
	outs, err := db.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{v5Event("k1", "", "", v5t0.Add(4*time.Hour))}})
	if err != nil || outs[0].Duplicate {
		t.Errorf("k1 after it was forgotten: %+v, %v; want a new event", outs, err)
	}
}

// What one event costs to write: its record, its key, its raw request
// (holding its envelope), its bytime entry, its delivery and due entry;
// the status counters once per commit.
func TestEnqueue_RecordsPerEvent(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "wprelay.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ins []relay.Incoming
	for i := range 32 {
		in := v5Event(fmt.Sprint("k", i), "acme", "invoice.paid", v5t0.Add(time.Duration(i)), "a")
		in.Event.Envelope = []byte(`{"id":"e","data":` + string(in.Raw.Body) + `}`)
		ins = append(ins, in)
	}
	before, _ := db.WriteStats()
	if _, err := db.Enqueue(context.Background(), &relay.Batch{Events: ins}); err != nil {
		t.Fatal(err)
	}
	after, _ := db.WriteStats()
	if got, want := after-before, uint64(32*6+2); got != want {
		t.Errorf("32 events put %d records, want %d (6 each, 2 counters)", got, want)
	}
}
