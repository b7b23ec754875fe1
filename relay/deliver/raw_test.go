package deliver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wprelay/wprelay/relay"
)

// A target with format raw gets the provider's request body byte for byte,
// with its Content-Type, signed over those bytes; an event without a
// stored request is dead at once, saying why; a dry run records why it has
// no body.
func TestDispatcher_Raw_SendsTheProvidersBody(t *testing.T) {
	var mu sync.Mutex
	type got struct {
		body []byte
		h    http.Header
	}
	var reqs []got
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, got{b, r.Header.Clone()})
		mu.Unlock()
	}))
	defer srv.Close()
	db := mustDB(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	d := New(db, []Target{{Name: "raw", Kind: "http", URL: srv.URL, AllowPrivate: true, Raw: true,
		Signer: Signer{SigningKey: key}}}, slog.New(slog.DiscardHandler))
	d.Raws = db

	body := []byte("{\n  \"id\": \"evt_1\",\n  \"object\": \"event\",\n  \"type\": \"invoice.paid\"\n}\n")
	id := uuid.Must(uuid.NewV7()).String()
	now := time.Now()
	ev := relay.Event{ID: id, Source: "stripe", Type: "invoice.paid", IdempotencyKey: "stripe::evt_1", Status: relay.EventQueued,
		ReceivedAt: now, OccurredAt: now, Envelope: json.RawMessage(`{"id":"` + id + `","data":{}}`),
		Deliveries: []relay.Delivery{{EventID: id, Target: "raw", Status: relay.DeliveryPending, NextAt: now, CreatedAt: now}}}
	raw := &relay.Raw{Method: "POST", Path: "/hooks/stripe", Header: map[string][]string{"Content-Type": {"application/json; charset=utf-8"}}, Body: body}
	if _, err := db.Enqueue(t.Context(), &relay.Batch{Events: []relay.Incoming{{Event: ev, Raw: raw, KeyExpires: now.Add(time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
	noRaw := enqueue(t, db, "raw") // stored with an empty request
	run(t, d)
	waitDelivery(t, db, id, "raw", relay.DeliverySucceeded)
	dead := waitDelivery(t, db, noRaw, "raw", relay.DeliveryDead)

	mu.Lock()
	defer mu.Unlock()
	var sent *got
	for i := range reqs {
		if reqs[i].h.Get("Idempotency-Key") == id+":raw" {
			sent = &reqs[i]
		}
	}
	if sent == nil || string(sent.body) != string(body) || sent.h.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("raw target got %+v, want the body as it came", sent)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sent.h.Get("webhook-id") + "." + sent.h.Get("webhook-timestamp") + "."))
	m.Write(body)
	if want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)); sent.h.Get("webhook-signature") != want {
		t.Fatalf("signature %q, want %q (over the raw body)", sent.h.Get("webhook-signature"), want)
	}
	if !strings.Contains(dead.Reason, "format raw: event "+noRaw+" has no stored request body") || dead.Attempts != 1 {
		t.Fatalf("delivery without a stored request: %+v", dead)
	}
	for _, r := range reqs {
		if r.h.Get("Idempotency-Key") == noRaw+":raw" {
			t.Fatal("a request was sent for an event without a stored request")
		}
	}
	if p := d.Preview(&ev, ev.Deliveries[0]); p.Body != nil || !strings.Contains(p.Error, "format raw: the body would be the provider's request body as it came") {
		t.Fatalf("dry run of a raw target: %+v", p)
	}
}
