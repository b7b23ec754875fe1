package store

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

func TestSpliceEnvelope(t *testing.T) {
	body := []byte(`{"id":"evt_1","data":{"object":{}}}`)
	env := []byte(`{"id":"e","type":"t","data":` + string(body) + `}`)
	got := spliceEnvelope(env, body)
	if got[0] != envSpliced || !bytes.Equal(got[1:], []byte(`{"id":"e","type":"t","data":`)) {
		t.Fatalf("spliceEnvelope = %q", got)
	}
	for _, tc := range []struct{ name, env, body string }{
		{"body not at the end", `{"data":{"a":1},"x":1}`, `{"a":1}`},
		{"another body", `{"data":{"a":2}}`, `{"a":1}`},
		{"a pretty body, compacted", `{"data":{"a":1}}`, "{\n \"a\": 1\n}"},
		{"not after data", `{"other":{"a":1}}`, `{"a":1}`},
		{"no body", `{"data":null}`, ``},
		{"body longer than the envelope", `{}`, `{"a":1}`},
		{"data not in the body", `{"action":{},"data":{"a":1}}`, `{"data":{"a": 1}}`},
	} {
		if got := spliceEnvelope([]byte(tc.env), []byte(tc.body)); !bytes.Equal(got, []byte(tc.env)) {
			t.Errorf("%s: spliceEnvelope = %q, want the envelope whole", tc.name, got)
		}
	}
}

// An envelope that ends with the raw body is stored without it, and every
// reader gets it back byte for byte: Event, Claim, Export, after a reseal
// under another key too.
func TestEnvelope_SplicedRoundTrip(t *testing.T) {
	k1, _ := NewSealer([]Key{{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}})
	k2, _ := NewSealer([]Key{{ID: "k2", Secret: bytes.Repeat([]byte{2}, 32)}, {ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}})
	body := []byte(`{"id":"evt_1","type":"invoice.created","data":{"object":{"id":"in_1","note":"<&>"}}}`)
	whole := []byte(`{"id":"e1","source":"stripe","data":` + string(body) + `}`)
	// Today's Stripe envelope: data is the body's data member.
	part := []byte(`{"id":"e1","source":"stripe","action":{"type":"created","reason":""},"data":{"object":{"id":"in_1","note":"<&>"}}}`)
	for _, tc := range []struct {
		name   string
		sealer *Sealer
		env    []byte
		mark   byte
	}{{"plain", nil, whole, envSpliced}, {"sealed", k1, whole, envSpliced}, {"plain, data a part of the body", nil, part, envSplicedPart},
		{"sealed, data a part of the body", k1, part, envSplicedPart}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wprelay.db")
			db, err := Open(path, Options{NoSync: true, Sealer: tc.sealer})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			env := tc.env
			in := relay.Incoming{
				Event: relay.Event{ID: "0193f1e2-aaaa-7bbb-8ccc-0123456789ab", Source: "stripe", Type: "invoice.created", IdempotencyKey: "stripe::evt_1",
					ReceivedAt: now, OccurredAt: now, Envelope: env,
					Deliveries: []relay.Delivery{{Target: "t", Status: relay.DeliveryPending, NextAt: now}}},
				Raw:        &relay.Raw{Method: "POST", Path: "/hooks/stripe", Header: map[string][]string{"Stripe-Signature": {"REDACTED"}}, Body: body},
				KeyExpires: now.Add(time.Hour),
			}
			if _, err := db.Enqueue(t.Context(), &relay.Batch{Events: []relay.Incoming{in}}); err != nil {
				t.Fatal(err)
			}
			id := []byte(in.Event.ID)
			_ = db.bolt.View(func(tx *bolt.Tx) error {
				// Version 5: in the raw record, which holds the body once.
				if v := tx.Bucket(bucketEnvelopes).Get(id); v != nil {
					t.Errorf("envelopes holds %q; want the envelope in the raw record", v)
				}
				rec, err := db.sealer.Open(bucketRaws, string(id), tx.Bucket(bucketRaws).Get(id))
				if err != nil || len(rec) == 0 || rec[0] != rawWithEnvelope || bytes.Count(rec, []byte(`"note":"<&>"`)) != 1 {
					t.Errorf("raw record = %q, %v; want the envelope and the raw request, the body once", rec, err)
				}
				stored, _, err := splitRawEnvelope(rec)
				if err != nil || len(stored) == 0 || stored[0] != tc.mark || bytes.Contains(stored, []byte(`"note":"<&>"`)) {
					t.Errorf("stored envelope = %q, %v; want it spliced, without the body", stored, err)
				}
				return nil
			})
			if raw, err := db.Raw(t.Context(), in.Event.ID); err != nil || !bytes.Equal(raw.Body, body) || raw.Method != "POST" {
				t.Errorf("Raw = %+v, %v; want the request as received", raw, err)
			}
			check := func(when string) {
				t.Helper()
				ev, err := db.Event(t.Context(), in.Event.ID)
				if err != nil || !bytes.Equal(ev.Envelope, env) {
					t.Errorf("%s: Event envelope = %s, %v; want %s", when, ev.Envelope, err, env)
				}
				var exported []byte
				if err := db.Export(t.Context(), relay.EventFilter{}, func(e *relay.Event, _ *relay.Raw) error {
					exported = e.Envelope
					return nil
				}); err != nil || !bytes.Equal(exported, env) {
					t.Errorf("%s: Export envelope = %s, %v", when, exported, err)
				}
			}
			check("after Enqueue")
			if tc.sealer != nil {
				db.Close()
				if db, err = Open(path, Options{NoSync: true, Sealer: k2}); err != nil {
					t.Fatal(err)
				}
				if n, err := db.ResealAll(t.Context(), 10, nil); err != nil || n == 0 {
					t.Fatalf("ResealAll = %d, %v", n, err)
				}
				check("after a reseal under k2")
			}
			jobs, err := db.Claim(t.Context(), "t", now.Add(time.Second), 1, time.Minute)
			if err != nil || len(jobs) != 1 || !bytes.Equal(jobs[0].Envelope, env) {
				t.Errorf("Claim = %+v, %v; want the envelope whole", jobs, err)
			}
			db.Close()
		})
	}
}
