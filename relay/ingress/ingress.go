// Package ingress is the public webhook listener: limits → verify →
// normalize → dedupe → commit → 202.
//
// The answer 202 is written only after the store has committed the event and
// its deliveries to disk. Every rejection carries a status code and a
// machine-readable error code (see writeError).
package ingress

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/metrics"
	"github.com/wprelay/wprelay/relay/provider"
	"github.com/wprelay/wprelay/relay/tracing"
)

// Source is one configured webhook sender, ready to verify requests.
type Source struct {
	Name         string
	Kind         string
	Verifier     provider.Verifier
	Tenants      []Tenant // the default tenant (Name "") first, when it has keys
	ContentTypes []string // allowed media types; default application/json
	MaxBody      int64    // default Ingress.MaxBody
	AllowIPs     []netip.Prefix
	PublicURL    string
	// Redact is the redaction policy of the requests stored for this
	// source (its configured signature header, the values of its ${…}
	// references); nil = header names that say they hold credentials.
	Redact *relay.Redactor
}

// Tenant is one account of a source and its HMAC keys (several: rotation).
type Tenant struct {
	Name string
	Keys [][]byte
}

// Store is what ingress needs from a store (relay.Queue has it): commit one
// request's events, and count the deliveries that wait (limits.max_queue).
type Store interface {
	Enqueue(ctx context.Context, b *relay.Batch) ([]relay.Outcome, error)
	Pending(ctx context.Context) (int, error)
}

// Ingress is the http.Handler for POST /hooks/{source}[/{tenant}].
type Ingress struct {
	Queue  Store
	Router *relay.Router
	Logger *slog.Logger
	Now    func() time.Time // default time.Now

	MaxBody   int64         // default 512 KiB
	MaxBatch  int           // events per request; default DefaultMaxBatch
	MaxDepth  int           // nested JSON levels; default DefaultMaxDepth
	MaxQueue  int           // pending deliveries before 503; default 1,000,000
	DedupeTTL time.Duration // how long idempotency keys are kept; default 168h
	// Notify is called after a commit that queued deliveries (wakes the
	// dispatcher). May be nil.
	Notify func()
	// Limits rate-limits per source and client IP; nil = off.
	Limits *Limits
	// Metrics counts requests and events; nil = off.
	Metrics *metrics.Metrics
	// Tracer records ingest, verify and commit spans; nil = off (no cost).
	Tracer trace.Tracer
	// Preview returns the request delivery d of ev would send, recorded on
	// deliveries skipped by a dry-run route. May be nil.
	Preview func(ev *relay.Event, d relay.Delivery) *relay.Request

	sources map[string]*Source
	router  *httprouter.Router
}

// New returns an Ingress for sources. Set the exported fields before serving.
func New(q Store, router *relay.Router, sources []*Source, logger *slog.Logger) *Ingress {
	in := &Ingress{
		Queue: q, Router: router, Logger: logger, Now: time.Now,
		MaxBody: 512 << 10, MaxQueue: 1_000_000, DedupeTTL: 168 * time.Hour,
		sources: make(map[string]*Source, len(sources)),
	}
	for _, s := range sources {
		if len(s.ContentTypes) == 0 {
			s.ContentTypes = []string{"application/json"}
		}
		in.sources[s.Name] = s
	}
	r := httprouter.New()
	r.POST("/hooks/:source", in.serveHook)
	r.POST("/hooks/:source/:tenant", in.serveHook)
	r.GET("/healthz", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		setRequestID(w, r)
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.HandleMethodNotAllowed = true
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setRequestID(w, r)
		// httprouter has set Allow already.
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{"method_not_allowed", "use POST"})
	})
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setRequestID(w, r)
		writeJSON(w, http.StatusNotFound, errorBody{"not_found", "webhooks go to POST /hooks/{source}"})
	})
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	in.router = r
	return in
}

// ServeHTTP implements http.Handler.
func (in *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) { in.router.ServeHTTP(w, r) }

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// rejection is an ingest failure with its HTTP answer.
type rejection struct {
	status     int
	code       string
	msg        string
	retryAfter string
}

func (e *rejection) Error() string { return e.code + ": " + e.msg }

func reject(status int, code, format string, args ...any) *rejection {
	return &rejection{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// outcome is what one request did, for the log line.
type outcome struct {
	source, tenant, eventID, result string
	typ, traceID                    string
	events                          int
}

func (in *Ingress) serveHook(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	start := time.Now()
	reqID := setRequestID(w, r)
	out := outcome{source: ps.ByName("source"), tenant: ps.ByName("tenant")}
	var span trace.Span
	if in.Tracer != nil {
		ctx := tracing.Extract(r.Context(), r.Header.Get("Traceparent"))
		ctx, span = in.Tracer.Start(ctx, "ingest", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("wprelay.source", out.source), attribute.String("http.request.method", r.Method)))
		r = r.WithContext(ctx)
	}
	status, err := in.ingest(w, r, ps, &out)
	code := ""
	if err != nil {
		status, code = in.writeError(w, err)
		out.result = "rejected"
	}
	if span != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String("wprelay.outcome", out.result),
			attribute.String("wprelay.event_id", out.eventID), attribute.String("wprelay.tenant", out.tenant))
		if code != "" {
			span.SetStatus(codes.Error, code)
		}
		span.End()
	}
	in.Metrics.Request(out.source, out.result, code, time.Since(start))
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String(relay.LogKeyRequestID, reqID),
		slog.String(relay.LogKeySource, out.source),
		slog.String(relay.LogKeyTenant, out.tenant),
		slog.String(relay.LogKeyEventID, out.eventID),
		slog.String(relay.LogKeyType, out.typ),
		slog.String(relay.LogKeyTraceID, out.traceID),
		slog.String(relay.LogKeyOutcome, out.result),
		slog.Int(relay.LogKeyStatus, status),
		slog.String(relay.LogKeyCode, code),
		slog.Float64(relay.LogKeyLatencyMS, float64(time.Since(start).Microseconds())/1000),
	}
	if err != nil {
		attrs = append(attrs, slog.String(relay.LogKeyError, err.Error()))
	}
	in.Logger.LogAttrs(r.Context(), level, "ingest", attrs...)
}

// ingest runs the pipeline and writes the success answer; errors are
// written by the caller through writeError.
func (in *Ingress) ingest(w http.ResponseWriter, r *http.Request, ps httprouter.Params, out *outcome) (int, error) {
	src := in.sources[ps.ByName("source")]
	if src == nil {
		return 0, reject(http.StatusNotFound, "unknown_source", "no source named %q is configured", ps.ByName("source"))
	}
	tenants := src.Tenants
	if name := ps.ByName("tenant"); name != "" {
		tenants = nil
		for _, t := range src.Tenants {
			if t.Name == name {
				tenants = []Tenant{t}
			}
		}
		if tenants == nil {
			return 0, reject(http.StatusNotFound, "unknown_source", "source %q has no tenant %q", src.Name, name)
		}
	}
	ip := in.Limits.clientIP(r)
	if len(src.AllowIPs) > 0 && !contains(src.AllowIPs, ip) {
		return 0, reject(http.StatusForbidden, "forbidden", "this address may not send to source %q; add it to the source's allow_ips", src.Name)
	}
	now := in.Now()
	if wait, ok := in.Limits.allow(src.Name, ip, now); !ok {
		rj := reject(http.StatusTooManyRequests, "rate_limited", "too many requests for source %q; retry after the Retry-After delay", src.Name)
		rj.retryAfter = strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
		return 0, rj
	}
	req := &provider.Request{Method: r.Method, URL: publicURL(src, r, ps.ByName("tenant")), Header: r.Header, Now: now}

	if g, ok := src.Verifier.(provider.Greeter); ok {
		// Unsigned provider pings come before the content-type check:
		// WooCommerce sends its ping form-encoded.
		body, err := readBody(w, r, in.maxBody(src))
		if err != nil {
			return 0, err
		}
		req.Body = body
		if reply := g.Greet(req); reply != nil {
			out.result = "handshake"
			writeReply(w, reply)
			return reply.Status, nil
		}
	}
	if !allowedType(src.ContentTypes, r.Header.Get("Content-Type")) {
		return 0, reject(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"source %q accepts %s", src.Name, strings.Join(src.ContentTypes, ", "))
	}
	if req.Body == nil {
		body, err := readBody(w, r, in.maxBody(src))
		if err != nil {
			return 0, err
		}
		req.Body = body
	}
	if n, err := in.Queue.Pending(r.Context()); err != nil {
		return 0, fmt.Errorf("%w: %w", relay.ErrUnavailable, err)
	} else if n >= in.MaxQueue {
		return 0, relay.ErrQueueFull
	}

	vspan := in.child(r, "verify")
	tenant, err := verify(src, tenants, req)
	endSpan(vspan, err)
	if err != nil {
		return 0, err
	}
	out.tenant = tenant
	ctype := r.Header.Get("Content-Type")
	if err := in.checkJSON(ctype, req.Body); err != nil {
		return 0, err
	}
	parsed, err := src.Verifier.Parse(req)
	if err != nil {
		return 0, err
	}
	if err := in.checkItems(ctype, parsed); err != nil {
		return 0, err
	}
	if parsed.Reply != nil {
		out.result = "handshake"
		writeReply(w, parsed.Reply)
		return parsed.Reply.Status, nil
	}
	if len(parsed.Items) == 0 {
		return 0, fmt.Errorf("%w: the request holds no event", relay.ErrInvalidEvent)
	}

	b := &relay.Batch{Nonce: parsed.Nonce, NonceExpires: parsed.NonceExpires, Events: make([]relay.Incoming, 0, len(parsed.Items))}
	raw := &relay.Raw{Method: r.Method, Path: src.Redact.String(r.URL.RequestURI()), Header: src.Redact.Header(r.Header), Body: req.Body}
	traceparent := r.Header.Get("Traceparent")
	if in.Tracer != nil {
		// Deliveries continue the ingest span.
		traceparent = tracing.Traceparent(trace.SpanContextFromContext(r.Context()))
	}
	if !relay.ValidTraceparent(traceparent) {
		traceparent = relay.NewTraceparent() // the trace starts here
	}
	routed := false
	for _, it := range parsed.Items {
		ev, err := in.event(src, tenant, it, now, traceparent)
		if err != nil {
			return 0, err
		}
		out.typ, out.traceID = ev.Type, traceparent[3:35]
		if len(ev.Deliveries) > 0 {
			routed = true
		}
		b.Events = append(b.Events, relay.Incoming{
			Event: ev, Raw: raw, BodyHash: bodyHash(parsed, it.Body), KeyExpires: now.Add(in.DedupeTTL),
		})
	}
	cspan := in.child(r, "commit")
	outcomes, err := in.Queue.Enqueue(r.Context(), b)
	endSpan(cspan, err)
	if err != nil {
		if errors.Is(err, relay.ErrReplayed) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %w", relay.ErrUnavailable, err)
	}
	if routed && in.Notify != nil {
		in.Notify()
	}
	out.events = len(outcomes)
	dups := 0
	for _, o := range outcomes {
		if o.Duplicate {
			dups++
		}
	}
	in.Metrics.Events(src.Name, len(outcomes)-dups, dups)
	if parsed.Ack != nil {
		for _, o := range outcomes {
			if o.Conflict {
				return 0, relay.ErrConflict
			}
		}
		out.result, out.eventID = "queued", outcomes[0].ID
		if dups == len(outcomes) {
			out.result = "duplicate"
		}
		writeReply(w, parsed.Ack)
		return parsed.Ack.Status, nil
	}
	return in.answer(w, outcomes, out)
}

func (in *Ingress) answer(w http.ResponseWriter, outcomes []relay.Outcome, out *outcome) (int, error) {
	for _, o := range outcomes {
		if o.Conflict {
			out.eventID = o.ID
			return 0, relay.ErrConflict
		}
	}
	if len(outcomes) == 1 {
		o := outcomes[0]
		out.eventID = o.ID
		if o.Duplicate {
			out.result = "duplicate"
			writeStatusID(w, http.StatusOK, "duplicate", o.ID)
			return http.StatusOK, nil
		}
		out.result = "queued"
		writeStatusID(w, http.StatusAccepted, "queued", o.ID)
		return http.StatusAccepted, nil
	}
	ids, dups := []string{}, []string{}
	for _, o := range outcomes {
		if o.Duplicate {
			dups = append(dups, o.ID)
		} else {
			ids = append(ids, o.ID)
		}
	}
	out.result = "queued"
	if len(ids) == 0 {
		out.result = "duplicate"
		writeJSON(w, http.StatusOK, map[string]any{"status": "duplicate", "ids": ids, "duplicates": dups})
		return http.StatusOK, nil
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "queued", "ids": ids, "duplicates": dups})
	return http.StatusAccepted, nil
}

// event builds the stored event of item it, its envelope and its
// deliveries (relay.NewEvent).
func (in *Ingress) event(src *Source, tenant string, it provider.Item, now time.Time, traceparent string) (relay.Event, error) {
	return relay.NewEvent(relay.Draft{
		Source: src.Name, Tenant: tenant, Type: it.Type,
		IdempotencyKey: relay.IdempotencyKey(src.Name, tenant, it.ID, it.Body),
		ReceivedAt:     now, OccurredAt: it.OccurredAt, TraceParent: traceparent,
		Normal: it.Normal, Data: it.Body, Discard: it.Discard,
	}, in.Router, now, in.Preview)
}

// verify checks req against each candidate tenant's keys and returns the
// tenant whose key verifies. A stale timestamp wins over a plain mismatch in
// the error it reports, so that a sender with a bad clock is told so.
func verify(src *Source, tenants []Tenant, req *provider.Request) (string, error) {
	var first error
	for _, t := range tenants {
		err := src.Verifier.Verify(req, t.Keys)
		if err == nil {
			return t.Name, nil
		}
		if first == nil || (errors.Is(err, relay.ErrStaleTimestamp) && !errors.Is(first, relay.ErrStaleTimestamp)) {
			first = err
		}
	}
	if first == nil {
		first = fmt.Errorf("%w: source %q has no keys", relay.ErrBadSignature, src.Name)
	}
	return "", first
}

func (in *Ingress) maxBody(src *Source) int64 {
	if src.MaxBody > 0 {
		return src.MaxBody
	}
	return in.MaxBody
}

// readBody reads at most limit bytes, failing while reading (not after) when
// the body is larger.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, reject(http.StatusRequestEntityTooLarge, "payload_too_large", "the body is %d bytes; this source accepts at most %d", r.ContentLength, limit)
	}
	size := r.ContentLength
	if size < 0 || size > 64<<10 {
		size = 4 << 10
	}
	buf := make([]byte, 0, size+1)
	body := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, reject(http.StatusRequestEntityTooLarge, "payload_too_large", "the body is larger than %d bytes, the most this source accepts", limit)
			}
			if errors.Is(err, io.EOF) {
				return buf, nil
			}
			return nil, reject(http.StatusBadRequest, "bad_request", "reading the body: %v", err)
		}
	}
}

func allowedType(allowed []string, header string) bool {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return false
	}
	for _, a := range allowed {
		if strings.EqualFold(a, mt) {
			return true
		}
	}
	return false
}

// publicURL is the URL the provider called: the source's public_url (plus
// "/{tenant}" when the tenant is in the path, and the query string), or the
// request's own URL.
func publicURL(src *Source, r *http.Request, tenant string) string {
	if src.PublicURL != "" {
		u := src.PublicURL
		if tenant != "" {
			u = strings.TrimRight(u, "/") + "/" + tenant
		}
		if r.URL.RawQuery != "" {
			u += "?" + r.URL.RawQuery
		}
		return u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

// writeError is the one place where errors become HTTP answers. It returns
// the status and the error code it wrote.
func (in *Ingress) writeError(w http.ResponseWriter, err error) (int, string) {
	var rj *rejection
	switch {
	case errors.As(err, &rj):
	case errors.Is(err, relay.ErrStaleTimestamp):
		rj = reject(http.StatusUnauthorized, "stale_timestamp", "%s; check the sender's clock", err)
	case errors.Is(err, relay.ErrReplayed):
		rj = reject(http.StatusUnauthorized, "replayed", "this token was already used; sign each request with a new jti")
	case errors.Is(err, relay.ErrInvalidToken):
		rj = reject(http.StatusUnauthorized, "invalid_token", "%s", err)
	case errors.Is(err, relay.ErrBadSignature):
		rj = reject(http.StatusUnauthorized, "invalid_signature", "%s; check that the sender and this source share the secret", err)
	case errors.Is(err, relay.ErrTooDeep):
		rj = reject(http.StatusBadRequest, "too_deep", "%s", err)
	case errors.Is(err, relay.ErrInvalidJSON):
		rj = reject(http.StatusBadRequest, "invalid_json", "%s", err)
	case errors.Is(err, relay.ErrInvalidEvent):
		rj = reject(http.StatusUnprocessableEntity, "invalid_event", "%s", err)
	case errors.Is(err, relay.ErrConflict):
		rj = reject(http.StatusConflict, "idempotency_conflict", "this idempotency key was used before with a different body; use a new key for a new event")
	case errors.Is(err, relay.ErrQueueFull):
		rj = reject(http.StatusServiceUnavailable, "unavailable", "the delivery queue is full; retry later")
		rj.retryAfter = "30"
	case errors.Is(err, context.Canceled):
		rj = reject(499, "canceled", "the client went away")
	default:
		rj = reject(http.StatusServiceUnavailable, "unavailable", "the event could not be stored; retry later")
		rj.retryAfter = "5"
		in.Logger.Error("store", slog.String(relay.LogKeyError, err.Error()))
	}
	if rj.retryAfter != "" {
		w.Header().Set("Retry-After", rj.retryAfter)
	}
	writeJSON(w, rj.status, errorBody{rj.code, rj.msg})
	return rj.status, rj.code
}

// child starts a child span of the request's span when tracing is on.
func (in *Ingress) child(r *http.Request, name string) trace.Span {
	if in.Tracer == nil {
		return nil
	}
	_, span := in.Tracer.Start(r.Context(), name)
	return span
}

func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// bodyHash identifies an event's body for conflict detection; kinds whose
// keys are chosen by providers get one constant hash, so a known key is a
// duplicate whatever the body.
func bodyHash(p *provider.Parsed, body []byte) [32]byte {
	if !p.StrictKeys {
		return [32]byte{}
	}
	return sha256.Sum256(body)
}

// writeReply writes a provider handshake or acknowledgement.
func writeReply(w http.ResponseWriter, r *provider.Reply) {
	if r.Body == nil {
		w.WriteHeader(r.Status)
		return
	}
	writeJSON(w, r.Status, r.Body)
}

var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeStatusID writes the answer for one event, {"id":…,"status":…}: the
// bytes writeJSON writes for it (keys sorted), without reflection, as it is
// the answer to nearly every request. id is a UUID (nothing to escape).
func writeStatusID(w http.ResponseWriter, status int, word, id string) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	b := make([]byte, 0, 32+len(word)+len(id))
	b = append(append(append(b, `{"id":"`...), id...), `","status":"`...)
	b = append(append(b, word...), "\"}\n"...)
	_, _ = w.Write(b)
}

// setRequestID keeps a sane X-Request-Id from the client, or makes one, and
// echoes it on the response.
func setRequestID(w http.ResponseWriter, r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if !saneID(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header()["X-Request-Id"] = []string{id}
	return id
}

func saneID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
