package deliver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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

// request builds an attempt's headers and body as of now (the traceparent
// is the caller's). A body that cannot be rendered is an error wrapping
// errTemplate.
func (l *loop) request(job relay.Job, reqID string, now time.Time) ([]byte, http.Header, error) {
	key := job.EventID + ":" + job.Target
	body := []byte(job.Envelope)
	if l.t.Template != nil {
		var err error
		if body, err = l.t.Template.Render(job.Envelope, now); err != nil {
			return nil, nil, err
		}
	}
	h := http.Header{}
	for k, v := range l.t.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
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
	body, h, err := l.request(job, randomHex(12), d.Now())
	req := &relay.Request{Method: http.MethodPost, URL: l.redact.String(l.t.URL)}
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
