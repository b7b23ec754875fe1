package relay

import (
	"encoding/json"
	"fmt"
	"time"
)

// Draft is what a new event is made from: where it came from, what it says
// and, for an event made before (an import), its envelope.
type Draft struct {
	// ID is the event's id; "" mints one (NewEventID). An imported event
	// keeps its id, so that its deliveries keep their Idempotency-Keys.
	ID             string
	Source         string
	Tenant         string
	Type           string
	IdempotencyKey string
	ReceivedAt     time.Time
	OccurredAt     time.Time // zero: ReceivedAt
	CausationID    string
	TraceParent    string
	// Normal and Data make the envelope (NewEnvelope): the kind's reading
	// of the event and the provider's object.
	Normal Normal
	Data   json.RawMessage
	// Envelope, when set, is the canonical envelope made before (an
	// imported event): it is kept byte for byte, and Normal and Data are
	// not used.
	Envelope json.RawMessage
	// Discard makes an event that goes nowhere (status discarded).
	Discard bool
	// ReplyTo is a target the event goes to whether a route names it or
	// not (a result event's reply_to target).
	ReplyTo string
}

// NewEvent returns the event d describes, ready to enqueue: its envelope,
// encoded once; its deliveries as of now, one per target router finds
// (pending; skipped for dry-run routes, with preview's request when
// preview is not nil; mirror copies marked; an Order for targets that
// order by subject); and its status (EventStatus). Ingress, result events,
// import and the tests all make events here.
func NewEvent(d Draft, router *Router, now time.Time, preview func(*Event, Delivery) *Request) (Event, error) {
	ev := Event{
		ID: d.ID, Source: d.Source, Tenant: d.Tenant, Type: d.Type, IdempotencyKey: d.IdempotencyKey,
		ReceivedAt: d.ReceivedAt.UTC(), OccurredAt: d.OccurredAt.UTC(), CausationID: d.CausationID, TraceParent: d.TraceParent,
	}
	if d.OccurredAt.IsZero() {
		ev.OccurredAt = ev.ReceivedAt
	}
	if ev.ID == "" {
		id, err := NewEventID()
		if err != nil {
			return Event{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		ev.ID = id
	}
	var env envView
	if d.Envelope != nil {
		ev.Envelope, env.raw = d.Envelope, d.Envelope // read as stored
	} else {
		e := NewEnvelope(&ev, d.Normal, d.Data)
		var err error
		if ev.Envelope, err = e.Encode(); err != nil {
			return Event{}, fmt.Errorf("%w: %w", ErrInvalidJSON, err)
		}
		env.env, env.raw = &e, ev.Envelope
	}
	if d.Discard {
		ev.Status = EventDiscarded
		return ev, nil
	}
	if router == nil {
		router = NewRouter(nil)
	}
	ev.Deliveries = router.deliveries(&ev, &env, now)
	if d.ReplyTo != "" && !hasTarget(ev.Deliveries, d.ReplyTo) {
		ev.Deliveries = append(ev.Deliveries, router.to(&ev, &env, d.ReplyTo, now))
	}
	states := make([]DeliveryState, len(ev.Deliveries))
	for i := range ev.Deliveries {
		del := &ev.Deliveries[i]
		if del.Status == DeliverySkipped && preview != nil {
			del.Request = preview(&ev, *del) // dry run: what would have been sent
		}
		states[i] = DeliveryState{Status: del.Status, Mirror: del.Mirror}
	}
	ev.Status = EventStatus(states, "")
	return ev, nil
}

func hasTarget(ds []Delivery, target string) bool {
	for _, d := range ds {
		if d.Target == target {
			return true
		}
	}
	return false
}
