// Package relay is the domain of wprelay: sources and their verifiers, the
// ingest path, routing, delivery to targets and the admin API.
//
// Delivery is at-least-once. An event is acknowledged (202) only after it and
// its deliveries are committed to the store. Each (event, target) pair is one
// delivery with its own state machine:
//
//	pending → in_flight → succeeded | retrying | dead
//	                   or skipped (dry-run routes)
//
// A delivery that was in flight when the process died is due again after a
// restart, so receivers must dedupe on the Idempotency-Key header, which is the
// same on every attempt ("{event id}:{target name}").
//
// # Caveats
//
// Ordering is not guaranteed across events; retries may reorder deliveries
// for one target. A delivery's attempt may reach its target twice when the
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
	NextAt     time.Time `json:"next_at"`
	LastStatus int       `json:"last_status"`
	LastError  string    `json:"last_error"`
	DeadAt     time.Time `json:"dead_at,omitzero"`
	Reason     string    `json:"reason,omitempty"` // why it is dead (Result.Reason)
	CreatedAt  time.Time `json:"created_at"`
	History    []Attempt `json:"history"`
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
