package deliver

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
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
