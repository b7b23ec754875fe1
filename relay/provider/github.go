package provider

import (
	"encoding/json"
	"errors"
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

// githubSubjects are the payload members a GitHub event can be about, in
// order of preference: the first one present is the subject, of that
// type. Most events carry several (an issue comment has the comment, the
// issue and the repository); the thread is what receivers group by.
var githubSubjects = []string{
	"pull_request", "issue", "discussion", "release", "check_run", "check_suite",
	"workflow_run", "workflow_job", "deployment", "milestone", "package",
	"registry_package", "member", "team", "repository", "organization", "installation", "hook",
}

// githubObject is the part of a payload member that normalization reads.
type githubObject struct {
	ID       json.RawMessage `json:"id"`
	Number   json.RawMessage `json:"number"`
	FullName string          `json:"full_name"`
	Login    string          `json:"login"`
}

// Parse returns the event of a verified GitHub request. ID is the
// X-GitHub-Delivery header; Type is the X-GitHub-Event header, followed by
// "." and the body's "action" when that is a string ("issues.opened"). A
// "ping" event is marked Discard. The actor is the sender's login (and the
// pusher's email on a push; its name when there is no sender); the subject
// the first of githubSubjects the payload carries: "owner/repo#number" for
// pull requests, issues and discussions, full_name for a repository, login
// for an organization or a member, else its id. A body that is not a JSON
// object is relay.ErrInvalidJSON; a missing X-GitHub-Event header is
// relay.ErrInvalidEvent.
func (g *GitHub) Parse(r *Request) (*Parsed, error) {
	event := header(r.Header, githubEventHeader)
	if event == "" {
		return nil, fmt.Errorf("%w: missing X-GitHub-Event header", relay.ErrInvalidEvent)
	}
	var body map[string]json.RawMessage
	if err := decodeObject(r.Body, &body); err != nil {
		return nil, err
	}
	typ := event
	if action, ok := jsonString(body["action"]); ok && action != "" {
		typ = event + "." + action
	}
	it := Item{
		ID:      header(r.Header, githubDeliveryHeader),
		Type:    typ,
		Body:    r.Body,
		Discard: event == "ping",
	}
	var sender, repo githubObject
	loose(body["sender"], &sender)
	loose(body["repository"], &repo)
	var pusher struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	loose(body["pusher"], &pusher)
	it.Actor = relay.Actor{ID: first(sender.Login, idText(sender.ID), pusher.Name), Email: pusher.Email}
	for _, name := range githubSubjects {
		raw, ok := body[name]
		if !ok || !isObject(raw) {
			continue
		}
		var o githubObject
		loose(raw, &o)
		id := idText(o.ID)
		switch num := idText(o.Number); {
		case num != "":
			id = repo.FullName + "#" + num
		case o.FullName != "":
			id = o.FullName
		case o.Login != "":
			id = o.Login
		}
		it.Subject = relay.Subject{ID: id, Type: name}
		break
	}
	return &Parsed{Items: []Item{it}, BodyKeys: true}, nil
}

// Sign sets the headers GitHub sends: the event (the part of typ before
// any ".action"), a delivery id and the signature.
func (g *GitHub) Sign(r *Request, key []byte, typ string) error {
	if event := firstSegment(typ, "."); event != "" {
		r.Header[githubEventHeader] = []string{event}
	}
	if header(r.Header, githubEventHeader) == "" {
		return errors.New("github: the event is required (X-GitHub-Event, e.g. push)")
	}
	setDefault(r.Header, githubDeliveryHeader, newUUID)
	r.Header[githubSignatureHeader] = []string{"sha256=" + hexString(mac(key, r.Body))}
	return nil
}
