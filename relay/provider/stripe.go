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

// stripeEvent is the part of a Stripe event that Parse reads.
type stripeEvent struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Created *int64          `json:"created"`
	Data    json.RawMessage `json:"data"`
}

// stripeObject is the part of an event's data.object that normalization
// reads; every field is optional.
type stripeObject struct {
	ID              json.RawMessage `json:"id"`
	Object          string          `json:"object"`
	Customer        json.RawMessage `json:"customer"` // an id, or the expanded customer
	CustomerEmail   string          `json:"customer_email"`
	Email           string          `json:"email"` // on customer objects
	CustomerDetails struct {
		Email string `json:"email"`
	} `json:"customer_details"` // checkout sessions
	BillingReason       string `json:"billing_reason"`
	CancellationDetails struct {
		Reason string `json:"reason"`
	} `json:"cancellation_details"`
}

// Parse returns the event of a verified Stripe request: ID is the body's
// "id", Type its "type" and OccurredAt its "created" (unix seconds) when
// present. The subject is data.object (its id and its "object" name), the
// action the last segment of the type with an invoice's billing_reason or
// a subscription's cancellation reason, the actor the object's customer
// (the customer itself for customer.* events). A body that is not a JSON
// object is relay.ErrInvalidJSON.
func (s *Stripe) Parse(r *Request) (*Parsed, error) {
	var ev stripeEvent
	if err := decodeObject(r.Body, &ev); err != nil {
		return nil, err
	}
	it := Item{ID: ev.ID, Type: ev.Type, Body: r.Body}
	if ev.Created != nil {
		it.OccurredAt = time.Unix(*ev.Created, 0).UTC()
	}
	// One pass over data for the fields normalization reads (the body was
	// scanned once already, strictly, for id, type and created).
	var data struct {
		Object stripeObject `json:"object"`
	}
	loose(ev.Data, &data)
	o := data.Object
	it.Subject = relay.Subject{ID: idText(o.ID), Type: o.Object}
	it.Action = relay.Action{Type: lastSegment(ev.Type, "."), Reason: first(o.BillingReason, o.CancellationDetails.Reason)}
	if o.Object == "customer" {
		it.Actor = relay.Actor{ID: idText(o.ID), Email: o.Email}
	} else {
		it.Actor = relay.Actor{ID: refID(o.Customer), Email: first(o.CustomerEmail, o.CustomerDetails.Email)}
	}
	return &Parsed{Items: []Item{it}}, nil
}

// Sign sets the Stripe-Signature header Stripe sends: the time and one v1
// signature.
func (s *Stripe) Sign(r *Request, key []byte, typ string) error {
	t := strconv.FormatInt(now(r).Unix(), 10)
	r.Header[stripeSignatureHeader] = []string{"t=" + t + ",v1=" + hexString(mac(key, []byte(t+"."), r.Body))}
	return nil
}
