package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/relaytest"
	"github.com/wprelay/wprelay/store"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// MustOpenDB opens a new store in a temporary directory, with fsync off and
// the default commit loop, and closes it when the test ends.
func MustOpenDB(tb testing.TB) *store.DB {
	tb.Helper()
	return mustOpen(tb, filepath.Join(tb.TempDir(), "wprelay.db"), store.Options{NoSync: true})
}

// mustOpen opens the store at path with o and closes it when the test ends.
func mustOpen(tb testing.TB, path string, o store.Options) *store.DB {
	tb.Helper()
	db, err := store.Open(path, o)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return db
}

func TestDB_Conformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    store.Options
	}{
		{"loop", store.Options{Commit: store.CommitLoop, NoSync: true}},
		{"batch", store.Options{Commit: store.CommitBatch, NoSync: true}},
		{"single", store.Options{Commit: store.CommitSingle, NoSync: true}},
		{"loop_fsync", store.Options{Commit: store.CommitLoop}},
		{"loop_sealed", store.Options{Commit: store.CommitLoop, NoSync: true, Sealer: testSealer(t, "k1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			relaytest.TestStore(t, func(t *testing.T) relaytest.Store {
				return mustOpen(t, filepath.Join(t.TempDir(), "wprelay.db"), tc.o)
			})
		})
	}
}

// event returns an Incoming with one pending delivery per target.
func event(key string, at time.Time, targets ...string) relay.Incoming {
	in := relay.Incoming{
		Event: relay.Event{
			Source: "stripe", Tenant: "acme", Type: "invoice.created", IdempotencyKey: key,
			ReceivedAt: at, Envelope: []byte(`{"key":"` + key + `"}`),
		},
		Raw:        &relay.Raw{Method: "POST", Path: "/hooks/stripe", Body: []byte(`{"id":"` + key + `"}`)},
		BodyHash:   sha256.Sum256([]byte(key)),
		KeyExpires: at.Add(7 * 24 * time.Hour),
	}
	for _, target := range targets {
		in.Event.Deliveries = append(in.Event.Deliveries, relay.Delivery{Target: target, NextAt: at})
	}
	return in
}

func enqueue(tb testing.TB, db *store.DB, ins ...relay.Incoming) []relay.Outcome {
	tb.Helper()
	outs, err := db.Enqueue(context.Background(), &relay.Batch{Events: ins})
	if err != nil {
		tb.Fatalf("enqueue: %v", err)
	}
	return outs
}

func TestDB_Reopen_InFlightDueAgain(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	outs := enqueue(t, db, event("k1", t0, "a"), event("k2", t0.Add(time.Second), "a"))
	// k1 is tried once and is due again at t0+2s, after k2.
	jobs, _ := db.Claim(ctx, "a", t0.Add(time.Second), 1, time.Minute)
	if len(jobs) != 1 || jobs[0].EventID != outs[0].ID {
		t.Fatalf("claimed %+v, want k1", jobs)
	}
	if err := db.Complete(ctx, relay.Result{EventID: jobs[0].EventID, Target: "a", Status: relay.DeliveryRetrying,
		Attempt: relay.Attempt{At: t0.Add(time.Second), Status: 503}, NextAt: t0.Add(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	jobs, _ = db.Claim(ctx, "a", t0.Add(2*time.Second), 10, time.Hour)
	if len(jobs) != 2 {
		t.Fatalf("claimed %d, want 2", len(jobs))
	}
	if err := db.Close(); err != nil { // the process "dies" with both in flight
		t.Fatal(err)
	}

	db = mustOpen(t, path, store.Options{NoSync: true})
	if n, _ := db.Pending(ctx); n != 2 {
		t.Errorf("pending after reopen = %d, want 2", n)
	}
	now := t0.Add(3 * time.Second) // long before the old lease would end
	jobs, err = db.Claim(ctx, "a", now, 10, time.Minute)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("claim after reopen = %d jobs, %v; want both due again", len(jobs), err)
	}
	if jobs[0].EventID != outs[1].ID || jobs[1].EventID != outs[0].ID {
		t.Errorf("order after reopen: %s, %s; want k2 (due t0+1s), k1 (due t0+2s)", jobs[0].EventID, jobs[1].EventID)
	}
	e, err := db.Event(ctx, outs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := e.Deliveries[0]; d.Status != relay.DeliveryInFlight || d.Attempts != 1 {
		t.Errorf("delivery after reopen and claim = %+v", d)
	}
	s, _ := db.Stats(ctx)
	if s.Deliveries[relay.DeliveryInFlight] != 2 || s.Deliveries[relay.DeliveryPending] != 0 || s.Deliveries[relay.DeliveryRetrying] != 0 {
		t.Errorf("delivery counts = %v", s.Deliveries)
	}
}

func TestDB_Reopen_KeepsEverything(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &relay.Batch{Nonce: "jti-1", NonceExpires: t0.Add(time.Hour),
		Events: []relay.Incoming{event("k1", t0, "a"), event("k2", t0.Add(time.Second), "b"), event("k3", t0.Add(2*time.Second))}}
	outs, err := db.Enqueue(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := db.Claim(ctx, "b", t0.Add(time.Minute), 1, time.Minute)
	if err := db.Complete(ctx, relay.Result{EventID: jobs[0].EventID, Target: "b", Status: relay.DeliveryDead,
		Attempt: relay.Attempt{At: t0.Add(time.Minute), Status: 410}, Reason: "gone"}); err != nil {
		t.Fatal(err)
	}
	type snapshot struct {
		events  []relay.Event
		dead    []relay.Delivery
		stats   relay.Stats
		pending int
		raw     relay.Raw
	}
	snap := func(db *store.DB) snapshot {
		t.Helper()
		var s snapshot
		var err error
		if s.events, _, err = db.Events(ctx, relay.EventFilter{}, "", 100); err != nil {
			t.Fatal(err)
		}
		if s.dead, _, err = db.DeadLetters(ctx, relay.DeadFilter{}, "", 100); err != nil {
			t.Fatal(err)
		}
		if s.stats, err = db.Stats(ctx); err != nil {
			t.Fatal(err)
		}
		s.pending, _ = db.Pending(ctx)
		raw, err := db.Raw(ctx, outs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		s.raw = *raw
		return s
	}
	before := snap(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = mustOpen(t, path, store.Options{})
	after := snap(db)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("after reopen:\n%v\nbefore:\n%v", after, before)
	}
	if len(after.events) != 3 || len(after.dead) != 1 || after.pending != 1 || after.dead[0].Reason != "gone" {
		t.Errorf("reopened store: %d events, %d dead, %d pending", len(after.events), len(after.dead), after.pending)
	}
	// Keys and nonces survive too.
	if o := enqueue(t, db, event("k2", t0, "b"))[0]; !o.Duplicate || o.ID != outs[1].ID {
		t.Errorf("key after reopen: %+v", o)
	}
	if _, err := db.Enqueue(ctx, &relay.Batch{Nonce: "jti-1", NonceExpires: t0.Add(time.Hour), Events: []relay.Incoming{event("k9", t0)}}); !errors.Is(err, relay.ErrReplayed) {
		t.Errorf("nonce after reopen: err = %v", err)
	}
	if at, ok, _ := db.NextDue(ctx, "a"); !ok || !at.Equal(t0) {
		t.Errorf("NextDue after reopen = %v, %v", at, ok)
	}
}

func TestDB_GroupCommit_SharesCommits(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "wprelay.db"), store.Options{Commit: store.CommitLoop})
	const n = 256
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			if _, err := db.Enqueue(t.Context(), &relay.Batch{Events: []relay.Incoming{event(fmt.Sprint("k", i), t0, "a")}}); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	commits, ops := db.CommitStats()
	t.Logf("%d enqueues: %d commits, %d ops", n, commits, ops)
	if ops != n || commits >= ops {
		t.Errorf("commits = %d, ops = %d; want ops = %d and commits < ops", commits, ops, n)
	}
	if p, _ := db.Pending(t.Context()); p != n {
		t.Errorf("pending = %d, want %d", p, n)
	}
}

func TestDB_GroupCommit_ReplayedNonceFailsAlone(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "wprelay.db"), store.Options{})
	const n = 64
	var (
		wg      sync.WaitGroup
		ok, bad atomic.Int32
		start   = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			b := &relay.Batch{Events: []relay.Incoming{event(fmt.Sprint("k", i), t0, "a")}}
			if i%4 == 0 { // a quarter share one nonce: one wins
				b.Nonce, b.NonceExpires = "shared", t0.Add(time.Hour)
			}
			_, err := db.Enqueue(t.Context(), b)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, relay.ErrReplayed) && i%4 == 0:
				bad.Add(1)
			default:
				t.Errorf("enqueue %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != n-n/4+1 || bad.Load() != n/4-1 {
		t.Errorf("%d succeeded, %d replayed; want %d and %d", ok.Load(), bad.Load(), n-n/4+1, n/4-1)
	}
	evs, _, _ := db.Events(t.Context(), relay.EventFilter{}, "", 1000)
	if len(evs) != int(ok.Load()) {
		t.Errorf("%d events stored, want %d", len(evs), ok.Load())
	}
}

func TestDB_Enqueue_ExpiredKeyIsNew(t *testing.T) {
	db := MustOpenDB(t)
	e := event("k1", t0, "a")
	e.KeyExpires = t0.Add(time.Hour)
	first := enqueue(t, db, e)[0]
	if o := enqueue(t, db, event("k1", t0.Add(59*time.Minute), "a"))[0]; !o.Duplicate {
		t.Errorf("before expiry: %+v, want duplicate", o)
	}
	o := enqueue(t, db, event("k1", t0.Add(time.Hour), "a"))[0]
	if o.Duplicate || o.ID == first.ID {
		t.Errorf("received at expiry (not yet pruned): %+v, want new", o)
	}
	// The old expiry entry is gone: Prune finds nothing to delete.
	if n, err := db.Prune(t.Context(), t0.Add(2*time.Hour), time.Time{}, 10); err != nil || n != 0 {
		t.Errorf("Prune = %d, %v; want 0", n, err)
	}
}

func TestDB_Complete_HistoryBounded(t *testing.T) {
	ctx := t.Context()
	db := MustOpenDB(t)
	id := enqueue(t, db, event("k1", t0, "a"))[0].ID
	const tries = 60
	for i := range tries {
		now := t0.Add(time.Duration(i) * time.Minute)
		if jobs, err := db.Claim(ctx, "a", now, 1, time.Second); err != nil || len(jobs) != 1 {
			t.Fatalf("claim %d: %d, %v", i, len(jobs), err)
		}
		if err := db.Complete(ctx, relay.Result{EventID: id, Target: "a", Status: relay.DeliveryRetrying,
			Attempt: relay.Attempt{At: now, Status: 500 + i}, NextAt: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := db.Event(ctx, id)
	d := e.Deliveries[0]
	if d.Attempts != tries || len(d.History) != 50 || d.History[0].Status != 500+tries-50 || d.History[49].Status != 500+tries-1 {
		t.Errorf("attempts %d, history %d (%d … %d); want %d attempts and the last 50",
			d.Attempts, len(d.History), d.History[0].Status, d.History[len(d.History)-1].Status, tries)
	}
}

func TestOpen_Locked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	mustOpen(t, path, store.Options{NoSync: true})
	_, err := store.Open(path, store.Options{LockTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "another wprelay may be running") {
		t.Fatalf("second Open: err = %v, want a lock error", err)
	}
}

func TestOpen_SchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte{0, 0, 0, 0, 0, 0, 0, 99})
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(path, store.Options{}); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("Open of a newer schema: err = %v", err)
	}
}

func TestOpen_UnknownCommitMode(t *testing.T) {
	if _, err := store.Open(filepath.Join(t.TempDir(), "wprelay.db"), store.Options{Commit: "fast"}); err == nil {
		t.Fatal("Open with commit mode fast succeeded")
	}
}

func TestOpenReadOnly(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	id := enqueue(t, db, event("k1", t0, "a"))[0].ID
	db.Close()

	ro, err := store.OpenReadOnly(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if e, err := ro.Event(ctx, id); err != nil || e.IdempotencyKey != "k1" {
		t.Errorf("Event = %+v, %v", e, err)
	}
	if n, _ := ro.Pending(ctx); n != 1 {
		t.Errorf("Pending = %d, want 1", n)
	}
	if _, err := ro.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{event("k2", t0)}}); !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("Enqueue on a read-only store: err = %v, want relay.ErrUnavailable", err)
	}
	if ro.Size() <= 0 || ro.Path() != path {
		t.Errorf("Size %d, Path %s", ro.Size(), ro.Path())
	}
}

func TestDB_Close_ThenWrite(t *testing.T) {
	db := MustOpenDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := db.Enqueue(context.Background(), &relay.Batch{Events: []relay.Incoming{event("k", t0)}}); !errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("Enqueue after Close: err = %v, want relay.ErrUnavailable", err)
	}
}

// BenchmarkEnqueue measures ingest: 64 goroutines each enqueue one event
// with a 1 KiB raw body per call, with real fsync, in each commit mode;
// loop_nonce as loop, each call also storing a random jti (a request with
// a JWT). group32 enqueues 32 such events per call, so that every commit
// holds 32 events whatever the machine's timing (the loop's group under 64
// connections): its puts/event and pages/event are deterministic.
//
// puts/event counts the records the write path puts (store.DB.WriteStats),
// pages/event the page writes of the commits (bbolt's TxStats.Write, meta
// page included).
func BenchmarkEnqueue(b *testing.B) {
	for _, mode := range []string{store.CommitLoop, store.CommitBatch, store.CommitSingle} {
		b.Run(mode, func(b *testing.B) { benchEnqueue(b, store.Options{Commit: mode}, false, 1) })
	}
	b.Run("loop_nonce", func(b *testing.B) { benchEnqueue(b, store.Options{Commit: store.CommitLoop}, true, 1) })
	b.Run("group32", func(b *testing.B) { benchEnqueue(b, store.Options{Commit: store.CommitLoop}, false, 32) })
}

// benchEvent is a Stripe-like event with a 1 KiB body whose envelope ends
// with that body (stored spliced, as ingress's are) and one delivery.
func benchEvent(key string) relay.Incoming {
	in := event(key, t0, "wordpress")
	in.Raw.Body = fmt.Appendf(nil, `{"id":%q,"pad":"%s"}`, key, bytes.Repeat([]byte("x"), 1000))
	in.Event.Envelope = fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"stripe","type":"invoice.created","data":%s}`, key, in.Raw.Body)
	return in
}

func benchEnqueue(b *testing.B, o store.Options, nonce bool, group int) {
	db := mustOpen(b, filepath.Join(b.TempDir(), "wprelay.db"), o)
	var seq atomic.Int64
	if group == 1 {
		b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	} else {
		b.SetParallelism(1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			batch := &relay.Batch{}
			for range group {
				batch.Events = append(batch.Events, benchEvent(fmt.Sprint("bench:", seq.Add(1))))
			}
			if nonce {
				batch.Nonce, batch.NonceExpires = uuid.NewString(), time.Now().Add(5*time.Minute)
			}
			if _, err := db.Enqueue(context.Background(), batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	commits, ops := db.CommitStats()
	puts, pages := db.WriteStats()
	events := float64(seq.Load())
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(ops)/float64(max(commits, 1)), "ops/commit")
	b.ReportMetric(float64(puts)/events, "puts/event")
	b.ReportMetric(float64(pages)/events, "pages/event")
}

// BenchmarkClaimComplete measures the dispatcher's side: 4 workers each
// claim one delivery and complete it, with real fsync.
func BenchmarkClaimComplete(b *testing.B) {
	ctx := context.Background()
	db := mustOpen(b, filepath.Join(b.TempDir(), "wprelay.db"), store.Options{})
	for i := 0; i < b.N; i += 1000 {
		var ins []relay.Incoming
		for j := i; j < min(i+1000, b.N); j++ {
			ins = append(ins, event(fmt.Sprint("bench:", j), t0.Add(time.Duration(j)), "wordpress"))
		}
		enqueue(b, db, ins...)
	}
	now := t0.Add(time.Hour)
	b.SetParallelism(max(1, 4/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			jobs, err := db.Claim(ctx, "wordpress", now, 1, time.Minute)
			if err != nil || len(jobs) != 1 {
				b.Errorf("claim: %d, %v", len(jobs), err)
				return
			}
			if err := db.Complete(ctx, relay.Result{EventID: jobs[0].EventID, Target: "wordpress", Status: relay.DeliverySucceeded,
				Attempt: relay.Attempt{At: now, Status: 202}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
