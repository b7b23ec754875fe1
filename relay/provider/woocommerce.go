package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// WooCommerce's headers, in canonical form (WooCommerce writes X-WC-…).
const (
	wcSignatureHeader  = "X-Wc-Webhook-Signature"
	wcTopicHeader      = "X-Wc-Webhook-Topic"
	wcResourceHeader   = "X-Wc-Webhook-Resource"
	wcEventHeader      = "X-Wc-Webhook-Event"
	wcWebhookIDHeader  = "X-Wc-Webhook-Id"
	wcDeliveryIDHeader = "X-Wc-Webhook-Delivery-Id"
)

// wcTimeLayout is how WooCommerce's REST API writes *_gmt dates.
const wcTimeLayout = "2006-01-02T15:04:05"

// WooCommerce verifies WooCommerce webhooks: an X-WC-Webhook-Signature
// header holding the base64 HMAC-SHA256 of the raw body
// (WC_Webhook::generate_signature). WooCommerce sends no timestamp, so
// there is no tolerance.
//
// When a webhook is saved, WooCommerce first POSTs an unsigned,
// form-encoded "webhook_id=<n>" ping and marks the delivery URL broken
// unless the answer is exactly 200; Greet answers it without storing
// anything.
type WooCommerce struct{}

var (
	_ Verifier = (*WooCommerce)(nil)
	_ Greeter  = (*WooCommerce)(nil)
)

// NewWooCommerce returns a WooCommerce verifier. It uses no options.
func NewWooCommerce(o Options) (*WooCommerce, error) { return &WooCommerce{}, nil }

// Key returns the key WooCommerce signs with: the secret as WordPress's
// wp_specialchars_decode( $secret, ENT_QUOTES ) leaves it
// (WC_Webhook::generate_signature), so that a secret holding "&amp;" or
// "&#039;" verifies as WooCommerce computes it.
func (w *WooCommerce) Key(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("secret is empty")
	}
	return []byte(wpSpecialcharsDecode(secret)), nil
}

// Greet answers WooCommerce's ping: an unsigned body of exactly
// "webhook_id=<digits>", form-encoded or untyped, gets 200
// {"status":"ok"}. Anything else is not a ping (nil).
func (w *WooCommerce) Greet(r *Request) *Reply {
	if !isWooCommercePing(r) {
		return nil
	}
	return &Reply{Status: http.StatusOK, Body: map[string]string{"status": "ok"}}
}

// isWooCommercePing reports whether r is WooCommerce's webhook ping.
func isWooCommercePing(r *Request) bool {
	if header(r.Header, wcSignatureHeader) != "" {
		return false
	}
	if ct := header(r.Header, contentTypeHeader); ct != "" && !isForm(r.Header) {
		return false
	}
	id, ok := strings.CutPrefix(string(r.Body), "webhook_id=")
	if !ok {
		return false
	}
	_, ok = parseUnix(id)
	return ok
}

// Verify checks the X-WC-Webhook-Signature header of r against keys. A
// missing or garbled header, or no match, is relay.ErrBadSignature.
func (w *WooCommerce) Verify(r *Request, keys [][]byte) error {
	return verifyBase64Body(r, keys, wcSignatureHeader)
}

// wcResource is the part of a WooCommerce resource that Parse reads; every
// field is optional.
type wcResource struct {
	ID              json.RawMessage `json:"id"`
	DateModifiedGMT string          `json:"date_modified_gmt"`
	DateCreatedGMT  string          `json:"date_created_gmt"`
	CustomerID      json.RawMessage `json:"customer_id"`
	Billing         struct {
		Email string `json:"email"`
	} `json:"billing"`
}

// Parse returns the event of a verified WooCommerce request. Type is the
// X-WC-Webhook-Topic header ("order.created"). ID is
// "{X-WC-Webhook-ID}:{topic}:{id}:{date_modified_gmt}" from the headers and
// the resource: WooCommerce's X-WC-Webhook-Delivery-ID is a hash of the
// webhook id and the current second, so it repeats across different events
// and changes across re-sends of one, and is never used. A resource
// without an id (action.* topics) gets "" (the caller keys on the body).
// OccurredAt is date_modified_gmt, else date_created_gmt. The subject is
// the resource (its id; the topic's resource, "order"), the action the
// topic's event ("created"), the actor an order's customer_id and billing
// email. A body that is not a JSON object is relay.ErrInvalidJSON; a
// missing topic is relay.ErrInvalidEvent.
func (w *WooCommerce) Parse(r *Request) (*Parsed, error) {
	topic := header(r.Header, wcTopicHeader)
	if topic == "" {
		return nil, fmt.Errorf("%w: missing X-WC-Webhook-Topic header", relay.ErrInvalidEvent)
	}
	var res wcResource
	if err := decodeLoose(r.Body, &res); err != nil {
		return nil, err
	}
	it := Item{Type: topic, Body: r.Body}
	id := idText(res.ID)
	if id != "" {
		it.ID = header(r.Header, wcWebhookIDHeader) + ":" + topic + ":" + id + ":" + res.DateModifiedGMT
	}
	for _, at := range []string{res.DateModifiedGMT, res.DateCreatedGMT} {
		if t, err := time.ParseInLocation(wcTimeLayout, at, time.UTC); err == nil {
			it.OccurredAt = t
			break
		}
	}
	resource := first(header(r.Header, wcResourceHeader), firstSegment(topic, "."))
	it.Subject = relay.Subject{ID: id, Type: resource}
	it.Action.Type = first(header(r.Header, wcEventHeader), lastSegment(topic, "."))
	if resource == "order" {
		if cid := idText(res.CustomerID); cid != "0" {
			it.Actor.ID = cid
		}
		it.Actor.Email = res.Billing.Email
	}
	return &Parsed{Items: []Item{it}, BodyKeys: true}, nil
}

// Sign sets the headers WooCommerce sends with a delivery: the topic typ
// (and its resource and event), the webhook id (1 unless set), a delivery
// id and the signature.
func (w *WooCommerce) Sign(r *Request, key []byte, typ string) error {
	if typ == "" {
		typ = header(r.Header, wcTopicHeader)
	}
	if typ == "" {
		return errors.New("woocommerce: the topic is required (X-WC-Webhook-Topic, e.g. order.created)")
	}
	r.Header[wcTopicHeader] = []string{typ}
	r.Header[wcResourceHeader] = []string{firstSegment(typ, ".")}
	r.Header[wcEventHeader] = []string{lastSegment(typ, ".")}
	setDefault(r.Header, wcWebhookIDHeader, func() string { return "1" })
	setDefault(r.Header, wcDeliveryIDHeader, func() string { return randomHex(16) })
	r.Header[wcSignatureHeader] = []string{b64(mac(key, r.Body))}
	return nil
}

// wpSpecialcharsDecode is WordPress's wp_specialchars_decode( $s,
// ENT_QUOTES ): it decodes &lt; &gt; &amp; &quot; and the numeric forms of
// < > & " ' (decimal with any zero padding, or hex &#x22; &#x26; &#x27;
// with an x of either case), in one left-to-right pass, and nothing else.
func wpSpecialcharsDecode(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == '&' {
			if c, n := wpEntity(s[i:]); n > 0 {
				b.WriteByte(c)
				i += n
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// wpEntity decodes the entity at the start of s (which starts with '&')
// when wp_specialchars_decode would, returning the character and the
// entity's length; n is 0 otherwise.
func wpEntity(s string) (c byte, n int) {
	for name, ch := range wpNamedEntities {
		if strings.HasPrefix(s, name) {
			return ch, len(name)
		}
	}
	if !strings.HasPrefix(s, "&#") {
		return 0, 0
	}
	i := 2
	hex := i < len(s) && (s[i] == 'x' || s[i] == 'X')
	if hex {
		i++
	}
	for i < len(s) && s[i] == '0' {
		i++
	}
	end := strings.IndexByte(s[i:], ';')
	if end < 0 {
		return 0, 0
	}
	digits := s[i : i+end]
	table := wpDecimalEntities
	if hex {
		table = wpHexEntities
	}
	if ch, ok := table[digits]; ok {
		return ch, i + end + 1
	}
	return 0, 0
}

// The entities wp_specialchars_decode( $s, ENT_QUOTES ) decodes: named
// (case-sensitive), and numeric without their zero padding.
var (
	wpNamedEntities   = map[string]byte{"&lt;": '<', "&gt;": '>', "&amp;": '&', "&quot;": '"'}
	wpDecimalEntities = map[string]byte{"34": '"', "38": '&', "39": '\'', "60": '<', "62": '>'}
	wpHexEntities     = map[string]byte{"22": '"', "26": '&', "27": '\''}
)
