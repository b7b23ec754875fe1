package relay

import (
	"encoding/json"
	"strings"
	"time"
)

// Envelope is the canonical JSON that targets receive.
type Envelope struct {
	ID             string          `json:"id"`
	Source         string          `json:"source"`
	Tenant         string          `json:"tenant"`
	Type           string          `json:"type"`
	IdempotencyKey string          `json:"idempotency_key"`
	OccurredAt     time.Time       `json:"occurred_at"`
	ReceivedAt     time.Time       `json:"received_at"`
	CausationID    string          `json:"causation_id,omitempty"`
	Actor          Actor           `json:"actor"`
	Subject        Subject         `json:"subject"`
	Action         Action          `json:"action"`
	Data           json.RawMessage `json:"data"`
}

// Actor is who caused the event, when the provider says.
type Actor struct {
	ID    string `json:"id"`
	Email string `json:"email"`
}

// Subject is the object the event is about.
type Subject struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// Action is what happened to the subject.
type Action struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// SplitType derives a subject type and an action from an event type:
// "invoice.payment_failed" → ("invoice", "payment_failed"),
// "orders/create" → ("orders", "create"), "push" → ("push", "").
func SplitType(typ string) (subject, action string) {
	i := strings.LastIndexAny(typ, "./")
	if i < 0 {
		return typ, ""
	}
	j := strings.IndexAny(typ, "./")
	return typ[:j], typ[i+1:]
}
