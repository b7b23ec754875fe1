// One attempt: send, decide the outcome (succeeded, retrying at next_at,
// dead), record it, log it.

package deliver

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/tracing"
)

// attempt sends one delivery and records its outcome.
func (l *loop) attempt(ctx context.Context, job relay.Job) {
	start := l.d.Now()
	sctx, span := ctx, trace.Span(nil)
	if l.d.Tracer != nil {
		sctx, span = l.d.Tracer.Start(tracing.Extract(ctx, job.TraceParent), "deliver "+job.Target,
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
				attribute.String("wprelay.event_id", job.EventID), attribute.String("wprelay.target", job.Target),
				attribute.Int("wprelay.attempt", job.Attempts+1), attribute.String("url.full", l.redact.String(l.t.URL))))
	}
	reqID := randomHex(12)
	status, header, answer, err := l.send(sctx, job, reqID)
	snippet := string(bytes.ToValidUTF8(answer[:min(len(answer), 512)], nil))
	took := time.Since(start)
	if span != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		} else if !l.success(status) {
			span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", status))
		}
		span.End()
	}
	res := relay.Result{
		EventID: job.EventID, Target: job.Target,
		Attempt: relay.Attempt{At: start, Status: status, DurationMS: took.Milliseconds(), Response: l.redact.String(snippet)},
	}
	tries := job.Tries + 1
	now := l.d.Now()
	resultErr := error(nil)
	switch {
	case unbuildable(err):
		// The body could not be made: no request was sent, and trying
		// again would make the same body.
		res.Attempt.Error = err.Error()
		res.Status, res.Reason = relay.DeliveryDead, err.Error()
	case err != nil && errors.Is(err, ErrBlockedAddress):
		res.Attempt.Error = err.Error()
		res.Status, res.Reason = relay.DeliveryDead, err.Error()
	case err == nil && l.success(status):
		res.Status = relay.DeliverySucceeded
		if l.t.ReplyTo != "" && !job.Mirror {
			// The result is stored before the delivery is marked succeeded;
			// if that fails, the attempt is retried (and the target asked
			// again): at least once, never lost.
			var note string
			res.ResultID, note, resultErr = l.d.result(ctx, l, job, header, answer, now)
			if note != "" {
				res.Attempt.Error = note
			}
			if resultErr != nil {
				res.Attempt.Error = "storing the result: " + resultErr.Error()
				res.Status, res.NextAt = relay.DeliveryRetrying, now.Add(Backoff(tries, l.d.BaseDelay, l.t.MaxBackoff, l.d.Rand()))
			}
		}
	case err == nil && !Retryable(status):
		res.Attempt.Error = fmt.Sprintf("HTTP %d", status)
		res.Status, res.Reason = relay.DeliveryDead, fmt.Sprintf("HTTP %d is not retryable: %s", status, cmp.Or(snippet, "(an empty answer)"))
	default:
		if err != nil {
			res.Attempt.Error = err.Error()
		} else {
			res.Attempt.Error = fmt.Sprintf("HTTP %d", status)
		}
		delay := Backoff(tries, l.d.BaseDelay, l.t.MaxBackoff, l.d.Rand())
		if ra, ok := RetryAfter(header.Get("Retry-After"), now); ok && err == nil {
			delay = min(ra, l.t.MaxBackoff)
		}
		res.NextAt = now.Add(delay)
		switch {
		case tries >= l.t.MaxAttempts:
			res.Status, res.Reason = relay.DeliveryDead, fmt.Sprintf("gave up after %d attempts: %s", tries, res.Attempt.Error)
		case res.NextAt.Sub(job.Since) > l.t.MaxAge:
			res.Status, res.Reason = relay.DeliveryDead, fmt.Sprintf("gave up after %s (max_age): %s", l.t.MaxAge, res.Attempt.Error)
		default:
			res.Status = relay.DeliveryRetrying
		}
	}
	res.Attempt.Error, res.Reason = l.redact.String(res.Attempt.Error), l.redact.String(res.Reason)
	// The breaker hears about the target's health: an answer on purpose
	// (2xx, or a final 4xx) means it is up. A body that could not be made
	// says nothing about it.
	if unbuildable(err) {
		l.breaker.Release()
	} else {
		l.breaker.Record(now, res.Status == relay.DeliverySucceeded || resultErr != nil || (err == nil && !Retryable(status)) || errors.Is(err, ErrBlockedAddress))
	}
	l.record(ctx, res)
	l.d.Metrics.Attempt(job.Target, status, took, res.Status)
	level := slog.LevelInfo
	if res.Status != relay.DeliverySucceeded {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String(relay.LogKeyEventID, job.EventID), slog.String(relay.LogKeyDeliveryID, job.EventID+":"+job.Target),
		slog.String(relay.LogKeyRequestID, reqID), slog.String(relay.LogKeyTraceID, relay.TraceID(job.TraceParent)),
		slog.String(relay.LogKeySource, job.Source), slog.String(relay.LogKeyTenant, job.Tenant),
		slog.String(relay.LogKeyType, job.Type), slog.String(relay.LogKeyTarget, job.Target), slog.Int(relay.LogKeyAttempt, job.Attempts+1),
		slog.Int(relay.LogKeyStatus, status), slog.String(relay.LogKeyOutcome, res.Status),
		slog.Float64(relay.LogKeyLatencyMS, float64(took.Microseconds())/1000),
	}
	if res.Attempt.Error != "" {
		attrs = append(attrs, slog.String(relay.LogKeyError, res.Attempt.Error))
	}
	if res.ResultID != "" {
		attrs = append(attrs, slog.String(relay.LogKeyResultID, res.ResultID))
	}
	if job.OutOfOrder {
		attrs = append(attrs, slog.Bool(relay.LogKeyOutOfOrder, true))
	}
	if !res.NextAt.IsZero() && res.Status == relay.DeliveryRetrying {
		attrs = append(attrs, slog.Time(relay.LogKeyNextAt, res.NextAt))
	}
	l.d.Logger.LogAttrs(ctx, level, "deliver", attrs...)
}

func (l *loop) success(status int) bool {
	if len(l.t.SuccessCodes) > 0 {
		return slices.Contains(l.t.SuccessCodes, status)
	}
	return status >= 200 && status < 300
}
