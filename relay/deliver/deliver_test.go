package deliver

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/relaytest"
)

// mustDB returns an in-memory store.
func mustDB(t *testing.T) *relaytest.MemStore {
	t.Helper()
	return relaytest.NewMemStore()
}

// enqueue stores one event with a delivery to each target and returns its id.
func enqueue(t *testing.T, db *relaytest.MemStore, targets ...string) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	now := time.Now()
	ev := relay.Event{ID: id, Source: "src", Type: "thing.happened", IdempotencyKey: "src::" + id, Status: relay.EventQueued,
		ReceivedAt: now, OccurredAt: now, Envelope: json.RawMessage(`{"id":"` + id + `"}`)}
	for _, tg := range targets {
		ev.Deliveries = append(ev.Deliveries, relay.Delivery{EventID: id, Target: tg, Status: relay.DeliveryPending, NextAt: now, CreatedAt: now})
	}
	if _, err := db.Enqueue(t.Context(), &relay.Batch{Events: []relay.Incoming{{Event: ev, Raw: &relay.Raw{}, KeyExpires: now.Add(time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
	return id
}

func run(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wait := d.Start(ctx)
	t.Cleanup(func() { cancel(); wait() })
}

func waitDelivery(t *testing.T, db *relaytest.MemStore, id, target, want string) relay.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev, err := db.Event(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ev.Deliveries {
			if d.Target == target && (d.Status == want || time.Now().After(deadline)) {
				if d.Status != want {
					t.Fatalf("delivery to %s: %s, want %s: %+v", target, d.Status, want, d)
				}
				return d
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeliverer_Run_RefusesPrivateAddresses(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	db := mustDB(t)
	targets := []Target{
		{Name: "loopback", Kind: "http", URL: srv.URL},
		{Name: "localhost-name", Kind: "http", URL: strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)},
		{Name: "metadata", Kind: "http", URL: "http://169.254.169.254/latest/meta-data/"},
		{Name: "private", Kind: "http", URL: "http://10.0.0.1:9/hook"},
		{Name: "allowed", Kind: "http", URL: srv.URL, AllowPrivate: true},
		{Name: "wordpress", Kind: "wordpress", URL: srv.URL},
	}
	d := New(db, targets, slog.New(slog.DiscardHandler))
	run(t, d)
	id := enqueue(t, db, "loopback", "localhost-name", "metadata", "private", "allowed", "wordpress")
	d.Notify()
	for _, name := range []string{"loopback", "localhost-name", "metadata", "private"} {
		got := waitDelivery(t, db, id, name, relay.DeliveryDead)
		if !strings.Contains(got.Reason, "not allowed") || got.Attempts != 1 {
			t.Errorf("%s: reason %q attempts %d", name, got.Reason, got.Attempts)
		}
	}
	waitDelivery(t, db, id, "allowed", relay.DeliverySucceeded)
	waitDelivery(t, db, id, "wordpress", relay.DeliverySucceeded)
	if n := hits.Load(); n != 2 {
		t.Fatalf("the server got %d requests, want 2 (allowed and wordpress only)", n)
	}
}

func TestDeliverer_Run_DoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	db := mustDB(t)
	d := New(db, []Target{{Name: "t", Kind: "http", URL: srv.URL + "/hook", AllowPrivate: true}}, slog.New(slog.DiscardHandler))
	run(t, d)
	id := enqueue(t, db, "t")
	got := waitDelivery(t, db, id, "t", relay.DeliveryDead)
	if followed.Load() != 0 || got.LastStatus != 307 {
		t.Fatalf("followed %d, last status %d", followed.Load(), got.LastStatus)
	}
}

func TestDeliverer_Run_BreakerHoldsAttempts(t *testing.T) {
	var hits atomic.Int32
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !healthy.Load() {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	db := mustDB(t)
	br := &Breaker{Failures: 3, Cooldown: 300 * time.Millisecond}
	d := New(db, []Target{{Name: "t", Kind: "http", URL: srv.URL, AllowPrivate: true, Concurrency: 1, MaxAttempts: 100, Breaker: br}}, slog.New(slog.DiscardHandler))
	d.BaseDelay = time.Millisecond // retries due at once: only the breaker holds them back
	run(t, d)
	var ids []string
	for range 10 {
		ids = append(ids, enqueue(t, db, "t"))
	}
	d.Notify()
	deadline := time.Now().Add(5 * time.Second)
	for state, _, _ := br.State(); state != BreakerOpen; state, _, _ = br.State() {
		if time.Now().After(deadline) {
			t.Fatal("breaker never opened")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// While open, nothing reaches the target.
	atOpen := hits.Load()
	time.Sleep(200 * time.Millisecond)
	if got := hits.Load(); got != atOpen {
		t.Fatalf("%d requests while the breaker was open", got-atOpen)
	}
	healthy.Store(true)
	for _, id := range ids {
		waitDelivery(t, db, id, "t", relay.DeliverySucceeded)
	}
	if s, _, _ := br.State(); s != BreakerClosed {
		t.Fatalf("breaker %s after recovery", s)
	}
	// 3 failures opened it, then at most a failed probe or two before the
	// target healed, then one success per event: far fewer than the
	// hundreds of attempts an unguarded 1 ms retry loop would make.
	if n := hits.Load(); n > 30 {
		t.Fatalf("%d requests reached the target", n)
	}
}

func TestDeliverer_Run_RateAndConcurrencyLimits(t *testing.T) {
	var inflight, peak atomic.Int32
	var times []time.Time
	var mu = make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		mu <- struct{}{}
		times = append(times, time.Now())
		<-mu
		time.Sleep(20 * time.Millisecond)
		inflight.Add(-1)
	}))
	defer srv.Close()
	db := mustDB(t)
	d := New(db, []Target{{Name: "t", Kind: "http", URL: srv.URL, AllowPrivate: true, Concurrency: 2, Rate: 5}}, slog.New(slog.DiscardHandler))
	run(t, d)
	var ids []string
	for range 12 {
		ids = append(ids, enqueue(t, db, "t"))
	}
	d.Notify()
	for _, id := range ids {
		waitDelivery(t, db, id, "t", relay.DeliverySucceeded)
	}
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d requests in flight at once, concurrency is 2", p)
	}
	// 12 requests at 5/s with a burst of 5: the 7 past the burst take at
	// least 1.4 s.
	if span := times[len(times)-1].Sub(times[0]); span < 1300*time.Millisecond {
		t.Fatalf("12 requests within %v at rate 5/s", span)
	}
}

func TestDeliverer_Run_WordPressHTMLIsNotDelivered(t *testing.T) {
	// Plain permalinks: /wp-json/... answers the home page, 200 text/html.
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.Write([]byte("<!doctype html><title>My Blog</title>"))
	}))
	defer srv.Close()
	db := mustDB(t)
	d := New(db, []Target{{Name: "wordpress", Kind: "wordpress", URL: srv.URL + "/wp-json/wprelay/v1/events", MaxAttempts: 2}}, slog.New(slog.DiscardHandler))
	d.BaseDelay = time.Millisecond
	run(t, d)
	id := enqueue(t, db, "wordpress")
	got := waitDelivery(t, db, id, "wordpress", relay.DeliveryDead)
	if got.Attempts != 2 || !strings.Contains(got.LastError, "rest_route") || got.LastStatus != 200 {
		t.Fatalf("delivery %+v", got)
	}
}

// A dead delivery's reason says what the target answered, an empty
// answer included.
func TestDeliverer_Run_DeadReasonNamesAnEmptyAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) }))
	defer srv.Close()
	db := mustDB(t)
	d := New(db, []Target{{Name: "t", Kind: "http", URL: srv.URL, AllowPrivate: true}}, slog.New(slog.DiscardHandler))
	run(t, d)
	got := waitDelivery(t, db, enqueue(t, db, "t"), "t", relay.DeliveryDead)
	if got.Reason != "HTTP 400 is not retryable: (an empty answer)" {
		t.Fatalf("reason %q", got.Reason)
	}
}
