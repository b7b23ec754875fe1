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

func settleEvent(t *testing.T, db *store.DB) string {
	t.Helper()
	now := time.Now()
	id := uuid.Must(uuid.NewV7()).String()
	_, err := db.Enqueue(context.Background(), &relay.Batch{Events: []relay.Incoming{{Event: relay.Event{
		ID: id, Source: "src", Type: "thing.happened", IdempotencyKey: "src::" + id, Status: relay.EventQueued,
		ReceivedAt: now, OccurredAt: now, Envelope: json.RawMessage(`{"id":"` + id + `","data":{}}`),
		Deliveries: []relay.Delivery{{EventID: id, Target: "t", Status: relay.DeliveryPending, NextAt: now, CreatedAt: now}},
	}, KeyExpires: now.Add(time.Hour)}}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// With a store that settles (store.DB), an outcome is committed with the
// loop's next claim, alone once it has waited settleLinger, and at the
// latest when the dispatcher stops: none is lost.
func TestDispatcher_Settle_OutcomesCommitted(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	db, err := store.Open(filepath.Join(t.TempDir(), "wprelay.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := New(db, []Target{{Name: "t", Kind: "http", URL: srv.URL, AllowPrivate: true, Concurrency: 4}}, slog.New(slog.DiscardHandler))
	d.Settler = db
	ctx, cancel := context.WithCancel(context.Background())
	wait := d.Start(ctx)

	// Alone: committed after the linger, with nothing else to ride with.
	first := settleEvent(t, db)
	d.Notify()
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := db.Pending(ctx); n > 0; n, _ = db.Pending(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("the outcome of a lone delivery was not committed within 5s (linger %s)", settleLinger)
		}
		time.Sleep(time.Millisecond)
	}
	if e, err := db.Event(ctx, first); err != nil || e.Status != relay.EventDelivered {
		t.Fatalf("lone event: %+v, %v; want delivered", e, err)
	}

	// Stopped right after the target answered: the outcome is committed
	// before the dispatcher returns.
	var ids []string
	for range 3 {
		ids = append(ids, settleEvent(t, db))
	}
	d.Notify()
	for got.Load() < 4 {
		time.Sleep(100 * time.Microsecond)
	}
	cancel()
	wait()
	for _, id := range ids {
		if e, err := db.Event(context.Background(), id); err != nil || e.Status != relay.EventDelivered || len(e.Deliveries[0].History) != 1 {
			t.Errorf("event %s after stop: %+v, %v; want delivered after one attempt", id, e, err)
		}
	}
}
