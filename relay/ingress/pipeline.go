// The pipeline of one webhook request: limits, verify, parse, build the
// events, commit, answer.

package ingress

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/provider"
	"github.com/wprelay/wprelay/relay/tracing"
)

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
		if parsed.BodyKeys {
			b.Events[len(b.Events)-1].BodyKey = relay.BodyKey(src.Name, tenant, it.Body)
		}
	}
	cspan := in.child(r, "commit")
	outcomes, err := in.commit(r.Context(), b)
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
	out.events, out.unrouted = len(outcomes), !routed
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
		Normal: it.Normal, Data: it.EnvelopeData(), Discard: it.Discard,
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

// bodyHash identifies an event's body for conflict detection; kinds whose
// keys are chosen by providers get one constant hash, so a known key is a
// duplicate whatever the body.
func bodyHash(p *provider.Parsed, body []byte) [32]byte {
	if !p.StrictKeys {
		return [32]byte{}
	}
	return sha256.Sum256(body)
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
