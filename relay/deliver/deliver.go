// Package deliver sends due deliveries to their targets: one scheduling loop
// per target claims from the queue, runs at most Concurrency attempts at
// once, and records each outcome (succeeded, retrying at next_at, or dead).
//
// Short bursts of connection errors are retried inside one attempt by
// go-retryablehttp (with a fresh JWT each time); the long schedule lives in
// the queue, so a restart does not forget it.
package deliver

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/metrics"
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
	// Raw sends the provider's request body as it came (with its
	// Content-Type) instead of the envelope: format raw. It needs the
	// Dispatcher's Raws.
	Raw          bool
	SuccessCodes []int    // default any 2xx
	AllowPrivate bool     // http targets only; wordpress targets are local by nature
	Breaker      *Breaker // nil: the defaults (5 failures, 30 s cool-down)
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

// RawReader gives the request an event came in (a store's Raw).
type RawReader interface {
	Raw(ctx context.Context, id string) (*relay.Raw, error)
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
	// MaxDepth is the deepest JSON answer that becomes a result (and one
	// that repeats a member name makes none, as at ingest); default 128.
	MaxDepth int
	// Counters keep daily budgets across restarts (cmd passes the store);
	// nil = in memory only.
	Counters relay.Counters
	// Raws gives the requests events came in, for targets with Raw.
	Raws RawReader
	// Settler commits outcomes together with the next claim (cmd passes
	// the bbolt store); nil = each outcome is committed alone (Complete).
	Settler Settler

	targets []*loop
	byName  map[string]*loop
	running atomic.Bool
}

// New returns a dispatcher for targets, with defaults filled in.
func New(q Queue, targets []Target, logger *slog.Logger) *Dispatcher {
	d := &Dispatcher{Queue: q, Logger: logger, Now: time.Now, Rand: rand.Float64, BaseDelay: time.Second, UserAgent: "wprelay",
		ResultTTL: 168 * time.Hour, MaxAnswer: 512 << 10, MaxDepth: 128, byName: map[string]*loop{}}
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
