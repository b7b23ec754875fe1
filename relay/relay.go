// Package relay is the domain of wprelay: sources and their verifiers, the
// ingest path, routing, delivery to targets and the admin API.
//
// Delivery is at-least-once. An event is acknowledged (202) only after it and
// its deliveries are committed to the store. Each (event, target) pair is one
// delivery with its own state machine:
//
//	pending → in_flight → succeeded | retrying | dead
//	        or skipped (dry-run routes; ordered deliveries coalesced or
//	                    out of order, see Order)
//
// A delivery that was in flight when the process died is due again after a
// restart, so receivers must dedupe on the Idempotency-Key header, which is the
// same on every attempt ("{event id}:{target name}").
//
// # Caveats
//
// Ordering is not guaranteed across events; retries may reorder deliveries
// for one target, unless the target orders them by subject (Order). A delivery's attempt may reach its target twice when the
// process dies after the target answered but before the outcome was committed.
package relay

import (
	"encoding/json"
	"errors"
	"time"
)

// Event statuses, as the admin API reports them.
const (
	EventQueued    = "queued"    // at least one delivery is pending, in flight or retrying
	EventDelivered = "delivered" // every delivery succeeded (or was skipped)
	EventFailed    = "failed"    // at least one delivery is dead
	// Mirror deliveries (Delivery.Mirror) count for none of these: an event
	// whose other deliveries are done is delivered while its mirror copies
	// are still pending, or dead.
	EventDiscarded = "discarded" // no route matched, or a provider handshake
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryInFlight  = "in_flight"
	DeliverySucceeded = "succeeded"
	DeliveryRetrying  = "retrying"
	DeliveryDead      = "dead"
	DeliverySkipped   = "skipped"
)

// Event is one webhook as the relay stores it. Envelope holds the canonical
// JSON that targets receive, built once at ingest so that every attempt sends
// the same bytes.
type Event struct {
	ID             string          `json:"id"` // UUIDv7: sorts by receive time
	Source         string          `json:"source"`
	Tenant         string          `json:"tenant"`
	Type           string          `json:"type"`
	IdempotencyKey string          `json:"idempotency_key"`
	Status         string          `json:"status"`
	ReceivedAt     time.Time       `json:"received_at"`
	OccurredAt     time.Time       `json:"occurred_at"`
	CausationID    string          `json:"causation_id,omitempty"`
	TraceParent    string          `json:"traceparent,omitempty"`
	Envelope       json.RawMessage `json:"envelope,omitempty"`
	Deliveries     []Delivery      `json:"deliveries"`
}

// Raw is what the provider sent, kept for audit and replay. Header values
// that carry credentials are redacted before they are stored.
type Raw struct {
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Header map[string][]string `json:"header"`
	Body   []byte              `json:"body"`
}

// Delivery is one (event, target) pair and its attempt history.
type Delivery struct {
	EventID    string    `json:"event_id"`
	Target     string    `json:"target"`
	Status     string    `json:"status"`
	Attempts   int       `json:"attempts"`
	NextAt     time.Time `json:"next_at,omitzero"` // absent when no attempt is scheduled
	LastStatus int       `json:"last_status"`
	LastError  string    `json:"last_error"`
	DeadAt     time.Time `json:"dead_at,omitzero"`
	Reason     string    `json:"reason,omitempty"` // why it is dead or skipped (Result.Reason)
	CreatedAt  time.Time `json:"created_at"`
	History    []Attempt `json:"history"`

	// Mirror marks a copy made by a route's mirror_to: its outcome never
	// changes the event's status.
	Mirror bool `json:"mirror,omitempty"`
	// Request is, for a delivery skipped by a dry-run route, the request
	// that would have been sent (credentials redacted).
	Request *Request `json:"request,omitempty"`
	// Order, when set, makes the delivery wait for the target's earlier
	// deliveries about the same subject (targets with ordering: subject).
	Order *Order `json:"order,omitempty"`
	// OutOfOrder is set when the delivery was sent although a newer event
	// about its subject had already been delivered to the target (it
	// carried X-Wprelay-Out-Of-Order: true).
	OutOfOrder bool `json:"out_of_order,omitempty"`
	// ResultID is the id of the result event the target's answer became
	// (targets with reply_to), once there is one.
	ResultID string `json:"result_id,omitempty"`
}

// Request is an HTTP request as the dispatcher would send it. Header
// values that carry credentials read REDACTED.
type Request struct {
	Method string              `json:"method"`
	URL    string              `json:"url"`
	Header map[string][]string `json:"header"`
	// Body is the JSON body; empty when it could not be built (Error says
	// why).
	Body  json.RawMessage `json:"body,omitempty"`
	Error string          `json:"error,omitempty"`
}

// Order is a delivery's place in its target's per-subject order.
//
// A store hands out (Claim) a delivery with an Order only when no other
// delivery to the same target with the same Key is in flight and none of
// an event with an earlier OccurredAt (then a smaller event id) is still
// pending or retrying. When the delivery is handed out, a newer event with that Key
// may already have been delivered: the store then sets the delivery's
// OutOfOrder (and Job.OutOfOrder), or, with Skip, skips it instead. With
// Coalesce, handing out the oldest pending delivery of a Key hands out the
// newest one instead and skips the ones in between.
type Order struct {
	Key      string `json:"key"` // the subject, "{subject.type}:{subject.id}"
	Coalesce bool   `json:"coalesce,omitempty"`
	Skip     bool   `json:"skip_out_of_order,omitempty"`
}

// Key returns the delivery's identity, which is also its Idempotency-Key.
func (d *Delivery) Key() string { return d.EventID + ":" + d.Target }

// Attempt is one try at a delivery.
type Attempt struct {
	At         time.Time `json:"at"`
	Status     int       `json:"status"` // HTTP status; 0 for network errors
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
	Response   string    `json:"response,omitempty"` // first bytes of the answer
}

// Errors the ingest path maps onto HTTP answers in exactly one place
// (Ingress.writeError). Verifiers return them, wrapped or bare.
var (
	ErrBadSignature   = errors.New("invalid signature")
	ErrStaleTimestamp = errors.New("timestamp outside tolerance")
	ErrInvalidToken   = errors.New("invalid token")
	ErrReplayed       = errors.New("token replayed")
	ErrInvalidJSON    = errors.New("body is not JSON")
	ErrInvalidEvent   = errors.New("invalid event")
	ErrConflict       = errors.New("idempotency key reused with a different body")
	ErrUnavailable    = errors.New("store unavailable")
	ErrQueueFull      = errors.New("queue full")
	ErrNotFound       = errors.New("not found")
)
