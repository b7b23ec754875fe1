// Main, the whole daemon: what Start opens and wires, in which order, and
// how Close takes it down again (outside-in).

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/relay/deliver"
	"github.com/wprelay/wprelay/relay/ingress"
	"github.com/wprelay/wprelay/relay/metrics"
	"github.com/wprelay/wprelay/relay/tracing"
	"github.com/wprelay/wprelay/store"
)

// Main is the whole daemon: store, ingress, dispatcher and admin API.
type Main struct {
	Config config.Config
	Logger *slog.Logger

	Store      *openedStore // the configured store
	DB         *store.DB    // Store when it is the bbolt one, else nil
	Dispatcher *deliver.Dispatcher
	Metrics    *metrics.Metrics
	public     *http.Server
	admin      *http.Server
	publicLn   net.Listener
	adminLn    net.Listener
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	draining   atomic.Bool

	shutdownTracing func(context.Context) error
}

// Start opens the store and starts the listeners and the dispatcher. When
// it fails, what it had opened is closed again, in reverse order, on one
// path: the store, tracing (its exporter) and the listeners.
func (m *Main) Start(ctx context.Context) (err error) {
	cfg := m.Config
	// Every log line, the libraries' included, is kept free of secret values.
	m.Logger = slog.New(logRedactor(cfg).Handler(m.Logger.Handler()))
	log := m.Logger
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	// The listeners come first: a port in use leaves nothing behind.
	if m.publicLn == nil {
		if err := m.listen(cfg); err != nil {
			return err
		}
	}
	undo = append(undo, m.closeListeners)
	if err := privateDir(cfg.DataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	var sourceNames, targetNames []string
	for _, s := range cfg.Sources {
		sourceNames = append(sourceNames, s.Name)
	}
	for _, t := range cfg.Targets {
		targetNames = append(targetNames, t.Name)
	}
	m.Metrics = metrics.New(sourceNames, targetNames)
	db, err := openStore(ctx, cfg, log.With(relay.LogKeyComponent, "store"), m.Metrics.Commit)
	if err != nil {
		return err
	}
	undo = append(undo, func() { db.Close() })
	m.Store, m.DB = db, db.Bolt

	sources, err := buildSources(cfg)
	if err != nil {
		return err
	}
	targets, err := buildTargets(cfg)
	if err != nil {
		return err
	}
	for _, w := range templateWarnings(cfg, targets) {
		log.Warn("template fails on the sample event of a source that routes to its target: check that real events have the field, or guard it with with/default",
			slog.String(relay.LogKeyTarget, w.Target), slog.String(relay.LogKeySource, w.Source), slog.String(relay.LogKeyKind, w.Kind),
			slog.String(relay.LogKeyField, w.Field), slog.String(relay.LogKeyError, w.Err.Error()))
	}
	router := buildRouter(cfg)

	tracer, shutdownTracing, err := tracing.Setup(tracing.Options{
		Endpoint: cfg.Tracing.OTLPEndpoint, SampleRatio: cfg.Tracing.SampleRatio,
		BatchTimeout: cfg.Tracing.BatchTimeout.D(), Service: cfg.Tracing.ServiceName, Version: version,
	})
	if err != nil {
		return err
	}
	undo = append(undo, func() { _ = shutdownTracing(context.WithoutCancel(ctx)) })
	m.shutdownTracing = shutdownTracing
	m.Dispatcher = deliver.New(db.Queue, targets, log.With(relay.LogKeyComponent, "deliver"))
	m.Dispatcher.Tracer = tracer
	m.Dispatcher.Counters = db.Counters
	m.Dispatcher.Settler = db.Settler
	m.Dispatcher.UserAgent = "wprelay/" + version
	m.Dispatcher.Metrics = m.Metrics
	m.Dispatcher.Router = router
	m.Dispatcher.Raws = db.Admin // format raw targets
	m.Dispatcher.ResultTTL = cfg.Retention.Dedupe.D()
	m.Dispatcher.MaxAnswer, m.Dispatcher.MaxDepth = cfg.Limits.MaxBody, cfg.Limits.MaxDepth
	m.Metrics.Register(&metrics.Gauges{Stats: db.Admin.Stats, Size: db.Size, Breakers: m.Dispatcher.Breakers, Now: time.Now})

	in := ingress.New(db.Queue, router, sources, log.With(relay.LogKeyComponent, "ingress"))
	in.MaxBody = cfg.Limits.MaxBody
	in.MaxQueue = cfg.Limits.MaxQueue
	in.MaxBatch, in.MaxDepth = cfg.Limits.MaxBatch, cfg.Limits.MaxDepth
	in.DedupeTTL = cfg.Retention.Dedupe.D()
	in.Notify = m.Dispatcher.Notify
	in.Preview = m.Dispatcher.Preview
	in.Metrics = m.Metrics
	in.Tracer = tracer
	in.Limits = &ingress.Limits{SourceRate: cfg.Limits.SourceRate, IPRate: cfg.Limits.IPRate}
	for _, a := range cfg.TrustedProxies {
		p, _ := config.ParsePrefix(a) // checked by Validate
		in.Limits.TrustedProxies = append(in.Limits.TrustedProxies, p)
	}

	api := admin.New(db.Admin, cfg.Admin.Token.Reveal(), log.With(relay.LogKeyComponent, "admin"))
	api.Version = version
	api.Backup = db.Backup
	api.Notify = m.Dispatcher.Notify
	api.Targets = m.targetHealth
	api.Queue, api.DedupeTTL, api.MaxQueue = db.Queue, cfg.Retention.Dedupe.D(), cfg.Limits.MaxQueue
	api.Router, api.Preview = router, m.Dispatcher.Preview
	api.Handle(http.MethodGet, "/metrics", m.Metrics.Handler())
	api.Checks = func(ctx context.Context) map[string]string {
		checks := map[string]string{"store": "ok", "dispatcher": "ok", "draining": "ok"}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := db.Admin.Stats(ctx); err != nil {
			checks["store"] = "cannot read: " + err.Error()
		}
		if !m.Dispatcher.Running() {
			checks["dispatcher"] = "not running"
		}
		if m.draining.Load() {
			checks["draining"] = "shutting down"
		}
		return checks
	}

	var public http.Handler = in
	if cfg.TLS.CertFile != "" && cfg.TLS.HSTS > 0 {
		public = hsts(in, cfg.TLS.HSTS.D())
	}
	m.public = newServer(public, cfg.HTTP)
	if m.adminLn != nil {
		m.admin = newServer(api, cfg.HTTP)
	}

	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	waitDispatcher := m.Dispatcher.Start(dctx)
	m.wg.Go(waitDispatcher)
	m.wg.Go(func() { m.prune(dctx) })
	if len(cfg.Encryption.Keys) > 0 {
		// Records written before encryption was on, or sealed with an
		// older key, are re-sealed with the first key in the background.
		m.wg.Go(func() {
			n, err := db.ResealAll(dctx, 200, nil)
			if err != nil && dctx.Err() == nil {
				log.Error("reseal", slog.String(relay.LogKeyError, err.Error()))
			} else if n > 0 {
				log.Info("resealed records with the current encryption key", slog.Int(relay.LogKeyRecords, n))
			}
		})
	}
	m.wg.Go(func() { serve(log, m.public, m.publicLn, "public") })
	if m.admin != nil {
		m.wg.Go(func() { serve(log, m.admin, m.adminLn, "admin") })
	}
	attrs := []any{slog.String(relay.LogKeyVersion, version), slog.String(relay.LogKeyListen, m.publicLn.Addr().String()),
		slog.String(relay.LogKeyDataDir, cfg.DataDir), slog.Int(relay.LogKeySources, len(sources)), slog.Int(relay.LogKeyTargets, len(targets))}
	if m.adminLn != nil {
		attrs = append(attrs, slog.String(relay.LogKeyAdmin, m.adminLn.Addr().String()))
	}
	log.Info("wprelay ready", attrs...)
	return nil
}

// PublicAddr is the public listener's address (useful with ":0").
func (m *Main) PublicAddr() string { return m.publicLn.Addr().String() }

// AdminAddr is the admin listener's address, or "".
func (m *Main) AdminAddr() string {
	if m.adminLn == nil {
		return ""
	}
	return m.adminLn.Addr().String()
}

// Close shuts down outside-in: stop intake (finishing requests in flight),
// stop claiming and let attempts in flight end, then close the store.
func (m *Main) Close() error {
	m.draining.Store(true)
	grace := m.Config.Shutdown.D()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := m.public.Shutdown(ctx); err != nil {
		m.Logger.Warn("public listener shutdown", slog.String(relay.LogKeyError, err.Error()))
	}
	m.cancel()
	done := make(chan struct{})
	go func() {
		if m.admin != nil {
			_ = m.admin.Shutdown(ctx)
		}
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		m.Logger.Warn("attempts still in flight after the grace period; they will be retried after restart")
	}
	if err := m.shutdownTracing(ctx); err != nil {
		m.Logger.Warn("tracing: spans not flushed", slog.String(relay.LogKeyError, err.Error()))
	}
	err := m.Store.Close()
	m.Logger.Info("stopped")
	return err
}

// prune deletes expired keys and old events in small transactions.
func (m *Main) prune(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		start, total := time.Now(), 0
		for {
			now := time.Now()
			n, err := m.Store.Pruner.Prune(ctx, now, now.Add(-m.Config.Retention.Events.D()), 500)
			total += n
			if err != nil {
				if ctx.Err() == nil {
					m.Logger.Error("prune", slog.String(relay.LogKeyError, err.Error()), slog.Int(relay.LogKeyRecords, total))
				}
				break
			}
			if n == 0 {
				break
			}
		}
		if total > 0 {
			// What retention removed: expired idempotency keys, nonces and
			// counters, and finished events older than retention.events.
			m.Logger.Info("retention: pruned expired records", slog.Int(relay.LogKeyRecords, total),
				slog.Duration(relay.LogKeyTook, time.Since(start)))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// targetHealth is each target's breaker state and attempt counts, for the
// admin API's stats.
func (m *Main) targetHealth() map[string]admin.TargetHealth {
	counts := m.Metrics.Attempts()
	out := map[string]admin.TargetHealth{}
	for name, s := range m.Dispatcher.Targets() {
		c := counts[name]
		h := admin.TargetHealth{Breaker: s.Breaker, BreakerSince: s.BreakerSince, RetryAt: s.RetryAt,
			Attempts: c.Attempts, Succeeded: c.Succeeded,
			InFlight: s.InFlight, Concurrency: s.Concurrency, RatePerMinute: s.RatePerMinute, Waiting: s.Waiting}
		if s.Budget != nil {
			h.Budget = s.Budget
		}
		out[name] = h
	}
	return out
}

func newServer(h http.Handler, c config.HTTP) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout.D(),
		ReadTimeout:       c.ReadTimeout.D(),
		WriteTimeout:      c.WriteTimeout.D(),
		IdleTimeout:       c.IdleTimeout.D(),
		MaxHeaderBytes:    c.MaxHeaderBytes,
	}
}

// hsts adds Strict-Transport-Security to every answer.
func hsts(h http.Handler, maxAge time.Duration) http.Handler {
	v := fmt.Sprintf("max-age=%d", int(maxAge.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", v)
		h.ServeHTTP(w, r)
	})
}

func serve(log *slog.Logger, srv *http.Server, ln net.Listener, name string) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("listener", slog.String(relay.LogKeyListener, name), slog.String(relay.LogKeyError, err.Error()))
	}
}
