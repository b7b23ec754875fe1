package provider

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Standard Webhooks headers and their Svix aliases, in canonical form.
const (
	standardIDHeader        = "Webhook-Id"
	standardTimestampHeader = "Webhook-Timestamp"
	standardSignatureHeader = "Webhook-Signature"
	svixIDHeader            = "Svix-Id"
	svixTimestampHeader     = "Svix-Timestamp"
	svixSignatureHeader     = "Svix-Signature"
)

// standardSecretPrefix starts every Standard Webhooks secret.
const standardSecretPrefix = "whsec_"

// Standard verifies Standard Webhooks (https://www.standardwebhooks.com):
// webhook-id, webhook-timestamp and webhook-signature headers (or their
// svix-* aliases), where the signature header is a space-separated list of
// "v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>" entries. Any v1
// entry may match any key; other versions are ignored. Secrets are
// "whsec_<base64>" and the key is the decoded bytes.
type Standard struct {
	tolerance time.Duration
}

var _ Verifier = (*Standard)(nil)

// NewStandard returns a Standard Webhooks verifier. Only o.Tolerance is
// used.
func NewStandard(o Options) (*Standard, error) {
	tol, err := tolerance(o)
	if err != nil {
		return nil, fmt.Errorf("standard: %w", err)
	}
	return &Standard{tolerance: tol}, nil
}

// Key decodes a "whsec_<base64>" secret into its key bytes.
func (s *Standard) Key(secret string) ([]byte, error) { return standardKey(secret) }

// Verify checks r's Standard Webhooks signature against keys, then its
// webhook-timestamp against the tolerance. Missing or garbled headers, or
// no match, are relay.ErrBadSignature; a timestamp outside the tolerance of
// r.Now is relay.ErrStaleTimestamp.
func (s *Standard) Verify(r *Request, keys [][]byte) error {
	return verifyStandard(r, keys, s.tolerance)
}

// standardEvent is the part of a Standard Webhooks payload that Parse reads.
type standardEvent struct {
	Type      string          `json:"type"`
	Timestamp json.RawMessage `json:"timestamp"`
}

// Parse returns the event of a verified Standard Webhooks request. ID is the
// webhook-id header and Type the body's "type". OccurredAt is the body's
// "timestamp" when it is an RFC 3339 string, else the webhook-timestamp
// header. A body that is not a JSON object is relay.ErrInvalidJSON.
func (s *Standard) Parse(r *Request) (*Parsed, error) {
	var ev standardEvent
	if err := decodeObject(r.Body, &ev); err != nil {
		return nil, err
	}
	sh := standardHeadersOf(r.Header)
	it := Item{ID: sh.id, Type: ev.Type, Body: r.Body, Data: standardData(r.Body)}
	if ts, ok := jsonString(ev.Timestamp); ok {
		if t, err := time.Parse(time.RFC3339, ts); err == nil {
			it.OccurredAt = t.UTC()
		}
	}
	if it.OccurredAt.IsZero() {
		if sec, ok := parseUnix(sh.ts); ok {
			it.OccurredAt = time.Unix(sec, 0).UTC()
		}
	}
	return &Parsed{Items: []Item{it}}, nil
}

// standardKey decodes a "whsec_<base64>" secret (padded or not) into its
// key bytes. Its errors never print the secret.
func standardKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, standardSecretPrefix)
	if !ok {
		return nil, errors.New(`secret is not of the form "whsec_<base64>": missing "whsec_" prefix`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return nil, errors.New(`secret is not of the form "whsec_<base64>": bad base64`)
	}
	if len(key) == 0 {
		return nil, errors.New(`secret is not of the form "whsec_<base64>": empty key`)
	}
	return key, nil
}

// standardHeaders are the three Standard Webhooks header values of a request.
type standardHeaders struct {
	id, ts, sig string
}

// standardHeadersOf reads the Standard Webhooks headers of h, each falling
// back to its svix-* alias when absent.
func standardHeadersOf(h http.Header) standardHeaders {
	sh := standardHeaders{
		id:  header(h, standardIDHeader),
		ts:  header(h, standardTimestampHeader),
		sig: header(h, standardSignatureHeader),
	}
	if sh.id == "" {
		sh.id = header(h, svixIDHeader)
	}
	if sh.ts == "" {
		sh.ts = header(h, svixTimestampHeader)
	}
	if sh.sig == "" {
		sh.sig = header(h, svixSignatureHeader)
	}
	return sh
}

// verifyStandard is Verify for Standard Webhooks, shared by the standard and
// wordpress kinds.
func verifyStandard(r *Request, keys [][]byte, tol time.Duration) error {
	sh := standardHeadersOf(r.Header)
	switch {
	case sh.id == "":
		return fmt.Errorf("%w: missing webhook-id header", relay.ErrBadSignature)
	case sh.ts == "":
		return fmt.Errorf("%w: missing webhook-timestamp header", relay.ErrBadSignature)
	case sh.sig == "":
		return fmt.Errorf("%w: missing webhook-signature header", relay.ErrBadSignature)
	}
	sec, ok := parseUnix(sh.ts)
	if !ok {
		return fmt.Errorf("%w: malformed webhook-timestamp header", relay.ErrBadSignature)
	}
	if !hasStandardV1(sh.sig) {
		return fmt.Errorf("%w: no v1 signature in webhook-signature header", relay.ErrBadSignature)
	}
	signed := make([]byte, 0, len(sh.id)+len(sh.ts)+2)
	signed = append(append(append(append(signed, sh.id...), '.'), sh.ts...), '.')
	for _, key := range keys {
		want := mac(key, signed, r.Body)
		if standardMatch(sh.sig, want) {
			return checkTime(now(r), time.Unix(sec, 0), tol)
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", relay.ErrBadSignature)
}

// hasStandardV1 reports whether the signature list sig has a v1 entry.
func hasStandardV1(sig string) bool {
	for rest := sig; rest != ""; {
		var entry string
		entry, rest, _ = strings.Cut(rest, " ")
		if strings.HasPrefix(entry, "v1,") {
			return true
		}
	}
	return false
}

// standardMatch reports whether any well-formed v1 entry of the signature
// list sig equals want.
func standardMatch(sig string, want []byte) bool {
	var got [macSize]byte
	for rest := sig; rest != ""; {
		var entry string
		entry, rest, _ = strings.Cut(rest, " ")
		b64, ok := strings.CutPrefix(entry, "v1,")
		if ok && decodeBase64MAC(&got, b64) && equalMAC(want, &got) {
			return true
		}
	}
	return false
}

// Sign sets the Standard Webhooks headers: webhook-id (a fresh one unless
// set), webhook-timestamp and a v1 webhook-signature.
func (s *Standard) Sign(r *Request, key []byte, typ string) error {
	signStandardHeaders(r, key)
	return nil
}

// signStandardHeaders is Sign for Standard Webhooks, shared by the standard
// and wordpress kinds.
func signStandardHeaders(r *Request, key []byte) {
	setDefault(r.Header, standardIDHeader, func() string { return "msg_" + randomHex(12) })
	id := header(r.Header, standardIDHeader)
	ts := strconv.FormatInt(now(r).Unix(), 10)
	r.Header[standardTimestampHeader] = []string{ts}
	r.Header[standardSignatureHeader] = []string{"v1," + b64(mac(key, []byte(id+"."+ts+"."), r.Body))}
}
