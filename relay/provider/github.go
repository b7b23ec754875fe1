package provider

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wprelay/wprelay/relay"
)

// GitHub's headers, in canonical form.
const (
	githubSignatureHeader = "X-Hub-Signature-256"
	githubDeliveryHeader  = "X-Github-Delivery"
	githubEventHeader     = "X-Github-Event"
)

// GitHub verifies GitHub webhooks: an X-Hub-Signature-256 header of the form
// "sha256=<hex HMAC-SHA256(body)>", keyed with the secret's bytes. GitHub
// sends no timestamp, so there is no tolerance; replays are caught by the
// delivery id.
type GitHub struct{}

var _ Verifier = (*GitHub)(nil)

// NewGitHub returns a GitHub verifier. It uses no options.
func NewGitHub(o Options) (*GitHub, error) { return &GitHub{}, nil }

// Key returns the secret's bytes.
func (g *GitHub) Key(secret string) ([]byte, error) { return literalKey(secret) }

// Verify checks the X-Hub-Signature-256 header of r against keys. A missing
// or garbled header, or no match, is relay.ErrBadSignature.
func (g *GitHub) Verify(r *Request, keys [][]byte) error {
	h := header(r.Header, githubSignatureHeader)
	if h == "" {
		return fmt.Errorf("%w: missing X-Hub-Signature-256 header", relay.ErrBadSignature)
	}
	hexSig, ok := strings.CutPrefix(h, "sha256=")
	var got [macSize]byte
	if !ok || !decodeHexMAC(&got, hexSig) {
		return fmt.Errorf("%w: garbled X-Hub-Signature-256 header", relay.ErrBadSignature)
	}
	for _, key := range keys {
		if equalMAC(mac(key, r.Body), &got) {
			return nil
		}
	}
	return fmt.Errorf("%w: signature does not match", relay.ErrBadSignature)
}

// Parse returns the event of a verified GitHub request. ID is the
// X-GitHub-Delivery header; Type is the X-GitHub-Event header, followed by
// "." and the body's "action" when that is a string ("issues.opened"). A
// "ping" event is marked Discard. A body that is not a JSON object is
// relay.ErrInvalidJSON; a missing X-GitHub-Event header is
// relay.ErrInvalidEvent.
func (g *GitHub) Parse(r *Request) (*Parsed, error) {
	event := header(r.Header, githubEventHeader)
	if event == "" {
		return nil, fmt.Errorf("%w: missing X-GitHub-Event header", relay.ErrInvalidEvent)
	}
	var body struct {
		Action json.RawMessage `json:"action"`
	}
	if err := decodeObject(r.Body, &body); err != nil {
		return nil, err
	}
	typ := event
	if action, ok := jsonString(body.Action); ok && action != "" {
		typ = event + "." + action
	}
	it := Item{
		ID:      header(r.Header, githubDeliveryHeader),
		Type:    typ,
		Body:    r.Body,
		Discard: event == "ping",
	}
	return &Parsed{Items: []Item{it}}, nil
}
