package provider

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// stripeSignatureHeader is Stripe-Signature in canonical form.
const stripeSignatureHeader = "Stripe-Signature"

// Stripe verifies Stripe webhooks: a Stripe-Signature header of the form
// "t=<unix>,v1=<hex>[,v1=<hex>...]" whose v1 entries are hex HMAC-SHA256 of
// "{t}.{body}". Any v1 entry may match any key; other schemes (v0) are
// ignored. Secrets ("whsec_...") are used as literal key bytes, as Stripe
// does.
type Stripe struct {
	tolerance time.Duration
}

var _ Verifier = (*Stripe)(nil)

// NewStripe returns a Stripe verifier. Only o.Tolerance is used.
func NewStripe(o Options) (*Stripe, error) {
	tol, err := tolerance(o)
	if err != nil {
		return nil, fmt.Errorf("stripe: %w", err)
	}
	return &Stripe{tolerance: tol}, nil
}

// Key returns the secret's bytes: Stripe keys its HMAC with the whole
// "whsec_..." string.
func (s *Stripe) Key(secret string) ([]byte, error) { return literalKey(secret) }

// Verify checks the Stripe-Signature header of r against keys, then its
// timestamp against the tolerance. A missing or garbled header, or no
// matching signature, is relay.ErrBadSignature; a timestamp outside the
// tolerance of r.Now is relay.ErrStaleTimestamp.
func (s *Stripe) Verify(r *Request, keys [][]byte) error {
	h := header(r.Header, stripeSignatureHeader)
	if h == "" {
		return fmt.Errorf("%w: missing Stripe-Signature header", relay.ErrBadSignature)
	}
	t, nv1, err := parseStripeHeader(h)
	if err != nil {
		return err
	}
	sec, ok := parseUnix(t)
	if !ok {
		return fmt.Errorf("%w: malformed Stripe-Signature timestamp", relay.ErrBadSignature)
	}
	if nv1 == 0 {
		return fmt.Errorf("%w: no v1 signature in Stripe-Signature", relay.ErrBadSignature)
	}
	signed := make([]byte, 0, len(t)+1)
	signed = append(append(signed, t...), '.')
	for _, key := range keys {
		want := mac(key, signed, r.Body)
		if stripeMatch(h, want) {
			return checkTime(now(r), time.Unix(sec, 0), s.tolerance)
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", relay.ErrBadSignature)
}

// parseStripeHeader checks the shape of a Stripe-Signature value and returns
// its timestamp text and the number of v1 entries. Entries are
// comma-separated "k=v" pairs; unknown keys are ignored, a pair without "="
// or a second "t" is garbled.
func parseStripeHeader(h string) (t string, nv1 int, err error) {
	seenT := false
	for rest := h; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, ",")
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return "", 0, fmt.Errorf("%w: garbled Stripe-Signature header", relay.ErrBadSignature)
		}
		switch k {
		case "t":
			if seenT {
				return "", 0, fmt.Errorf("%w: garbled Stripe-Signature header", relay.ErrBadSignature)
			}
			t, seenT = v, true
		case "v1":
			nv1++
		}
	}
	if !seenT {
		return "", 0, fmt.Errorf("%w: missing Stripe-Signature timestamp", relay.ErrBadSignature)
	}
	return t, nv1, nil
}

// stripeMatch reports whether any well-formed v1 entry of h equals want.
// Entries that are not 64 hex digits never match.
func stripeMatch(h string, want []byte) bool {
	var got [macSize]byte
	for rest := h; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, ",")
		k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
		if k == "v1" && decodeHexMAC(&got, v) && equalMAC(want, &got) {
			return true
		}
	}
	return false
}

// stripeObject is the part of an event's data.object that normalization
// reads; every field is optional, and one of another JSON type is left
// empty.
type stripeObject struct {
	ID, Object, Customer, CustomerEmail, Email              []byte // raw values
	CustomerDetailsEmail, BillingReason, CancellationReason string
}

// Parse returns the event of a verified Stripe request: ID is the body's
// "id", Type its "type" and OccurredAt its "created" (unix seconds) when
// present. The subject is data.object (its id and its "object" name), the
// action the last segment of the type with an invoice's billing_reason or
// a subscription's cancellation reason, the actor the object's customer
// (the customer itself for customer.* events). A body that is not a JSON
// object is relay.ErrInvalidJSON; an id, type or created of the wrong JSON
// type is relay.ErrInvalidEvent.
//
// The body is validated once and then walked (see members): this runs on
// every Stripe event, and decoding it through encoding/json cost twice as
// much.
func (s *Stripe) Parse(r *Request) (*Parsed, error) {
	if !isObject(r.Body) || !json.Valid(r.Body) {
		return nil, fmt.Errorf("%w: want a JSON object", relay.ErrInvalidJSON)
	}
	var id, typ, created, data []byte
	members(r.Body, func(k, v []byte) {
		switch {
		case keyIs(k, "id"):
			id = v
		case keyIs(k, "type"):
			typ = v
		case keyIs(k, "created"):
			created = v
		case keyIs(k, "data"):
			data = v
		}
	})
	it := Item{Body: r.Body, Data: data}
	if data == nil {
		it.Data = json.RawMessage("null")
	}
	var err error
	if it.ID, err = stringField("id", id); err != nil {
		return nil, err
	}
	if it.Type, err = stringField("type", typ); err != nil {
		return nil, err
	}
	if created != nil && !isNull(created) {
		sec, err := strconv.ParseInt(string(created), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: created: want int64", relay.ErrInvalidEvent)
		}
		it.OccurredAt = time.Unix(sec, 0).UTC()
	}
	var o stripeObject
	members(data, func(k, v []byte) {
		if keyIs(k, "object") {
			o = readStripeObject(v)
		}
	})
	it.Subject = relay.Subject{ID: idText(o.ID), Type: text(o.Object)}
	it.Action = relay.Action{Type: lastSegment(it.Type, "."), Reason: first(o.BillingReason, o.CancellationReason)}
	if it.Subject.Type == "customer" {
		it.Actor = relay.Actor{ID: idText(o.ID), Email: text(o.Email)}
	} else {
		it.Actor = relay.Actor{ID: refID(o.Customer), Email: first(text(o.CustomerEmail), o.CustomerDetailsEmail)}
	}
	return &Parsed{Items: []Item{it}}, nil
}

// readStripeObject picks the fields of stripeObject out of a raw
// data.object.
func readStripeObject(raw []byte) (o stripeObject) {
	members(raw, func(k, v []byte) {
		switch {
		case keyIs(k, "id"):
			o.ID = v
		case keyIs(k, "object"):
			o.Object = v
		case keyIs(k, "customer"):
			o.Customer = v
		case keyIs(k, "customer_email"):
			o.CustomerEmail = v
		case keyIs(k, "email"):
			o.Email = v
		case keyIs(k, "billing_reason"):
			o.BillingReason = text(v)
		case keyIs(k, "customer_details"):
			o.CustomerDetailsEmail = memberText(v, "email")
		case keyIs(k, "cancellation_details"):
			o.CancellationReason = memberText(v, "reason")
		}
	})
	return o
}

// stringField decodes a top-level field that must be a string when present;
// absent or null is "".
func stringField(name string, raw []byte) (string, error) {
	if raw == nil || isNull(raw) {
		return "", nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", fmt.Errorf("%w: %s: want string", relay.ErrInvalidEvent, name)
	}
	return s, nil
}

// text is a raw JSON string's value, or "" for any other value.
func text(raw []byte) string {
	s, _ := jsonString(raw)
	return s
}

// memberText is the string member name of a raw object, or "".
func memberText(obj []byte, name string) (s string) {
	members(obj, func(k, v []byte) {
		if keyIs(k, name) {
			s = text(v)
		}
	})
	return s
}

// Sign sets the Stripe-Signature header Stripe sends: the time and one v1
// signature.
func (s *Stripe) Sign(r *Request, key []byte, typ string) error {
	t := strconv.FormatInt(now(r).Unix(), 10)
	r.Header[stripeSignatureHeader] = []string{"t=" + t + ",v1=" + hexString(mac(key, []byte(t+"."), r.Body))}
	return nil
}
