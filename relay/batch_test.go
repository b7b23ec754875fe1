package relay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// CheckBatch fills in what a store commits and leaves the caller's batch
// as it was.
func TestCheckBatch_DefaultsWithoutTouchingTheBatch(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	b := &relay.Batch{Events: []relay.Incoming{{Event: relay.Event{
		IdempotencyKey: "k1",
		Deliveries: []relay.Delivery{
			{Target: "a", Order: &relay.Order{Key: "contact:1"}},
			{Target: "dry", Status: relay.DeliverySkipped, NextAt: now, Order: &relay.Order{Key: "contact:1"}},
			{Target: "m", Mirror: true, Order: &relay.Order{Key: "bad\x00key"}},
		},
	}}}}
	ins, err := relay.CheckBatch(b, now)
	if err != nil {
		t.Fatal(err)
	}
	e := ins[0].Event
	if e.ID == "" || !e.ReceivedAt.Equal(now) || e.Status != relay.EventQueued {
		t.Errorf("event = id %q received %v status %q", e.ID, e.ReceivedAt, e.Status)
	}
	a, dry, m := e.Deliveries[0], e.Deliveries[1], e.Deliveries[2]
	if a.EventID != e.ID || a.Status != relay.DeliveryPending || !a.NextAt.Equal(now) || !a.CreatedAt.Equal(now) || a.Order == nil || a.History == nil {
		t.Errorf("pending delivery = %+v", a)
	}
	if !dry.NextAt.IsZero() || dry.Order != nil {
		t.Errorf("skipped delivery = %+v, want no NextAt and no Order", dry)
	}
	if m.Order != nil {
		t.Errorf("delivery with an unusable order key = %+v, want unordered", m)
	}
	orig := b.Events[0].Event
	if orig.ID != "" || !orig.ReceivedAt.IsZero() || orig.Deliveries[0].Status != "" || orig.Deliveries[2].Order == nil {
		t.Errorf("the batch was changed: %+v", orig)
	}
}

func TestCheckBatch_Refuses(t *testing.T) {
	for name, tc := range map[string]struct {
		ev   relay.Event
		want string
	}{
		"no key":          {relay.Event{}, "empty idempotency key"},
		"bad id":          {relay.Event{ID: "a\x00b", IdempotencyKey: "k"}, "invalid id"},
		"repeated target": {relay.Event{IdempotencyKey: "k", Deliveries: []relay.Delivery{{Target: "a"}, {Target: "a"}}}, "repeated target"},
		"final status":    {relay.Event{IdempotencyKey: "k", Deliveries: []relay.Delivery{{Target: "a", Status: relay.DeliveryDead}}}, "want pending or skipped"},
	} {
		_, err := relay.CheckBatch(&relay.Batch{Events: []relay.Incoming{{Event: tc.ev}}}, time.Now())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

func TestEventStatus(t *testing.T) {
	ds := func(ss ...relay.DeliveryState) []relay.DeliveryState { return ss }
	for _, tc := range []struct {
		states      []relay.DeliveryState
		given, want string
	}{
		{nil, "", relay.EventDiscarded},
		{nil, relay.EventDelivered, relay.EventDelivered},
		{ds(relay.DeliveryState{Status: relay.DeliverySucceeded}, relay.DeliveryState{Status: relay.DeliverySkipped}), "", relay.EventDelivered},
		{ds(relay.DeliveryState{Status: relay.DeliverySucceeded}, relay.DeliveryState{Status: relay.DeliveryRetrying}), "", relay.EventQueued},
		{ds(relay.DeliveryState{Status: relay.DeliveryDead}, relay.DeliveryState{Status: relay.DeliveryPending}), "", relay.EventFailed},
		{ds(relay.DeliveryState{Status: relay.DeliverySucceeded}, relay.DeliveryState{Status: relay.DeliveryDead, Mirror: true}), "", relay.EventDelivered},
	} {
		if got := relay.EventStatus(tc.states, tc.given); got != tc.want {
			t.Errorf("EventStatus(%+v, %q) = %q, want %q", tc.states, tc.given, got, tc.want)
		}
	}
}
