package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// HubSpot's v3 signature headers, in canonical form (HubSpot writes
// X-HubSpot-Signature-v3).
const (
	hubspotSignatureHeader = "X-Hubspot-Signature-V3"
	hubspotTimestampHeader = "X-Hubspot-Request-Timestamp"
)

// HubSpot verifies HubSpot webhooks with the v3 signature: an
// X-HubSpot-Signature-v3 header holding the base64 HMAC-SHA256, keyed with
// the app's client secret, of method + URI + body + timestamp, where the
// timestamp is the X-HubSpot-Request-Timestamp header (unix milliseconds,
// within the tolerance) and the URI is the URL HubSpot called, with the
// characters HubSpot decodes before signing decoded (see hubspotURI).
// The URL is the source's public_url plus the query string: HubSpot signs
// what it called, which the sidecar behind a proxy cannot see.
//
// The body is an array of events, each its own Item.
type HubSpot struct {
	publicURL string
	tolerance time.Duration
}

var _ Verifier = (*HubSpot)(nil)

// NewHubSpot returns a HubSpot verifier. o.PublicURL is required: the full
// http(s) URL (scheme, host, path) that HubSpot calls.
func NewHubSpot(o Options) (*HubSpot, error) {
	tol, err := tolerance(o)
	if err != nil {
		return nil, fmt.Errorf("hubspot: %w", err)
	}
	if o.PublicURL == "" {
		return nil, errors.New("hubspot: public_url is required: the full URL HubSpot calls (https://host/hooks/{source}), which HubSpot signs")
	}
	u, err := url.Parse(o.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hubspot: public_url %q: want a full http(s) URL such as https://hooks.example.com/hooks/hubspot", o.PublicURL)
	}
	return &HubSpot{publicURL: o.PublicURL, tolerance: tol}, nil
}

// Key returns the client secret's bytes.
func (h *HubSpot) Key(secret string) ([]byte, error) { return literalKey(secret) }

// Verify checks r's X-HubSpot-Signature-v3 against keys, then its
// X-HubSpot-Request-Timestamp against the tolerance. The URI signed is
// r.URL (the ingress sets it to public_url and the query string), or
// public_url when r.URL is empty. Missing or garbled headers, or no match,
// are relay.ErrBadSignature; a timestamp outside the tolerance of r.Now is
// relay.ErrStaleTimestamp.
func (h *HubSpot) Verify(r *Request, keys [][]byte) error {
	sig := header(r.Header, hubspotSignatureHeader)
	if sig == "" {
		return fmt.Errorf("%w: missing X-HubSpot-Signature-v3 header", relay.ErrBadSignature)
	}
	ts := header(r.Header, hubspotTimestampHeader)
	ms, ok := parseUnix(ts)
	if !ok {
		return fmt.Errorf("%w: missing or malformed X-HubSpot-Request-Timestamp header", relay.ErrBadSignature)
	}
	var got [macSize]byte
	if !decodeBase64MAC(&got, sig) {
		return fmt.Errorf("%w: garbled X-HubSpot-Signature-v3 header", relay.ErrBadSignature)
	}
	prefix := h.base(r)
	for _, key := range keys {
		if equalMAC(mac(key, prefix, r.Body, []byte(ts)), &got) {
			return checkTime(now(r), time.UnixMilli(ms), h.tolerance)
		}
	}
	return fmt.Errorf("%w: signature does not match", relay.ErrBadSignature)
}

// base is what HubSpot signs before the body: the method and the URI.
func (h *HubSpot) base(r *Request) []byte {
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	u := r.URL
	if u == "" {
		u = h.publicURL
	}
	return append([]byte(method), hubspotURI(u)...)
}

// hubspotDecoded maps the percent-escapes that HubSpot decodes in the URI
// before signing (developers.hubspot.com, "Validating requests", v3
// signature: "decode any URL-encoded characters listed in the following
// table") to the characters they stand for.
var hubspotDecoded = map[string]byte{
	"3A": ':', "2F": '/', "3F": '?', "40": '@', "21": '!', "24": '$',
	"27": '\'', "28": '(', "29": ')', "2A": '*', "2C": ',', "3B": ';',
}

// hubspotURI decodes in u the escapes of hubspotDecoded (either case of
// hex digit), leaving every other byte, other escapes included, as is.
func hubspotURI(u string) string {
	if !strings.Contains(u, "%") {
		return u
	}
	var b strings.Builder
	b.Grow(len(u))
	for i := 0; i < len(u); i++ {
		if u[i] == '%' && i+2 < len(u) {
			if c, ok := hubspotDecoded[strings.ToUpper(u[i+1:i+3])]; ok {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(u[i])
	}
	return b.String()
}

// hubspotEvent is the part of one element of a HubSpot batch that Parse
// reads; every field is optional.
type hubspotEvent struct {
	EventID          json.RawMessage `json:"eventId"`
	SubscriptionID   json.RawMessage `json:"subscriptionId"`
	PortalID         json.RawMessage `json:"portalId"`
	OccurredAt       json.RawMessage `json:"occurredAt"`
	SubscriptionType string          `json:"subscriptionType"`
	ObjectID         json.RawMessage `json:"objectId"`
	ObjectTypeID     string          `json:"objectTypeId"`
	ChangeSource     string          `json:"changeSource"`
	SourceID         string          `json:"sourceId"`
}

// hubspotObjectTypes names HubSpot's standard object type ids, which
// generic subscriptions ("object.creation") give in objectTypeId.
var hubspotObjectTypes = map[string]string{
	"0-1": "contact", "0-2": "company", "0-3": "deal", "0-5": "ticket",
	"0-7": "product", "0-8": "line_item", "0-14": "quote", "0-27": "task",
	"0-46": "note", "0-47": "meeting", "0-48": "call", "0-49": "email",
}

// Parse returns one Item per element of the verified batch, in order:
//
//   - ID is "{portalId}:{subscriptionId}:{eventId}" ("{eventId}" when the
//     element lacks the first two): HubSpot says eventId alone "is not
//     guaranteed to be unique", and the three are the same on every retry;
//   - Type is subscriptionType ("contact.creation"), OccurredAt occurredAt
//     (unix milliseconds);
//   - Body is the element without attemptNumber, HubSpot's count of its
//     own delivery attempts, so that a retry carries the same event;
//   - the subject is objectId, of the type named by subscriptionType (or,
//     for generic "object.*" subscriptions, by objectTypeId); the action is
//     the subscription's verb ("creation", "propertyChange") for the reason
//     changeSource; the actor the user of a "userId:N" sourceId.
//
// A body that is not a JSON array is relay.ErrInvalidJSON; an element that
// is not an object is relay.ErrInvalidEvent.
func (h *HubSpot) Parse(r *Request) (*Parsed, error) {
	body := bytes.TrimLeft(r.Body, " \t\r\n")
	if len(body) == 0 || body[0] != '[' {
		return nil, fmt.Errorf("%w: want a JSON array of events", relay.ErrInvalidJSON)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		return nil, fmt.Errorf("%w: want a JSON array of events", relay.ErrInvalidJSON)
	}
	p := &Parsed{Items: make([]Item, 0, len(elems))}
	for i, elem := range elems {
		if !isObject(elem) {
			return nil, fmt.Errorf("%w: element %d: want an object", relay.ErrInvalidEvent, i)
		}
		var ev hubspotEvent
		loose(elem, &ev)
		it := Item{
			ID:         hubspotID(&ev),
			Type:       ev.SubscriptionType,
			OccurredAt: unixMillis(ev.OccurredAt),
			Body:       withoutMember(elem, "attemptNumber"),
		}
		objType := firstSegment(ev.SubscriptionType, ".")
		if objType == "object" && ev.ObjectTypeID != "" {
			objType = first(hubspotObjectTypes[ev.ObjectTypeID], ev.ObjectTypeID)
		}
		it.Subject = relay.Subject{ID: idText(ev.ObjectID), Type: objType}
		if !strings.Contains(ev.SubscriptionType, ".") {
			it.Subject.Type = ""
		}
		it.Action = relay.Action{Type: lastSegment(ev.SubscriptionType, "."), Reason: ev.ChangeSource}
		if uid, ok := strings.CutPrefix(ev.SourceID, "userId:"); ok {
			it.Actor.ID = uid
		}
		p.Items = append(p.Items, it)
	}
	return p, nil
}

// hubspotID is the idempotency id of one event (see Parse).
func hubspotID(ev *hubspotEvent) string {
	id := idText(ev.EventID)
	portal, sub := idText(ev.PortalID), idText(ev.SubscriptionID)
	if id == "" || portal == "" || sub == "" {
		return id
	}
	return portal + ":" + sub + ":" + id
}

// withoutMember returns obj, a JSON object, without its top-level members
// called name, every other byte as it was; obj itself when it has none, or
// when obj is not a well-formed object.
func withoutMember(obj []byte, name string) []byte {
	if !bytes.Contains(obj, []byte(name)) && !bytes.Contains(obj, []byte(`\u`)) {
		return obj // the name cannot be there, not even escaped
	}
	type span struct{ from, to int }
	var cuts []span
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return obj
	}
	start := i + 1 // where the first member still kept would begin
	prev := start  // the end of the previous member, or start
	for i = skipSpace(obj, start); i < len(obj) && obj[i] != '}'; {
		keyEnd := skipString(obj, i)
		colon := skipSpace(obj, keyEnd)
		if keyEnd < 0 || colon >= len(obj) || obj[colon] != ':' {
			return obj
		}
		end := skipValue(obj, skipSpace(obj, colon+1))
		if end < 0 {
			return obj
		}
		next := skipSpace(obj, end)
		if next >= len(obj) {
			return obj
		}
		match := string(obj[i+1:keyEnd-1]) == name // no allocation
		if bytes.IndexByte(obj[i:keyEnd], '\\') >= 0 {
			var key string // an escaped key: decode it
			if json.Unmarshal(obj[i:keyEnd], &key) != nil {
				return obj
			}
			match = key == name
		}
		switch {
		case !match:
			prev = end
		case prev == start:
			// No member kept before this one: cut it with the comma that
			// follows (when one does) rather than one before it.
			to := end
			if obj[next] == ',' {
				to = next + 1
			}
			cuts = append(cuts, span{start, to})
			start, prev = to, to
		default:
			cuts = append(cuts, span{prev, end}) // the comma before it, and it
			prev = end
		}
		if obj[next] == ',' {
			next = skipSpace(obj, next+1)
		}
		i = next
	}
	if len(cuts) == 0 {
		return obj
	}
	out := make([]byte, 0, len(obj))
	at := 0
	for _, c := range cuts {
		out = append(out, obj[at:c.from]...)
		at = c.to
	}
	out = append(out, obj[at:]...)
	if !json.Valid(out) {
		return obj
	}
	return out
}

// Sign sets the headers HubSpot sends: the request timestamp in
// milliseconds and the v3 signature over r.Method (POST when empty), r.URL
// (public_url when empty), the body and the timestamp.
func (h *HubSpot) Sign(r *Request, key []byte, typ string) error {
	ts := strconv.FormatInt(now(r).UnixMilli(), 10)
	r.Header[hubspotTimestampHeader] = []string{ts}
	r.Header[hubspotSignatureHeader] = []string{b64(mac(key, h.base(r), r.Body, []byte(ts)))}
	return nil
}
