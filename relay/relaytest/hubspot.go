package relaytest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// HubSpotBatch returns what ingest makes of a HubSpot request of n
// elements received at at: n events, each with a pending delivery to
// target, sharing the request's one Raw.
func HubSpotBatch(n int, at time.Time, target string) *relay.Batch {
	var body strings.Builder
	body.WriteString("[")
	for i := range n {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"eventId":%d,"subscriptionType":"contact.propertyChange","portalId":62515,"objectId":%d,"propertyName":"email","propertyValue":"%s"}`,
			i+1, 1000+i, strings.Repeat("x", 40))
	}
	body.WriteString("]")
	raw := &relay.Raw{Method: "POST", Path: "/hooks/hubspot", Body: []byte(body.String())}
	b := &relay.Batch{Events: make([]relay.Incoming, n)}
	for i := range b.Events {
		key := fmt.Sprintf("hubspot::%d", i+1)
		b.Events[i] = relay.Incoming{
			Event: relay.Event{Source: "hubspot", Type: "contact.propertyChange", IdempotencyKey: key, ReceivedAt: at, OccurredAt: at,
				Envelope:   json.RawMessage(fmt.Sprintf(`{"key":%q}`, key)),
				Deliveries: []relay.Delivery{{Target: target, Status: relay.DeliveryPending, NextAt: at, CreatedAt: at}}},
			Raw: raw, BodyHash: sha256.Sum256([]byte(key)), KeyExpires: at.Add(7 * 24 * time.Hour),
		}
	}
	return b
}

// WantSharedRaw enqueues b and checks that its first, second and last
// events each read the request's raw body back; it returns how long the
// Enqueue took.
func WantSharedRaw(t *testing.T, s interface {
	relay.Queue
	Raw(ctx context.Context, id string) (*relay.Raw, error)
}, b *relay.Batch) time.Duration {
	t.Helper()
	start := time.Now()
	outs, err := s.Enqueue(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	body := b.Events[0].Raw.Body
	for _, i := range []int{0, 1, len(outs) - 1} {
		got, err := s.Raw(t.Context(), outs[i].ID)
		if err != nil || len(got.Body) != len(body) {
			t.Fatalf("Raw of event %d: %v, %v", i, got, err)
		}
	}
	return took
}
