// Package provider verifies and parses the webhooks of each source kind.
//
// Every kind is one file with a constructor registered in the kinds table
// below. Verifiers are pure: they check signatures over the raw bytes with
// constant-time comparison before anything is parsed, take the time from the
// Request, and touch no store. Errors wrap the sentinels of package relay
// (relay.ErrBadSignature, relay.ErrStaleTimestamp, relay.ErrInvalidToken,
// relay.ErrInvalidJSON, relay.ErrInvalidEvent) so that the ingress maps them
// to HTTP answers; their messages are safe to show to the sender and never
// contain a secret or a signature.
package provider

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/wprelay/wprelay/relay"
)

// Request is what a verifier sees of an incoming webhook.
type Request struct {
	Method string
	// URL is the URL the provider called, as the provider saw it: the
	// source's public_url when set (plus the query string), else built from
	// the request. HubSpot signs it.
	URL    string
	Header http.Header
	Body   []byte // raw bytes, exactly as received
	Now    time.Time

	// verified is what a successful Verify learnt that Parse needs again
	// (the WordPress kind's token claims), so that it is not decoded twice.
	verified any
}

// Item is one event found in a verified request.
type Item struct {
	ID         string          // the provider's event id; "" when it gives none
	Type       string          // event type, e.g. "invoice.created"
	OccurredAt time.Time       // zero when the provider does not say
	Body       json.RawMessage // this event's JSON (an element of a batch, or the whole body); always valid JSON, which relay.Envelope.Encode relies on
	// Data is the provider's object, the envelope's "data" (see DataOf):
	// a part of Body, or nil when it is Body itself. Valid JSON when set.
	Data    json.RawMessage
	Discard bool // stored with status discarded and never routed (GitHub ping)
	// Normal is the kind's reading of the event for the envelope: actor,
	// subject and action, as far as the provider says. Empty fields are
	// completed by relay.NewEnvelope's generic rules.
	relay.Normal
}

// Reply is an answer given synchronously instead of queueing anything
// (Slack url_verification, the WooCommerce ping).
type Reply struct {
	Status int
	Body   any // marshalled as JSON; nil = an empty body
}

// Parsed is what a verified request holds.
type Parsed struct {
	Items []Item
	Reply *Reply // when set, answer with it and store nothing
	// Nonce and NonceExpires are a single-use token id (a JWT jti) that the
	// store must not accept twice before it expires.
	Nonce        string
	NonceExpires time.Time
	// StrictKeys is set by kinds whose sender picks the idempotency key
	// (wordpress): a key that comes back with a different body is then a
	// conflict (409). Providers' redeliveries may legitimately differ
	// (HubSpot's attemptNumber, Stripe's pending_webhooks), so for them a
	// known key is always a duplicate.
	StrictKeys bool
	// BodyKeys is set by kinds whose event id comes from a header the
	// signature does not cover (github, shopify, woocommerce, hmac with
	// id_header): the body's hash is then a dedupe key too, so that a
	// captured request re-sent under a new id is a duplicate.
	BodyKeys bool
	// Ack, when set, replaces the 202 answer once the events are stored:
	// Slack wants an empty 200 for interactivity and slash commands (their
	// answer body is shown to the user).
	Ack *Reply
}

// Verifier checks and parses requests for one source.
type Verifier interface {
	// Key turns a configured secret into HMAC key bytes, or reports why
	// the secret is malformed (without printing it).
	Key(secret string) ([]byte, error)
	// Verify checks r's signature against keys (any may match: rotation).
	Verify(r *Request, keys [][]byte) error
	// Parse extracts the events of a verified request.
	Parse(r *Request) (*Parsed, error)
}

// Greeter is implemented by kinds whose provider sends an unsigned ping that
// must be answered before verification (WooCommerce's webhook_id ping).
// Greet returns nil when r is not such a ping.
type Greeter interface {
	Greet(r *Request) *Reply
}

// ContentTyper is implemented by kinds whose provider sends other media
// types than application/json (Slack's form-encoded interactivity and
// slash commands). See ContentTypes.
type ContentTyper interface {
	ContentTypes() []string
}

// ContentTypes returns the media types a source of v accepts when its
// configuration names none: the kind's own list, else application/json.
func ContentTypes(v Verifier) []string {
	if c, ok := v.(ContentTyper); ok {
		return c.ContentTypes()
	}
	return []string{"application/json"}
}

// Options configure a source's verifier. Zero values take the defaults noted.
type Options struct {
	Kind      string
	Tolerance time.Duration // timestamp tolerance; default 5m
	// PublicURL is the URL the provider calls (hubspot).
	PublicURL string
	// HMAC configures the generic hmac kind.
	HMAC HMACOptions
	// Issuer, JWTSecret, PublicKey and Algorithms configure the wordpress
	// kind's bearer token. PublicKey is PEM (RSA or Ed25519).
	Issuer     string
	JWTSecret  string
	PublicKey  string
	Algorithms []string // default: HS256 when JWTSecret is set, RS256/EdDSA (by key type) when PublicKey is
}

// HMACOptions configure the generic hmac kind.
type HMACOptions struct {
	Header          string // signature header, e.g. "X-Signature"
	Prefix          string // stripped from the header value, e.g. "sha256="
	Encoding        string // hex (default) or base64
	Template        string // signed bytes: "{body}" (default), "{timestamp}.{body}", "{timestamp}.{nonce}.{body}"
	TimestampHeader string // required when the template uses {timestamp}
	NonceHeader     string // required when the template uses {nonce}
	IDHeader        string // event id header
	IDPath          string // or a dotted JSON path to the event id
	TypePath        string // dotted JSON path to the event type
}

// kinds maps a kind name to its constructor: adding a kind is one file and
// one row here.
var kinds = map[string]func(Options) (Verifier, error){
	"github":      kind(NewGitHub),
	"hmac":        kind(NewHMAC),
	"hubspot":     kind(NewHubSpot),
	"shopify":     kind(NewShopify),
	"slack":       kind(NewSlack),
	"standard":    kind(NewStandard),
	"stripe":      kind(NewStripe),
	"woocommerce": kind(NewWooCommerce),
	"wordpress":   kind(NewWordPress),
}

// New returns the verifier for o.Kind.
func New(o Options) (Verifier, error) {
	mk, ok := kinds[o.Kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind %q (known: %v)", o.Kind, Kinds())
	}
	if o.Tolerance == 0 {
		o.Tolerance = 5 * time.Minute
	}
	return mk(o)
}

// Kinds lists the known kinds, sorted.
func Kinds() []string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// mac returns HMAC-SHA256(key, parts...).
func mac(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// kind adapts a constructor that returns a concrete verifier to the kinds
// table, so that a failed constructor yields a nil interface rather than a
// typed nil pointer.
func kind[V Verifier](mk func(Options) (V, error)) func(Options) (Verifier, error) {
	return func(o Options) (Verifier, error) {
		v, err := mk(o)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}

// tolerance returns o's timestamp tolerance, defaulting to 5 minutes, or an
// error when it is negative. Constructors call it so that they work when
// called directly as well as through New.
func tolerance(o Options) (time.Duration, error) {
	switch {
	case o.Tolerance < 0:
		return 0, fmt.Errorf("tolerance %s: must not be negative", o.Tolerance)
	case o.Tolerance == 0:
		return 5 * time.Minute, nil
	}
	return o.Tolerance, nil
}

// literalKey is Key for kinds whose HMAC key is the secret's bytes as
// written (Stripe, GitHub, hmac).
func literalKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("secret is empty")
	}
	return []byte(secret), nil
}

// header returns the first value of h under key, which must already be in
// canonical form (as net/http stores it), or "". It avoids the allocation
// that http.Header.Get makes to canonicalize a key that is not.
func header(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// now returns the request's time, or the wall clock when the caller left it
// zero.
func now(r *Request) time.Time {
	if r.Now.IsZero() {
		return time.Now()
	}
	return r.Now
}

// parseUnix parses s, a run of 1 to 18 ASCII digits (no sign, no spaces), as
// a non-negative integer.
func parseUnix(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// checkTime reports relay.ErrStaleTimestamp when ts is more than tol away
// from now, in either direction.
func checkTime(now, ts time.Time, tol time.Duration) error {
	if d := now.Sub(ts); d > tol || d < -tol {
		return fmt.Errorf("%w: %s off by %s", relay.ErrStaleTimestamp, ts.UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	return nil
}

// macSize is the size of an HMAC-SHA256 digest.
const macSize = sha256.Size

// decodeHexMAC decodes s, 64 hex digits in either case, into dst. It makes
// no allocation.
func decodeHexMAC(dst *[macSize]byte, s string) bool {
	if len(s) != 2*macSize {
		return false
	}
	for i := range dst {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeBase64MAC decodes s, the standard base64 of an HMAC-SHA256 digest
// (padded or not), into dst. It makes no allocation.
func decodeBase64MAC(dst *[macSize]byte, s string) bool {
	// 32 bytes are 43 characters unpadded, 44 padded.
	// Strict decoding refuses non-zero padding bits, so that a digest has
	// one accepted spelling (two with and without padding).
	var src [44]byte
	enc := strictStd
	switch len(s) {
	case 43:
		enc = strictRawStd
	case 44:
	default:
		return false
	}
	n := copy(src[:], s)
	var out [33]byte // DecodedLen(44) is 33
	m, err := enc.Decode(out[:], src[:n])
	if err != nil || m != macSize {
		return false
	}
	copy(dst[:], out[:macSize])
	return true
}

var (
	strictStd    = base64.StdEncoding.Strict()
	strictRawStd = base64.RawStdEncoding.Strict()
)

// equalMAC compares an expected digest with a decoded one in constant time.
func equalMAC(want []byte, got *[macSize]byte) bool {
	return hmac.Equal(want, got[:])
}

// decodeObject decodes body, which must be exactly one JSON object, into v.
// A body that is not a JSON object is relay.ErrInvalidJSON; a field of the
// wrong type is relay.ErrInvalidEvent naming the field. Neither message
// quotes the body.
func decodeObject(body []byte, v any) error {
	if !isObject(body) {
		return fmt.Errorf("%w: want a JSON object", relay.ErrInvalidJSON)
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%w: %s: want %s", relay.ErrInvalidEvent, te.Field, te.Type)
		}
		return relay.ErrInvalidJSON
	}
	return nil
}

// isObject reports whether b's first non-space byte opens a JSON object.
// It does not validate the rest.
func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// jsonString returns raw as a string when it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if in := raw[1 : len(raw)-1]; raw[len(raw)-1] == '"' && bytes.IndexByte(in, '\\') < 0 && bytes.IndexByte(in, '"') < 0 && utf8.Valid(in) && !hasControl(in) {
		return string(in), true // nothing to decode
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}
