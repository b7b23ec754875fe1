package deliver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Auth is an http target's credential, set on every attempt after the
// Signer's headers. Set at most one of Bearer, Basic and HMAC (a JWT is the
// Signer's).
type Auth struct {
	Bearer        string // Authorization: Bearer <Bearer>
	BasicUser     string // Authorization: Basic, with BasicPassword
	BasicPassword string
	HMAC          *HMACAuth
}

// HMACAuth signs the body: Header = Prefix + HMAC-SHA256(Key, body), hex or
// base64; with TimestampHeader, that header carries the Unix time and the
// signed text is "{timestamp}.{body}".
type HMACAuth struct {
	Key             []byte
	Header          string // default X-Signature
	Prefix          string
	Encoding        string // hex (default) or base64
	TimestampHeader string
}

// errNoRaw marks a format raw delivery whose event has no stored request.
var errNoRaw = errors.New("format raw")

// unbuildable reports whether err says that an attempt's body cannot be
// made (a template error, no raw request): trying again would not help.
func unbuildable(err error) bool { return errors.Is(err, errTemplate) || errors.Is(err, errNoRaw) }

// request builds an attempt's headers and body as of now (the traceparent
// is the caller's). A body that cannot be made is an error for which
// unbuildable is true.
func (l *loop) request(ctx context.Context, job relay.Job, reqID string, now time.Time) ([]byte, http.Header, error) {
	key := job.EventID + ":" + job.Target
	body, contentType, err := l.body(ctx, job, now)
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	for k, v := range l.t.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", contentType)
	h.Set("User-Agent", l.d.UserAgent)
	h.Set("Idempotency-Key", key)
	h.Set("X-Request-Id", reqID)
	if job.OutOfOrder {
		h.Set("X-Wprelay-Out-Of-Order", "true")
	}
	if job.Mirror {
		h.Set("X-Wprelay-Mirror", "true")
	}
	if err := l.authorize(h, key, body, now); err != nil {
		return nil, nil, err
	}
	return body, h, nil
}

// body returns an attempt's body and its media type: the envelope (of an
// event stored by an earlier version, in today's layout), the template's
// rendering of it, or with format raw the provider's request body as it
// came, with its Content-Type.
func (l *loop) body(ctx context.Context, job relay.Job, now time.Time) ([]byte, string, error) {
	env := relay.UpgradeEnvelope(job.Envelope)
	switch {
	case l.t.Raw:
		if l.d.Raws == nil {
			return nil, "", fmt.Errorf("%w: no store to read the event's request from", errNoRaw)
		}
		raw, err := l.d.Raws.Raw(ctx, job.EventID)
		if errors.Is(err, relay.ErrNotFound) || err == nil && (raw == nil || len(raw.Body) == 0) {
			return nil, "", fmt.Errorf("%w: event %s has no stored request body (imported without one): send it as an envelope", errNoRaw, job.EventID)
		}
		if err != nil {
			return nil, "", fmt.Errorf("format raw: read the event's request: %w", err)
		}
		ct := http.Header(raw.Header).Get("Content-Type")
		if ct == "" {
			ct = "application/json"
		}
		return raw.Body, ct, nil
	case l.t.Template != nil:
		b, err := l.t.Template.Render(env, now)
		return b, "application/json", err
	}
	return env, "application/json", nil
}

// authorize sets the credentials of one try: the Signer's JWT and Standard
// Webhooks signature, then Auth.
func (l *loop) authorize(h http.Header, key string, body []byte, now time.Time) error {
	if err := l.t.Signer.Sign(h, key, body, now); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	a := l.t.Auth
	switch {
	case a.Bearer != "":
		h.Set("Authorization", "Bearer "+a.Bearer)
	case a.BasicUser != "":
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.BasicUser+":"+a.BasicPassword)))
	case a.HMAC != nil:
		m := hmac.New(sha256.New, a.HMAC.Key)
		if a.HMAC.TimestampHeader != "" {
			ts := strconv.FormatInt(now.Unix(), 10)
			h.Set(a.HMAC.TimestampHeader, ts)
			m.Write([]byte(ts + "."))
		}
		m.Write(body)
		sig := hex.EncodeToString(m.Sum(nil))
		if a.HMAC.Encoding == "base64" {
			sig = base64.StdEncoding.EncodeToString(m.Sum(nil))
		}
		h.Set(a.HMAC.header(), a.HMAC.Prefix+sig)
	}
	return nil
}

func (a *HMACAuth) header() string {
	if a.Header == "" {
		return "X-Signature"
	}
	return a.Header
}

// Preview returns the request delivery del of ev would send now, with
// credentials redacted: what a dry-run route records. A body that cannot be
// made is reported in Error.
func (d *Dispatcher) Preview(ev *relay.Event, del relay.Delivery) *relay.Request {
	l := d.byName[del.Target]
	if l == nil {
		return &relay.Request{Method: http.MethodPost, Error: fmt.Sprintf("no target named %q", del.Target)}
	}
	job := relay.Job{EventID: ev.ID, Target: del.Target, Type: ev.Type, Source: ev.Source, Tenant: ev.Tenant,
		Envelope: ev.Envelope, TraceParent: ev.TraceParent, Mirror: del.Mirror}
	req := &relay.Request{Method: http.MethodPost, URL: l.redact.String(l.t.URL)}
	if l.t.Raw {
		req.Error = "format raw: the body would be the provider's request body as it came (GET /admin/v1/events/" + ev.ID + "/raw)"
		return req
	}
	body, h, err := l.request(context.Background(), job, randomHex(12), d.Now())
	if err != nil {
		req.Error = l.redact.String(err.Error())
		return req
	}
	h.Set("Traceparent", relay.ChildTraceparent(ev.TraceParent))
	req.Header, req.Body, req.URL = l.redact.Header(h), body, l.redact.String(req.URL)
	if scrubbed := l.redact.String(string(body)); scrubbed != string(body) {
		req.Body = []byte(scrubbed)
		if !json.Valid(req.Body) {
			req.Body, _ = json.Marshal(scrubbed)
		}
	}
	return req
}
