// Package deliver sends due deliveries to their targets: one scheduling loop
// per target claims from the queue, runs at most Concurrency attempts at
// once, and records each outcome (succeeded, retrying at next_at, or dead).
//
// Short bursts of connection errors are retried inside one attempt by
// go-retryablehttp (with a fresh JWT each time); the long schedule lives in
// the queue, so a restart does not forget it.
package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/metrics"
	"github.com/wprelay/wprelay/relay/tracing"
)

// Target is where deliveries go, with its retry policy.
type Target struct {
	Name        string
	Kind        string // wordpress or http
	URL         string
	Timeout     time.Duration // per attempt; default 10s
	MaxAttempts int           // default 8
	MaxAge      time.Duration // default 24h
	MaxBackoff  time.Duration // default 1h
	Concurrency int           // default 4
	Rate        float64       // attempts/s; 0 = unlimited
	Headers     map[string]string
	// SecretHeaders are the Headers whose values are credentials (shown as
	// REDACTED in recorded requests), besides those whose names say so.
	SecretHeaders []string
	Signer        Signer
	Auth          Auth      // http targets: bearer, basic or an HMAC header
	Template      *Template // renders the body; nil = the envelope
	SuccessCodes  []int     // default any 2xx
	AllowPrivate  bool      // http targets only; wordpress targets are local by nature
	Breaker       *Breaker  // nil: the defaults (5 failures, 30 s cool-down)
	// ReplyTo names the target a 2xx JSON answer goes to, as a result event
	// (see Dispatcher.Router); "" = answers are dropped.
	ReplyTo string
	// RatePerMinute caps requests per minute, evenly spaced; 0 = unlimited.
	RatePerMinute float64
	// DailyBudget caps requests per UTC day; past it deliveries wait for
	// the next day. 0 = unlimited.
	DailyBudget int
	// Redact are secret values (API keys, passwords) that must never be
	// recorded: they read REDACTED wherever they would appear in a
	// recorded request, an attempt's error or the start of an answer.
	Redact []string
}

// Queue is what the dispatcher needs from a store (relay.Queue has it):
// claim due deliveries, record each attempt's outcome, know when the next
// one is due, and commit the result events of reply_to targets.
type Queue interface {
	Claim(ctx context.Context, target string, now time.Time, n int, lease time.Duration) ([]relay.Job, error)
	Complete(ctx context.Context, r relay.Result) error
	NextDue(ctx context.Context, target string) (at time.Time, ok bool, err error)
	Enqueue(ctx context.Context, b *relay.Batch) ([]relay.Outcome, error)
}

// Dispatcher runs the delivery loops. Set fields before Run.
type Dispatcher struct {
	Queue     Queue
	Logger    *slog.Logger
	Now       func() time.Time // default time.Now
	Rand      func() float64   // jitter source in [0,1); default math/rand/v2
	BaseDelay time.Duration    // first retry delay before jitter; default 1s
	UserAgent string
	Metrics   *metrics.Metrics // nil = off
	Tracer    trace.Tracer     // nil = off: attempts send a fresh child traceparent without spans
	// Router routes result events (targets with ReplyTo); nil = results
	// go to the ReplyTo target only.
	Router *relay.Router
	// ResultTTL is how long a result's idempotency key is kept (so that a
	// retried attempt does not make a second result); default 168h.
	ResultTTL time.Duration
	// MaxAnswer is the largest answer that becomes a result; default 512 KiB.
	MaxAnswer int64
	// Counters keep daily budgets across restarts (cmd passes the store);
	// nil = in memory only.
	Counters relay.Counters

	targets []*loop
	byName  map[string]*loop
	running atomic.Bool
}

// New returns a dispatcher for targets, with defaults filled in.
func New(q Queue, targets []Target, logger *slog.Logger) *Dispatcher {
	d := &Dispatcher{Queue: q, Logger: logger, Now: time.Now, Rand: rand.Float64, BaseDelay: time.Second, UserAgent: "wprelay",
		ResultTTL: 168 * time.Hour, MaxAnswer: 512 << 10, byName: map[string]*loop{}}
	for _, t := range targets {
		if t.Timeout <= 0 {
			t.Timeout = 10 * time.Second
		}
		if t.MaxAttempts <= 0 {
			t.MaxAttempts = 8
		}
		if t.MaxAge <= 0 {
			t.MaxAge = 24 * time.Hour
		}
		if t.MaxBackoff <= 0 {
			t.MaxBackoff = time.Hour
		}
		if t.Concurrency <= 0 {
			t.Concurrency = 4
		}
		if t.Signer.Audience == "" {
			t.Signer.Audience = origin(t.URL)
		}
		if t.Signer.TTL == 0 {
			t.Signer.TTL = min(t.Timeout+time.Minute, 300*time.Second)
		}
		secretHeaders := t.SecretHeaders
		if t.Auth.HMAC != nil {
			secretHeaders = append(slices.Clone(secretHeaders), t.Auth.HMAC.header())
		}
		l := &loop{d: d, t: t, kick: make(chan struct{}, 1), breaker: t.Breaker, redact: relay.NewRedactor(secretHeaders, t.Redact)}
		if l.breaker == nil {
			l.breaker = &Breaker{}
		}
		if t.Rate > 0 {
			l.limits = append(l.limits, rate.NewLimiter(rate.Limit(t.Rate), max(1, int(t.Rate))))
		}
		if t.RatePerMinute > 0 {
			l.limits = append(l.limits, rate.NewLimiter(rate.Limit(t.RatePerMinute/60), 1))
		}
		if t.DailyBudget > 0 {
			l.budget = &budget{limit: t.DailyBudget}
		}
		l.client = &retryablehttp.Client{
			HTTPClient: &http.Client{
				Transport:     transport(t.AllowPrivate || t.Kind == "wordpress", t.Concurrency),
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			},
			// It logs the URL with its query, and errors that repeat it.
			Logger:       l.redact.LeveledLogger(logger),
			RetryWaitMin: 50 * time.Millisecond,
			RetryWaitMax: 400 * time.Millisecond,
			RetryMax:     2,
			CheckRetry:   retryConnErrors,
			Backoff:      retryablehttp.DefaultBackoff,
			ErrorHandler: retryablehttp.PassthroughErrorHandler,
		}
		l.client.PrepareRetry = func(r *http.Request) error {
			// A fresh token (new jti) and timestamp for each quick retry.
			body, _ := r.Context().Value(bodyKey{}).([]byte)
			return l.authorize(r.Header, r.Header.Get("Idempotency-Key"), body, d.Now())
		}
		d.targets = append(d.targets, l)
		d.byName[t.Name] = l
	}
	return d
}

// Notify wakes every target loop (new deliveries were queued).
func (d *Dispatcher) Notify() {
	for _, l := range d.targets {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// TargetState is a target's delivery health and guardrails, for stats.
type TargetState struct {
	Breaker      string    `json:"breaker"`
	BreakerSince time.Time `json:"breaker_since,omitzero"`
	RetryAt      time.Time `json:"breaker_retry_at,omitzero"`
	InFlight     int       `json:"in_flight"`
	Concurrency  int       `json:"concurrency"`
	// RatePerMinute is the configured cap (0 = none).
	RatePerMinute float64 `json:"rate_per_minute,omitempty"`
	// Budget is the daily request budget, when the target has one.
	Budget *BudgetState `json:"budget,omitempty"`
	// Waiting says why due deliveries are held back now: "budget",
	// "breaker", "rate", or "" when they are not.
	Waiting string `json:"waiting,omitempty"`
}

// Breakers reports each target's breaker state (for metrics).
func (d *Dispatcher) Breakers() map[string]string {
	out := make(map[string]string, len(d.targets))
	for _, l := range d.targets {
		s, _, _ := l.breaker.State()
		out[l.t.Name] = s
	}
	return out
}

// Targets reports each target's breaker state, load and guardrails.
func (d *Dispatcher) Targets() map[string]TargetState {
	out := make(map[string]TargetState, len(d.targets))
	now := d.Now()
	for _, l := range d.targets {
		s, since, retry := l.breaker.State()
		ts := TargetState{Breaker: s, BreakerSince: since, RetryAt: retry, InFlight: int(l.inflight.Load()),
			Concurrency: l.t.Concurrency, RatePerMinute: l.t.RatePerMinute}
		if l.budget != nil {
			b := l.budget.state(now)
			ts.Budget = &b
		}
		if w, ok := l.waiting.Load().(string); ok {
			ts.Waiting = w
		}
		out[l.t.Name] = ts
	}
	return out
}

// Budgets reports the daily request budget of each target that has one.
func (d *Dispatcher) Budgets() map[string]BudgetState {
	out := map[string]BudgetState{}
	now := d.Now()
	for _, l := range d.targets {
		if l.budget != nil {
			out[l.t.Name] = l.budget.state(now)
		}
	}
	return out
}

// Running reports whether Run is running and not draining.
func (d *Dispatcher) Running() bool { return d.running.Load() }

// Run delivers until ctx is done, then waits for the attempts in flight to
// end (each is bounded by its target's timeout) and returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	wait := d.Start(ctx)
	wait()
	return nil
}

// Start launches the target loops and returns at once; Running is true when
// it returns. The returned function blocks until ctx is done and the
// attempts in flight have ended.
func (d *Dispatcher) Start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for _, l := range d.targets {
		wg.Go(func() { l.run(ctx) })
	}
	d.running.Store(true)
	return func() {
		<-ctx.Done()
		d.running.Store(false)
		wg.Wait()
	}
}

// loop schedules one target's deliveries.
type loop struct {
	d        *Dispatcher
	t        Target
	client   *retryablehttp.Client
	limits   []*rate.Limiter // rate and rate_per_minute
	budget   *budget         // nil: no daily budget
	kick     chan struct{}
	breaker  *Breaker
	redact   *relay.Redactor // what is kept out of records and logs
	inflight atomic.Int32
	waiting  atomic.Value // string: why deliveries wait (TargetState.Waiting)
}

func (l *loop) lease() time.Duration {
	// Long enough for the attempt and its quick connection retries.
	return 3*l.t.Timeout + 30*time.Second
}

func (l *loop) run(ctx context.Context) {
	log := l.d.Logger.With(slog.String(relay.LogKeyTarget, l.t.Name))
	inflight := 0
	done := make(chan struct{}, l.t.Concurrency)
	// Attempts outlive ctx so that shutdown lets them finish; each is
	// bounded by the target timeout.
	actx := context.WithoutCancel(ctx)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			for ; inflight > 0; inflight-- {
				<-done
			}
			return
		}
		now := l.d.Now()
		free := l.t.Concurrency - inflight
		// The guardrails: requests per second/minute and the daily budget
		// bound what may be claimed now; then the breaker.
		want, held, until := l.guard(ctx, now, free)
		allowed := l.breaker.Allow(now, want)
		if allowed > 0 {
			jobs, err := l.d.Queue.Claim(ctx, l.t.Name, now, allowed, l.lease())
			if err != nil && ctx.Err() == nil {
				log.Error("claim", slog.String(relay.LogKeyError, err.Error()))
			}
			if len(jobs) == 0 {
				l.breaker.Release() // an unused half-open probe
			}
			l.spend(ctx, now, len(jobs))
			for _, job := range jobs {
				inflight++
				l.inflight.Add(1)
				go func() {
					l.attempt(actx, job)
					l.inflight.Add(-1)
					done <- struct{}{}
				}()
			}
			if len(jobs) == allowed {
				// Every slot we may use is busy; wait for one to free up.
				free = 0
			}
		}
		wait := 5 * time.Second
		switch w := l.breaker.Wait(now); {
		case w > 0:
			wait, free = w, 0 // open: nothing is claimed until the probe time
			held = "breaker"
		case want == 0 && free > 0:
			// Held back by a guardrail: look again when it lets one through
			// (or sooner, when woken).
			wait, free = min(wait, max(until.Sub(now), 10*time.Millisecond)), 0
		}
		l.waiting.Store(held)
		if free > 0 {
			if at, ok, err := l.d.Queue.NextDue(ctx, l.t.Name); err == nil && ok {
				wait = min(wait, max(at.Sub(l.d.Now()), 10*time.Millisecond))
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-l.kick:
		case <-done:
			inflight--
			// Take every other attempt that ended meanwhile, and with many
			// slots wait until a quarter of them are free: claims are store
			// commits, and one claim of many shares one fsync.
			for drained := false; !drained; {
				select {
				case <-done:
					inflight--
				default:
					drained = true
				}
			}
			for batch := max(1, l.t.Concurrency/4); inflight > 0 && l.t.Concurrency-inflight < batch; inflight-- {
				select {
				case <-done:
				case <-time.After(2 * time.Millisecond):
					inflight++ // nothing more ended soon: claim what is free now
					batch = 0
				}
			}
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

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
	case errors.Is(err, errTemplate):
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
		res.Status, res.Reason = relay.DeliveryDead, fmt.Sprintf("HTTP %d is not retryable: %s", status, snippet)
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
	if errors.Is(err, errTemplate) {
		l.breaker.Release()
	} else {
		l.breaker.Record(now, res.Status == relay.DeliverySucceeded || resultErr != nil || (err == nil && !Retryable(status)) || errors.Is(err, ErrBlockedAddress))
	}
	if err := l.d.Queue.Complete(context.WithoutCancel(ctx), res); err != nil {
		l.d.Logger.Error("complete", slog.String(relay.LogKeyEventID, job.EventID), slog.String(relay.LogKeyTarget, job.Target), slog.String(relay.LogKeyError, err.Error()))
	}
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

// send makes the HTTP request. It returns the status (0 on network errors),
// the response header and the answer: its first 512 bytes, or, for a
// target with ReplyTo, up to MaxAnswer+1 bytes.
func (l *loop) send(ctx context.Context, job relay.Job, reqID string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, l.t.Timeout)
	defer cancel()
	body, h, err := l.request(job, reqID, l.d.Now())
	if err != nil {
		return 0, nil, nil, err
	}
	ctx = context.WithValue(ctx, bodyKey{}, body)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, l.t.URL, body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("request: %w", err)
	}
	req.Header = h
	if l.d.Tracer != nil {
		tracing.Inject(ctx, req.Header) // the attempt's span, started by attempt
	} else {
		req.Header.Set("Traceparent", relay.ChildTraceparent(job.TraceParent))
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, nil, cleanErr(err)
	}
	defer resp.Body.Close()
	keep := int64(512)
	if l.t.ReplyTo != "" {
		keep = l.d.MaxAnswer + 1
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, keep))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err := checkWordPressAnswer(l.t.Kind, resp); err != nil {
		return resp.StatusCode, resp.Header, answer, err
	}
	return resp.StatusCode, resp.Header, answer, nil
}

// errNotREST is a 2xx answer from a wordpress target that did not come from
// the plugin's REST route.
var errNotREST = errors.New("not a REST answer")

// checkWordPressAnswer refuses a 2xx HTML answer of a wordpress target:
// with plain permalinks, /wp-json/... serves the site's home page as 200
// text/html, and counting that as delivered would lose the event silently.
// It is retried, so a site whose permalinks are fixed recovers.
func checkWordPressAnswer(kind string, resp *http.Response) error {
	if kind != "wordpress" || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil
	}
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(strings.ToLower(ct), "text/html") {
		return nil
	}
	return fmt.Errorf("%w: the wordpress target answered %d with Content-Type %q; the plugin's REST route did not handle it (plugin inactive, or plain permalinks: use ?rest_route=/wprelay/v1/events in the target URL)", errNotREST, resp.StatusCode, ct)
}

// bodyKey carries the request body to PrepareRetry.
type bodyKey struct{}

// retryConnErrors retries inside one attempt only when the connection could
// not be made or was reset before an answer; status codes and timeouts are
// left to the queue's schedule.
func retryConnErrors(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil || err == nil {
		return false, nil
	}
	if errors.Is(err, ErrBlockedAddress) {
		return false, err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true, nil
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true, nil
	}
	return false, nil
}

// cleanErr shortens the error chain of a failed request to what an operator
// needs ("dial tcp 127.0.0.1:9: connection refused", "timeout").
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timeout: %w", err)
	}
	return err
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}
