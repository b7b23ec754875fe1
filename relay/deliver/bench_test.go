package deliver

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/store"
)

// BenchmarkDispatcher_Drain measures the dispatcher's scheduling end to end:
// b.N deliveries are queued in a store with real fsync, then the
// dispatcher (concurrency 64) claims, signs, sends them to a local target
// and commits each outcome. The figure is deliveries per second.
func BenchmarkDispatcher_Drain(b *testing.B) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	db, err := store.Open(filepath.Join(b.TempDir(), "wprelay.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	for i := 0; i < b.N; i += 1000 {
		batch := &relay.Batch{}
		for j := i; j < min(i+1000, b.N); j++ {
			id := uuid.Must(uuid.NewV7()).String()
			batch.Events = append(batch.Events, relay.Incoming{Event: relay.Event{
				ID: id, Source: "src", Type: "thing.happened", IdempotencyKey: "src::" + id, Status: relay.EventQueued,
				ReceivedAt: now, OccurredAt: now, Envelope: json.RawMessage(`{"id":"` + id + `","data":{}}`),
				Deliveries: []relay.Delivery{{EventID: id, Target: "t", Status: relay.DeliveryPending, NextAt: now, CreatedAt: now}},
			}, KeyExpires: now.Add(time.Hour)})
		}
		if _, err := db.Enqueue(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	d := New(db, []Target{{Name: "t", Kind: "http", URL: srv.URL, AllowPrivate: true, Concurrency: 64}}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	b.ResetTimer()
	wait := d.Start(ctx)
	for got.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkDispatcher_Quiet measures a quiet sidecar: one event at a time
// is enqueued (its own commit, as at low load) and delivered to a local
// target, then 2 ms pass before the next (500/s at most); at the end every
// outcome is committed. commits/event counts the store's commits per delivered event,
// ingest included; cpu-µs/event is the process's user+system time per
// event, the target's included (noisy on a shared machine).
// "settle" is the store as it is (outcomes ride with the next claim),
// "complete" the same store seen without its Settle (a commit per outcome).
func BenchmarkDispatcher_Quiet(b *testing.B) {
	b.Run("settle", func(b *testing.B) { benchQuiet(b, false) })
	b.Run("complete", func(b *testing.B) { benchQuiet(b, true) })
}

func benchQuiet(b *testing.B, hideSettle bool) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	db, err := store.Open(filepath.Join(b.TempDir(), "wprelay.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	d := New(db, []Target{{Name: "t", Kind: "http", URL: srv.URL, AllowPrivate: true, Concurrency: 64}}, slog.New(slog.DiscardHandler))
	if !hideSettle {
		d.Settler = db
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := d.Start(ctx)
	commits0, _ := db.CommitStats()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		now := time.Now()
		id := uuid.Must(uuid.NewV7()).String()
		batch := &relay.Batch{Events: []relay.Incoming{{Event: relay.Event{
			ID: id, Source: "src", Type: "thing.happened", IdempotencyKey: "src::" + id, Status: relay.EventQueued,
			ReceivedAt: now, OccurredAt: now, Envelope: json.RawMessage(`{"id":"` + id + `","data":{}}`),
			Deliveries: []relay.Delivery{{EventID: id, Target: "t", Status: relay.DeliveryPending, NextAt: now, CreatedAt: now}},
		}, KeyExpires: now.Add(time.Hour)}}}
		if _, err := db.Enqueue(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		d.Notify()
		for got.Load() < int64(i+1) {
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for n, _ := db.Pending(context.Background()); n > 0; n, _ = db.Pending(context.Background()) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	commits, _ := db.CommitStats()
	cpu := cpuTime() - cpu0
	cancel()
	wait()
	b.ReportMetric(float64(commits-commits0)/float64(b.N), "commits/event")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
}

// cpuTime returns the process's user+system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
