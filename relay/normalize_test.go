package relay

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestNormalize_FillsWhatTheKindLeftEmpty(t *testing.T) {
	for _, tc := range []struct {
		name, typ, data string
		in, want        Normal
	}{
		{"stripe-like", "invoice.created", `{"data":{"object":{"id":"in_1"}}}`, Normal{},
			Normal{Subject: Subject{ID: "in_1", Type: "invoice"}, Action: Action{Type: "created"}}},
		{"object_ref", "post.published", `{"object_ref":"post:1","id":9}`, Normal{},
			Normal{Subject: Subject{ID: "post:1", Type: "post"}, Action: Action{Type: "published"}}},
		{"top-level id, big number", "orders/create", `{"id":820982911946154508}`, Normal{},
			Normal{Subject: Subject{ID: "820982911946154508", Type: "orders"}, Action: Action{Type: "create"}}},
		{"data.id (Standard Webhooks)", "contact.created", `{"type":"contact.created","data":{"id":"c_1"}}`, Normal{},
			Normal{Subject: Subject{ID: "c_1", Type: "contact"}, Action: Action{Type: "created"}}},
		{"one-word type", "push", `{"id":"x"}`, Normal{}, Normal{Subject: Subject{ID: "x"}}},
		{"kind's subject kept", "a.b", `{"id":"x"}`, Normal{Subject: Subject{ID: "1", Type: "thing"}, Action: Action{Type: "made"}},
			Normal{Subject: Subject{ID: "1", Type: "thing"}, Action: Action{Type: "made"}}},
		{"kind's id, no type", "a.b", `{"id":"x"}`, Normal{Subject: Subject{ID: "1"}}, Normal{Subject: Subject{ID: "1", Type: "a"}, Action: Action{Type: "b"}}},
		{"kind's type, no id: no guess", "a.b", `{"id":"x"}`, Normal{Subject: Subject{Type: "channel"}}, Normal{Subject: Subject{Type: "channel"}, Action: Action{Type: "b"}}},
		{"actor never guessed", "a.b", `{"user":{"id":"u"},"email":"e@x"}`, Normal{}, Normal{Subject: Subject{Type: "a"}, Action: Action{Type: "b"}}},
		{"odd shapes", "a.b", `{"id":{"x":1},"data":"str","object_ref":5}`, Normal{}, Normal{Subject: Subject{ID: "5", Type: "a"}, Action: Action{Type: "b"}}},
		{"not an object", "a.b", `[1,2]`, Normal{}, Normal{Subject: Subject{Type: "a"}, Action: Action{Type: "b"}}},
		{"not json", "", `nope`, Normal{}, Normal{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Normalize(tc.in, tc.typ, []byte(tc.data)); got != tc.want {
				t.Fatalf("Normalize = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNewEnvelope(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	ev := Event{ID: "e1", Source: "stripe", Tenant: "acme", Type: "invoice.created", IdempotencyKey: "stripe:acme:evt_1",
		OccurredAt: at.Add(-time.Minute), ReceivedAt: at, CausationID: "e0"}
	data := json.RawMessage(`{"id":"evt_1","data":{"object":{"id":"in_1"}}}`)
	env := NewEnvelope(&ev, Normal{Actor: Actor{ID: "cus_1"}}, data)
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"e1","source":"stripe","tenant":"acme","type":"invoice.created","idempotency_key":"stripe:acme:evt_1",` +
		`"occurred_at":"2026-11-28T09:59:00Z","received_at":"2026-11-28T10:00:00Z","causation_id":"e0",` +
		`"actor":{"id":"cus_1","email":""},"subject":{"id":"in_1","type":"invoice"},"action":{"type":"created","reason":""},` +
		`"data":{"id":"evt_1","data":{"object":{"id":"in_1"}}}}`
	if string(b) != want {
		t.Fatalf("envelope\n%s\nwant\n%s", b, want)
	}
}

func TestIdempotencyKey(t *testing.T) {
	if got := IdempotencyKey("stripe", "acme", "evt_1", nil); got != "stripe:acme:evt_1" {
		t.Fatal(got)
	}
	if got := IdempotencyKey("hmac", "", "", []byte("{}")); got != "hmac::sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Fatal(got)
	}
}

// BenchmarkNormalize measures the generic rules on a body whose kind left
// the subject empty (the costly case: the body is read for an id).
func BenchmarkNormalize(b *testing.B) {
	data := []byte(`{"event_type":"post.published","object_ref":"post:42","data":{"id":42,"title":"` + strings.Repeat("x", 900) + `"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if n := Normalize(Normal{}, "post.published", data); n.Subject.ID != "post:42" {
			b.Fatalf("subject %+v", n.Subject)
		}
	}
}
