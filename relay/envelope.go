package relay

import (
	"crypto/sha256"
	"encoding/hex"
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

// Normal is a source kind's reading of one event: who did what to which
// object. Any field may be empty; NewEnvelope fills what it can from
// generic rules (see Normalize).
type Normal struct {
	Actor   Actor
	Subject Subject
	Action  Action
}

// NewEnvelope returns the envelope of ev: its identity, type and times, the
// kind's normalization n completed by Normalize, and data, the provider's
// object (see the table in package provider) as received.
func NewEnvelope(ev *Event, n Normal, data json.RawMessage) Envelope {
	n = Normalize(n, ev.Type, data)
	return Envelope{
		ID: ev.ID, Source: ev.Source, Tenant: ev.Tenant, Type: ev.Type,
		IdempotencyKey: ev.IdempotencyKey, OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt,
		CausationID: ev.CausationID,
		Actor:       n.Actor, Subject: n.Subject, Action: n.Action,
		Data: data,
	}
}

// IdempotencyKey returns "{source}:{tenant}:{id}", or, when the provider
// gives no id, BodyKey's "{source}:{tenant}:sha256:{hex of body}". The two
// key spaces cannot meet: an id that starts with "sha256:" (or with "=",
// the escape itself) is written "={id}", so that a sender cannot take the
// key of an id-less body by naming its hash.
func IdempotencyKey(source, tenant, id string, body []byte) string {
	if id == "" {
		return BodyKey(source, tenant, body)
	}
	if strings.HasPrefix(id, "sha256:") || strings.HasPrefix(id, "=") {
		id = "=" + id
	}
	return source + ":" + tenant + ":" + id
}

// BodyKey returns "{source}:{tenant}:sha256:{hex of body}": the key of an
// event without an id, and the second key (relay.Incoming.BodyKey) of one
// whose id comes from an unsigned header.
func BodyKey(source, tenant string, body []byte) string {
	sum := sha256.Sum256(body)
	return source + ":" + tenant + ":sha256:" + hex.EncodeToString(sum[:])
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
