// Package tracing sets up OpenTelemetry tracing: spans for ingest (verify,
// commit) and every delivery attempt, exported over OTLP/HTTP when an
// endpoint is configured. Without one, nothing is set up and the ingest
// and delivery paths skip tracing entirely (a nil Tracer), so it costs
// nothing.
//
// The W3C trace context is the glue: a traceparent on the incoming request
// is continued, the ingest span's context is stored with the event, and
// every attempt starts a child span whose context is sent as the
// request's traceparent, so WordPress and upstream targets can continue it.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Options configure the exporter.
type Options struct {
	Endpoint     string        // OTLP/HTTP base URL, e.g. http://127.0.0.1:4318; "" = off
	SampleRatio  float64       // of new traces (continued traces follow their parent); default 1
	BatchTimeout time.Duration // how long spans wait before export; default 5s
	Service      string        // service.name; default "wprelay"
	Version      string
}

// Setup returns a tracer and a shutdown function that flushes pending
// spans. With no endpoint it returns a nil tracer and a no-op shutdown.
func Setup(o Options) (trace.Tracer, func(context.Context) error, error) {
	if o.Endpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("tracing.otlp_endpoint %q: want an http(s) URL such as http://127.0.0.1:4318", o.Endpoint)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.JoinPath("/v1/traces").String())}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	if o.Service == "" {
		o.Service = "wprelay"
	}
	if o.SampleRatio <= 0 || o.SampleRatio > 1 {
		o.SampleRatio = 1
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 5 * time.Second
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(o.BatchTimeout)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(o.Service), semconv.ServiceVersion(o.Version))),
	)
	return tp.Tracer("github.com/wprelay/wprelay"), tp.Shutdown, nil
}

var propagator = propagation.TraceContext{}

// Extract returns ctx carrying the remote span context of a traceparent.
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// Traceparent formats a span's context as a W3C traceparent ("" when the
// span has no valid context).
func Traceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}

// Inject sets traceparent (and tracestate) on h from ctx's span.
func Inject(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}
