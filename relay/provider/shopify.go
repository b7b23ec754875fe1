package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Shopify's headers, in canonical form.
const (
	shopifyHMACHeader      = "X-Shopify-Hmac-Sha256"
	shopifyTopicHeader     = "X-Shopify-Topic"
	shopifyWebhookIDHeader = "X-Shopify-Webhook-Id"
	shopifyEventIDHeader   = "X-Shopify-Event-Id"
	shopifyTriggeredHeader = "X-Shopify-Triggered-At"
)

// Shopify verifies Shopify webhooks: an X-Shopify-Hmac-Sha256 header
// holding the base64 HMAC-SHA256 of the raw body, keyed with the app's
// client secret (or the shop's webhook signing secret) as written. Shopify
// sends no signed timestamp, so there is no tolerance; retries are caught
// by the webhook id.
type Shopify struct{}

var _ Verifier = (*Shopify)(nil)

// NewShopify returns a Shopify verifier. It uses no options.
func NewShopify(o Options) (*Shopify, error) { return &Shopify{}, nil }

// Key returns the secret's bytes.
func (s *Shopify) Key(secret string) ([]byte, error) { return literalKey(secret) }

// Verify checks the X-Shopify-Hmac-Sha256 header of r against keys. A
// missing or garbled header, or no match, is relay.ErrBadSignature.
func (s *Shopify) Verify(r *Request, keys [][]byte) error {
	return verifyBase64Body(r, keys, shopifyHMACHeader)
}

// verifyBase64Body checks that the header name of r holds the base64
// HMAC-SHA256 of r.Body under one of keys (Shopify, WooCommerce).
func verifyBase64Body(r *Request, keys [][]byte, name string) error {
	h := header(r.Header, name)
	if h == "" {
		return fmt.Errorf("%w: missing %s header", relay.ErrBadSignature, name)
	}
	var got [macSize]byte
	if !decodeBase64MAC(&got, h) {
		return fmt.Errorf("%w: garbled %s header", relay.ErrBadSignature, name)
	}
	for _, key := range keys {
		if equalMAC(mac(key, r.Body), &got) {
			return nil
		}
	}
	return fmt.Errorf("%w: signature does not match", relay.ErrBadSignature)
}

// shopifyResource is the part of a Shopify resource that Parse reads; every
// field is optional.
type shopifyResource struct {
	ID           json.RawMessage `json:"id"`
	Email        string          `json:"email"`
	ContactEmail string          `json:"contact_email"`
	CancelReason string          `json:"cancel_reason"`
	Customer     json.RawMessage `json:"customer"`
}

// Parse returns the event of a verified Shopify request. ID is the
// X-Shopify-Webhook-Id header (the same on every retry of one webhook), else
// X-Shopify-Event-Id; Type is the X-Shopify-Topic header ("orders/create");
// OccurredAt is X-Shopify-Triggered-At when present. The subject is the
// resource (the body's id; the topic's resource, singular: "order"), the
// action the topic's verb ("create"; the reason a cancelled order's
// cancel_reason), the actor the order's customer and email. A body that is
// not a JSON object is relay.ErrInvalidJSON; a missing topic is
// relay.ErrInvalidEvent.
func (s *Shopify) Parse(r *Request) (*Parsed, error) {
	topic := header(r.Header, shopifyTopicHeader)
	if topic == "" {
		return nil, fmt.Errorf("%w: missing X-Shopify-Topic header", relay.ErrInvalidEvent)
	}
	var b shopifyResource
	if err := decodeLoose(r.Body, &b); err != nil {
		return nil, err
	}
	it := Item{
		ID:   first(header(r.Header, shopifyWebhookIDHeader), header(r.Header, shopifyEventIDHeader)),
		Type: topic,
		Body: r.Body,
	}
	if at := header(r.Header, shopifyTriggeredHeader); at != "" {
		if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
			it.OccurredAt = t.UTC()
		}
	}
	it.Subject = relay.Subject{ID: idText(b.ID), Type: singular(firstSegment(topic, "/"))}
	it.Action = relay.Action{Type: lastSegment(topic, "/"), Reason: b.CancelReason}
	if len(b.Customer) > 0 && string(b.Customer) != "null" {
		var c struct {
			Email string `json:"email"`
		}
		loose(b.Customer, &c)
		it.Actor = relay.Actor{ID: refID(b.Customer), Email: first(b.Email, b.ContactEmail, c.Email)}
	}
	return &Parsed{Items: []Item{it}, BodyKeys: true}, nil
}

// Sign sets the headers Shopify sends: the HMAC, the topic typ, a webhook
// and an event id, and the time the webhook was triggered.
func (s *Shopify) Sign(r *Request, key []byte, typ string) error {
	if typ == "" {
		typ = header(r.Header, shopifyTopicHeader)
	}
	if typ == "" {
		return errors.New("shopify: the topic is required (X-Shopify-Topic, e.g. orders/create)")
	}
	r.Header[shopifyTopicHeader] = []string{typ}
	setDefault(r.Header, shopifyWebhookIDHeader, newUUID)
	setDefault(r.Header, shopifyEventIDHeader, newUUID)
	setDefault(r.Header, shopifyTriggeredHeader, func() string { return now(r).UTC().Format(time.RFC3339Nano) })
	r.Header[shopifyHMACHeader] = []string{b64(mac(key, r.Body))}
	return nil
}
