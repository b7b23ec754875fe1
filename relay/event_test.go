package relay

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The typed envelope ingress holds answers every path as the decoded
// encoded envelope does (routes' conditions read one or the other).
func TestEnvView_LookupAsDecoded(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC)
	ev := &Event{ID: "e1", Source: "stripe", Tenant: "acme", Type: "invoice.paid", IdempotencyKey: "stripe:acme:evt_1",
		ReceivedAt: at, OccurredAt: at.Add(-time.Second)}
	paths := []string{"id", "source", "tenant", "type", "idempotency_key", "occurred_at", "received_at", "causation_id",
		"actor.id", "actor.email", "subject.id", "subject.type", "action.type", "action.reason", "actor", "id.x",
		"data", "data.object.id", "data.object.amount_due", "data.object.lines.0.sku", "data.object.lines.1", "data.object.note",
		"data.missing", "data.0", "nope", "subject.nope"}
	for _, c := range []struct {
		data  string
		cause string
	}{
		{`{"object":{"id":"in_1","amount_due":2000,"paid":true,"lines":[{"sku":"pro"}],"note":null}}`, ""},
		{`[1,{"a":"b"}]`, "evt_0"},
		{`"text"`, ""},
		{`null`, "x"},
	} {
		ev.CausationID = c.cause
		env := NewEnvelope(ev, Normal{Actor: Actor{Email: "ann@example.com"}, Subject: Subject{ID: "in_1", Type: "invoice"}}, json.RawMessage(c.data))
		enc, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		typed, decoded := &envView{env: &env, raw: enc}, DecodeEnvelope(enc)
		for _, p := range paths {
			tv, tf := typed.lookup(p)
			dv, df := Lookup(decoded, p)
			if tf != df || !reflect.DeepEqual(tv, dv) {
				t.Errorf("data %s: %s: typed %#v %v, decoded %#v %v", c.data, p, tv, tf, dv, df)
			}
		}
		if typed.subjectKey() != SubjectKey(enc) {
			t.Errorf("subject key %q, want %q", typed.subjectKey(), SubjectKey(enc))
		}
	}
}

func TestNewEvent(t *testing.T) {
	r := NewRouter([]Route{
		{Source: "stripe", Types: []string{"invoice.*"}, Where: []Condition{{Path: "data.object.currency", Op: OpEq, Value: "usd"}},
			To: []string{"crm"}, MirrorTo: []string{"staging"}},
		{Source: "stripe", To: []string{"preview"}, DryRun: true},
	})
	r.Ordering = map[string]Order{"crm": {Skip: true}}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	var previewed []string
	preview := func(ev *Event, d Delivery) *Request {
		previewed = append(previewed, d.Target)
		return &Request{Method: "POST", URL: "https://preview.example/" + ev.ID}
	}
	d := Draft{Source: "stripe", Tenant: "acme", Type: "invoice.paid", IdempotencyKey: "stripe:acme:evt_1", ReceivedAt: now,
		Normal: Normal{Subject: Subject{ID: "in_1", Type: "invoice"}}, Data: json.RawMessage(`{"object":{"currency":"usd"}}`)}
	ev, err := NewEvent(d, r, now, preview)
	if err != nil {
		t.Fatal(err)
	}
	if !ValidName(ev.ID) || ev.ReceivedAt.Location() != time.UTC || !ev.OccurredAt.Equal(now) || ev.Status != EventQueued {
		t.Fatalf("event: %+v", ev)
	}
	want := []Delivery{
		{EventID: ev.ID, Target: "crm", Status: DeliveryPending, NextAt: now, CreatedAt: now, Order: &Order{Key: "invoice:in_1", Skip: true}},
		{EventID: ev.ID, Target: "staging", Status: DeliveryPending, NextAt: now, CreatedAt: now, Mirror: true},
		{EventID: ev.ID, Target: "preview", Status: DeliverySkipped, NextAt: now, CreatedAt: now, Request: &Request{Method: "POST", URL: "https://preview.example/" + ev.ID}},
	}
	if !reflect.DeepEqual(ev.Deliveries, want) || !reflect.DeepEqual(previewed, []string{"preview"}) {
		t.Fatalf("deliveries:\n got %+v\nwant %+v", ev.Deliveries, want)
	}
	var env Envelope
	if err := json.Unmarshal(ev.Envelope, &env); err != nil || env.ID != ev.ID || env.Subject.ID != "in_1" {
		t.Fatalf("envelope %s: %v", ev.Envelope, err)
	}

	// An imported event keeps its id and envelope bytes, and gets the
	// same deliveries from the stored envelope.
	imp, err := NewEvent(Draft{ID: ev.ID, Source: ev.Source, Tenant: ev.Tenant, Type: ev.Type, IdempotencyKey: ev.IdempotencyKey,
		ReceivedAt: ev.ReceivedAt, OccurredAt: ev.OccurredAt, Envelope: ev.Envelope}, r, now, preview)
	if err != nil || imp.ID != ev.ID || string(imp.Envelope) != string(ev.Envelope) || !reflect.DeepEqual(imp.Deliveries, want) {
		t.Fatalf("imported: %v %+v", err, imp)
	}

	// Another currency: only the dry run, so nothing is sent (delivered);
	// a discarded item goes nowhere; no route: discarded.
	d.Data = json.RawMessage(`{"object":{"currency":"eur"}}`)
	if ev, _ := NewEvent(d, r, now, nil); ev.Status != EventDelivered || len(ev.Deliveries) != 1 || ev.Deliveries[0].Request != nil {
		t.Fatalf("dry run only: %+v", ev)
	}
	d.Discard = true
	if ev, _ := NewEvent(d, r, now, nil); ev.Status != EventDiscarded || len(ev.Deliveries) != 0 {
		t.Fatalf("discarded: %+v", ev)
	}
	if ev, _ := NewEvent(Draft{Source: "github", IdempotencyKey: "k", ReceivedAt: now}, r, now, nil); ev.Status != EventDiscarded {
		t.Fatalf("unrouted: %+v", ev)
	}

	// A result event goes to its reply_to target whatever the routes.
	res, err := NewEvent(Draft{Source: "target:ai", Type: "x.result", IdempotencyKey: "target:ai:e0", ReceivedAt: now, ReplyTo: "crm",
		Data: json.RawMessage(`{}`)}, r, now, nil)
	if err != nil || len(res.Deliveries) != 1 || res.Deliveries[0].Target != "crm" || res.Status != EventQueued {
		t.Fatalf("result: %v %+v", err, res)
	}
	if _, err := NewEvent(Draft{Source: "s", IdempotencyKey: "k", ReceivedAt: now, Data: json.RawMessage(`{"a":`)}, r, now, nil); err == nil ||
		!strings.Contains(err.Error(), ErrInvalidJSON.Error()) {
		t.Fatalf("invalid data: %v", err)
	}
}
