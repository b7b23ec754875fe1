// Package ingress is the public webhook listener: limits → verify →
// normalize → dedupe → commit → 202.
//
// The answer 202 is written only after the store has committed the event and
// its deliveries to disk. Every rejection carries a status code and a
// machine-readable error code (see writeError).
package ingress

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
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
		msg := "webhooks go to POST /hooks/{source}"
		if p := r.URL.Path; strings.HasPrefix(p, "/admin/") || p == "/readyz" || p == "/metrics" {
			msg = PublicListenerNotAdmin
		}
		writeJSON(w, http.StatusNotFound, errorBody{"not_found", msg})
	})
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	in.router = r
	return in
}

// PublicListenerNotAdmin is the message of the public listener's 404 to a
// request meant for the admin listener (the CLI recognises it).
const PublicListenerNotAdmin = "this is wprelay's public webhook listener; the admin API, /readyz and /metrics are on admin.listen (default 127.0.0.1:8081)"

// ServeHTTP implements http.Handler.
func (in *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) { in.router.ServeHTTP(w, r) }

// outcome is what one request did, for the log line.
type outcome struct {
	source, tenant, eventID, result string
	typ, traceID                    string
	events                          int
	// unrouted: no event of the request matched a route (stored
	// discarded): the log says "discarded" where the answer says queued.
	unrouted bool
}

// logged is the outcome the log line and the span give: what happened to
// the events, which the answer's "queued" does not tell for a discarded one.
func (o *outcome) logged() string {
	if o.result == "queued" && o.unrouted {
		return "discarded"
	}
	return o.result
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
		span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String("wprelay.outcome", out.logged()),
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
		slog.String(relay.LogKeyOutcome, out.logged()),
		slog.Int(relay.LogKeyStatus, status),
		slog.String(relay.LogKeyCode, code),
		slog.Float64(relay.LogKeyLatencyMS, float64(time.Since(start).Microseconds())/1000),
	}
	if err != nil {
		attrs = append(attrs, slog.String(relay.LogKeyError, err.Error()))
	}
	in.Logger.LogAttrs(r.Context(), level, "ingest", attrs...)
}
