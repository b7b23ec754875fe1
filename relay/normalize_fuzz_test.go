package relay

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzNormalize: normalization never panics, fills what a type implies, and
// the envelope it leads to is always valid JSON carrying the data as given.
func FuzzNormalize(f *testing.F) {
	f.Add("invoice.created", []byte(`{"data":{"object":{"id":"in_1","object":"invoice"}}}`))
	f.Add("orders/create", []byte(`{"id":820982911946154508}`))
	f.Add("post.published", []byte(`{"object_ref":"post:123","data":{"title":"x"}}`))
	f.Add("", []byte(`[]`))
	f.Add("a.b.c", []byte(`{"id":{"nested":true},"data":{"id":null}}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		if !json.Valid(data) {
			return // the ingest path only normalizes verified, parsed JSON
		}
		n := Normalize(Normal{}, typ, data)
		// A type with several segments names the subject and the action.
		if subject, action := SplitType(typ); action != "" && (n.Subject.Type != subject || n.Action.Type != action) {
			t.Fatalf("type %q gave subject %q action %q", typ, n.Subject.Type, n.Action.Type)
		}
		ev := &Event{ID: "01a2224c-0a97-7f31-8764-8d0d3da3d147", Source: "s", Type: typ, ReceivedAt: time.Unix(0, 0), OccurredAt: time.Unix(0, 0)}
		out, err := json.Marshal(NewEnvelope(ev, n, data))
		if err != nil {
			t.Fatalf("envelope: %v", err)
		}
		var back struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(out, &back); err != nil || !json.Valid(back.Data) {
			t.Fatalf("envelope does not round-trip: %v %s", err, out)
		}
	})
}
