package provider

import (
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wprelay/wprelay/relay"
)

// authorizationHeader is Authorization in canonical form.
const authorizationHeader = "Authorization"

// Limits of the wordpress kind (DESIGN.md, "WordPress → sidecar").
const (
	wpAudience       = "wprelay"
	wpLeeway         = 30 * time.Second  // on exp, iat and nbf
	wpMaxLifetime    = 300 * time.Second // exp - iat
	wpMaxObjectRef   = 191               // characters, the longest indexable utf8mb4 VARCHAR
	wpMaxJTI         = 255               // bytes; the replay cache stores it
	wpMinSecretBytes = 32                // HS256 secrets shorter than the hash are brute-forceable
	wpMinRSABits     = 2048
)

// keyKind is the kind of key a JWT algorithm needs.
type keyKind uint8

const (
	keyHMAC keyKind = iota + 1
	keyRSA
	keyEd25519
)

// wpAlgorithms are the JWT algorithms the wordpress kind may be configured
// to accept, with the key each needs. "none" is never among them.
var wpAlgorithms = map[string]keyKind{
	"HS256": keyHMAC, "HS384": keyHMAC, "HS512": keyHMAC,
	"RS256": keyRSA, "RS384": keyRSA, "RS512": keyRSA,
	"PS256": keyRSA, "PS384": keyRSA, "PS512": keyRSA,
	"EdDSA": keyEd25519,
}

// WordPress verifies the events a WordPress site (the wprelay plugin's
// outbox) sends to the sidecar. Verify checks, in order:
//
//   - an "Authorization: Bearer <JWT>" token, signed with an allowed
//     algorithm: HS256 with Options.JWTSecret, RS256 or EdDSA (by key type)
//     with Options.PublicKey, or Options.Algorithms when set; "none" and
//     any algorithm not allowed are rejected, so an HS256 token cannot be
//     signed with the public key;
//   - its claims: iss equal to Options.Issuer (ignoring a trailing slash),
//     aud containing "wprelay", exp and iat present with exp - iat <= 300 s,
//     exp, iat and nbf checked with 30 s leeway, and a jti;
//   - the Standard Webhooks signature and timestamp, exactly as the
//     standard kind does.
//
// Token failures are relay.ErrInvalidToken, signature failures
// relay.ErrBadSignature or relay.ErrStaleTimestamp. Parse then checks the
// body's schema (relay.ErrInvalidEvent) and returns the token's jti as the
// nonce that the store must not accept twice.
type WordPress struct {
	issuer    string
	secret    []byte            // HS* key; nil when not configured
	rsaKey    *rsa.PublicKey    // nil when not configured
	edKey     ed25519.PublicKey // nil when not configured
	algs      []string
	parser    *jwt.Parser // verifies the signature and alg only; claims are checked by checkClaims
	keyfunc   jwt.Keyfunc
	unsigned  *jwt.Parser // reads the claims of a token Verify accepted
	tolerance time.Duration
}

var _ Verifier = (*WordPress)(nil)

// NewWordPress returns a wordpress verifier. o.Issuer is required, and at
// least one of o.JWTSecret (at least 32 bytes) and o.PublicKey (a PEM RSA
// key of at least 2048 bits, or an Ed25519 key). o.Algorithms, when set,
// narrows or widens the default algorithms within those the configured keys
// can verify.
func NewWordPress(o Options) (*WordPress, error) {
	tol, err := tolerance(o)
	if err != nil {
		return nil, fmt.Errorf("wordpress: %w", err)
	}
	w := &WordPress{issuer: strings.TrimSuffix(o.Issuer, "/"), tolerance: tol}
	if w.issuer == "" {
		return nil, errors.New("wordpress: issuer is required (the site URL the plugin puts in iss)")
	}
	if o.JWTSecret == "" && o.PublicKey == "" {
		return nil, errors.New("wordpress: set jwt_secret or public_key")
	}
	var defaults []string
	if o.JWTSecret != "" {
		if len(o.JWTSecret) < wpMinSecretBytes {
			return nil, fmt.Errorf("wordpress: jwt_secret is %d bytes; need at least %d", len(o.JWTSecret), wpMinSecretBytes)
		}
		w.secret = []byte(o.JWTSecret)
		defaults = append(defaults, "HS256")
	}
	if o.PublicKey != "" {
		key, err := parsePublicKey(o.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("wordpress: public_key: %w", err)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			w.rsaKey = k
			defaults = append(defaults, "RS256")
		case ed25519.PublicKey:
			w.edKey = k
			defaults = append(defaults, "EdDSA")
		}
	}
	w.algs = defaults
	if len(o.Algorithms) > 0 {
		w.algs = nil
		for _, alg := range o.Algorithms {
			if err := w.checkAlgorithm(alg); err != nil {
				return nil, fmt.Errorf("wordpress: algorithms: %w", err)
			}
			if !slices.Contains(w.algs, alg) {
				w.algs = append(w.algs, alg)
			}
		}
	}
	// Strict decoding refuses non-canonical base64url (ignored trailing
	// bits), so that one signed token has exactly one accepted spelling.
	w.parser = jwt.NewParser(jwt.WithValidMethods(w.algs), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	w.unsigned = jwt.NewParser(jwt.WithoutClaimsValidation())
	w.keyfunc = w.key
	return w, nil
}

// Key decodes the site signing secret, a Standard Webhooks "whsec_<base64>"
// secret, into its key bytes.
func (w *WordPress) Key(secret string) ([]byte, error) { return standardKey(secret) }

// Verify checks r's bearer token and its claims, then its Standard Webhooks
// signature against keys and its timestamp against the tolerance.
func (w *WordPress) Verify(r *Request, keys [][]byte) error {
	c, err := w.verifyToken(r)
	if err != nil {
		return err
	}
	if err := verifyStandard(r, keys, w.tolerance); err != nil {
		return err
	}
	r.verified = c
	return nil
}

// wpEvent is the body the plugin sends. Fields are raw so that Parse can
// tell a missing field from one of the wrong type.
type wpEvent struct {
	EventType      json.RawMessage `json:"event_type"`
	ObjectRef      json.RawMessage `json:"object_ref"`
	IdempotencyKey json.RawMessage `json:"idempotency_key"`
	OccurredAt     json.RawMessage `json:"occurred_at"`
	Data           json.RawMessage `json:"data"`
}

// Parse checks the body of a verified request against the event schema and
// returns its event: ID is the webhook-id header (equal to the body's
// idempotency_key), Type the body's event_type and OccurredAt its
// occurred_at. Nonce is the token's jti and NonceExpires the token's exp
// plus the 30 s leeway, the last moment the token is accepted. A body that
// is not a JSON object is relay.ErrInvalidJSON; a schema violation is
// relay.ErrInvalidEvent naming the field.
func (w *WordPress) Parse(r *Request) (*Parsed, error) {
	raw, err := bearer(r)
	if err != nil {
		return nil, err
	}
	c, ok := r.verified.(*jwt.RegisteredClaims) // set by Verify
	if !ok {
		c = new(jwt.RegisteredClaims)
		if _, _, err := w.unsigned.ParseUnverified(raw, c); err != nil {
			return nil, fmt.Errorf("%w: unreadable claims", relay.ErrInvalidToken)
		}
	}
	if c.ExpiresAt == nil || c.ID == "" {
		return nil, fmt.Errorf("%w: unreadable claims", relay.ErrInvalidToken)
	}
	var ev wpEvent
	if err := decodeObject(r.Body, &ev); err != nil {
		return nil, err
	}
	id := standardHeadersOf(r.Header).id
	it := Item{ID: id, Body: r.Body}
	if it.Type, err = wpString("event_type", ev.EventType); err != nil {
		return nil, err
	}
	if !validEventType(it.Type) {
		return nil, fmt.Errorf(`%w: event_type: want "word.word" or "word.word.word" of [a-z0-9_]`, relay.ErrInvalidEvent)
	}
	ref, err := wpString("object_ref", ev.ObjectRef)
	if err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(ref) > wpMaxObjectRef {
		return nil, fmt.Errorf("%w: object_ref: longer than %d characters", relay.ErrInvalidEvent, wpMaxObjectRef)
	}
	at, err := wpString("occurred_at", ev.OccurredAt)
	if err != nil {
		return nil, err
	}
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return nil, fmt.Errorf("%w: occurred_at: want an RFC 3339 time", relay.ErrInvalidEvent)
	}
	it.OccurredAt = t.UTC()
	if len(ev.Data) == 0 {
		return nil, fmt.Errorf("%w: data is required", relay.ErrInvalidEvent)
	}
	if !isObject(ev.Data) {
		return nil, fmt.Errorf("%w: data: want a JSON object", relay.ErrInvalidEvent)
	}
	key, err := wpString("idempotency_key", ev.IdempotencyKey)
	if err != nil {
		return nil, err
	}
	if key == "" || key != id {
		return nil, fmt.Errorf("%w: idempotency_key: must equal the webhook-id header", relay.ErrInvalidEvent)
	}
	it.Normal = wpNormal(ref, ev.Data)
	it.Data = ev.Data
	return &Parsed{
		Items:        []Item{it},
		Nonce:        c.ID,
		NonceExpires: c.ExpiresAt.Add(wpLeeway).UTC(),
		StrictKeys:   true,
	}, nil
}

// wpString returns the string value of a required schema field.
func wpString(field string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", fmt.Errorf("%w: %s is required", relay.ErrInvalidEvent, field)
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", fmt.Errorf("%w: %s: want a string", relay.ErrInvalidEvent, field)
	}
	return s, nil
}

// validEventType reports whether s matches
// ^[a-z0-9_]+\.[a-z0-9_]+(\.[a-z0-9_]+)?$ (without a regexp).
func validEventType(s string) bool {
	words, n := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_':
			n++
		case c == '.':
			if n == 0 {
				return false
			}
			words, n = words+1, 0
		default:
			return false
		}
	}
	if n == 0 {
		return false
	}
	words++
	return words == 2 || words == 3
}

// wpActorData is the part of an event's data that names who acted; every
// field is optional.
type wpActorData struct {
	Author     json.RawMessage `json:"author"` // a user id, or {id, email}; a comment's author name is ignored
	User       json.RawMessage `json:"user"`
	UserID     json.RawMessage `json:"user_id"`
	CustomerID json.RawMessage `json:"customer_id"`
	Email      string          `json:"email"`
}

// wpNormal reads a WordPress event: the subject is object_ref ("post:123"
// → a post, id 123; a ref without a colon is an id), the actor the first
// of data.author, data.user, data.user_id and data.customer_id that names
// a user (an id other than 0, or an object with an id or an email), with
// the order's email for an order. The action comes from the event type.
func wpNormal(ref string, data json.RawMessage) relay.Normal {
	var n relay.Normal
	if typ, id, ok := strings.Cut(ref, ":"); ok {
		n.Subject = relay.Subject{ID: id, Type: typ}
	} else {
		n.Subject.ID = ref
	}
	var d wpActorData
	loose(data, &d)
	for _, raw := range []json.RawMessage{d.Author, d.User, d.UserID, d.CustomerID} {
		if a := wpActor(raw); a != (relay.Actor{}) {
			n.Actor = a
			break
		}
	}
	if n.Subject.Type == "order" && n.Actor.Email == "" {
		n.Actor.Email = d.Email
	}
	return n
}

// wpActor reads a user reference: a numeric id (as a number or a string)
// other than 0, or an object with an id and an email.
func wpActor(raw json.RawMessage) relay.Actor {
	if isObject(raw) {
		var u struct {
			ID    json.RawMessage `json:"id"`
			Email string          `json:"email"`
		}
		loose(raw, &u)
		return relay.Actor{ID: idText(u.ID), Email: u.Email}
	}
	id := idText(raw)
	if _, ok := parseUnix(id); !ok || strings.Trim(id, "0") == "" {
		return relay.Actor{} // a name, not an id; or the 0 of no user
	}
	return relay.Actor{ID: id}
}

// Sign sets the headers the plugin sends: a bearer token (HS256 with the
// jwt_secret, iss the issuer, aud "wprelay", a lifetime of 300 s and a
// fresh jti) and the Standard Webhooks headers, whose webhook-id is the
// body's idempotency_key when the caller set none.
func (w *WordPress) Sign(r *Request, key []byte, typ string) error {
	if w.secret == nil {
		return errors.New("wordpress: signing needs the site's jwt_secret (HS256)")
	}
	at := now(r)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Issuer:    w.issuer,
		Audience:  jwt.ClaimStrings{wpAudience},
		IssuedAt:  jwt.NewNumericDate(at),
		ExpiresAt: jwt.NewNumericDate(at.Add(wpMaxLifetime)),
		ID:        newUUID(),
	}).SignedString(w.secret)
	if err != nil {
		return fmt.Errorf("wordpress: sign token: %w", err)
	}
	r.Header[authorizationHeader] = []string{"Bearer " + tok}
	if header(r.Header, standardIDHeader) == "" {
		var ev wpEvent
		loose(r.Body, &ev)
		if ik, ok := jsonString(ev.IdempotencyKey); ok && ik != "" {
			r.Header[standardIDHeader] = []string{ik}
		}
	}
	signStandardHeaders(r, key)
	return nil
}
