package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lmittmann/tint"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/relay/deliver"
	"github.com/wprelay/wprelay/relay/ingress"
	"github.com/wprelay/wprelay/relay/metrics"
	"github.com/wprelay/wprelay/relay/provider"
	"github.com/wprelay/wprelay/relay/tracing"
	"github.com/wprelay/wprelay/store"
	"github.com/wprelay/wprelay/store/mysql"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "Run the sidecar: the public webhook listener, the dispatcher and the admin API.\n"+
		"Without --config it reads ./wprelay.yaml when present, else runs on an embedded default\n"+
		"(data in --data-dir, a wordpress source, secrets generated once and kept there).",
		"  wprelay serve --config /etc/wprelay/wprelay.yaml\n  WPRELAY_SITE_URL=https://example.com wprelay serve --data-dir /var/lib/wprelay", stderr)
	cfgPath := fs.String("config", os.Getenv("WPRELAY_CONFIG"), "config file (default ./wprelay.yaml when present; env WPRELAY_CONFIG)")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir)")
	listen := fs.String("listen", "", "public listener address (overrides listen)")
	adminListen := fs.String("admin-listen", "", "admin listener address (overrides admin.listen)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// The heap of a serving sidecar is small (a few MiB live); letting it
		// grow to three times that between collections rather than two cut
		// GC work enough for 10-15 % more ingest throughput (BENCH.md), well
		// inside the memory target. GOGC (and GOMEMLIMIT) still win.
		debug.SetGCPercent(200)
	}
	overrides := func(cfg *config.Config) {
		if *listen != "" {
			cfg.Listen = *listen
		}
		if *adminListen != "" {
			cfg.Admin.Listen = *adminListen
		}
	}
	m := &Main{}
	path := resolveConfigPath(*cfgPath)
	if path == "" {
		// The embedded default makes its secrets in the data dir: bind
		// the listeners first, so that a port in use creates nothing.
		pre := config.Default()
		overrides(&pre)
		if err := m.listen(pre); err != nil {
			return err
		}
	}
	cfg, banner, err := loadConfig(path, *dataDir)
	if err == nil {
		overrides(&cfg)
		err = validConfig(path, cfg)
	}
	if err != nil {
		m.closeListeners()
		return usageError{err}
	}
	if banner != "" {
		fmt.Fprint(stdout, banner)
	}
	logger := newLogger(cfg.Log, stderr)
	ctx, cancel := signalContext()
	defer cancel()

	m.Config, m.Logger = cfg, logger
	if err := m.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down", slog.Duration(relay.LogKeyGrace, cfg.Shutdown.D()))
	return m.Close()
}

// resolveConfigPath returns the config file serve reads: path, else
// ./wprelay.yaml when present, else "" (the embedded default).
func resolveConfigPath(path string) string {
	if path == "" {
		if _, err := os.Stat("wprelay.yaml"); err == nil {
			return "wprelay.yaml"
		}
	}
	return path
}

// loadConfig reads the config file, or builds the embedded default. banner
// is what to print once (fresh default secrets). It does not validate.
func loadConfig(path, dataDir string) (config.Config, string, error) {
	path = resolveConfigPath(path)
	if path == "" {
		return defaultConfig(dataDir)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return config.Config{}, "", fmt.Errorf("read config: %w", err)
	}
	cfg, err := parseConfig(path, data, config.Env{Lookup: os.LookupEnv, ReadFile: os.ReadFile, Dir: filepath.Dir(path)})
	if err != nil {
		return cfg, "", err
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	} else {
		cfg.DataDir = relativeTo(path, cfg.DataDir)
	}
	cfg.TLS.CertFile = relativeTo(path, cfg.TLS.CertFile)
	cfg.TLS.KeyFile = relativeTo(path, cfg.TLS.KeyFile)
	return cfg, "", nil
}

// relativeTo resolves a relative path in the config file against the
// file's directory, not wherever the service happens to start.
func relativeTo(configPath, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(configPath), p)
}

// newLogger builds the process logger: tint on a terminal, JSON otherwise
// or when configured.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	text := c.Format == "text"
	if c.Format == "" || c.Format == "auto" {
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				text = true
			}
		}
	}
	if text {
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Main is the whole daemon: store, ingress, dispatcher and admin API.
type Main struct {
	Config config.Config
	Logger *slog.Logger

	Store      storeBackend // the configured store
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
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
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
	m.Store = db
	m.DB, _ = db.(*store.DB)

	sources, err := buildSources(cfg)
	if err != nil {
		return err
	}
	targets, err := buildTargets(cfg)
	if err != nil {
		return err
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
	m.Dispatcher = deliver.New(db, targets, log.With(relay.LogKeyComponent, "deliver"))
	m.Dispatcher.Tracer = tracer
	m.Dispatcher.Counters = db
	m.Dispatcher.UserAgent = "wprelay/" + version
	m.Dispatcher.Metrics = m.Metrics
	m.Dispatcher.Router = router
	m.Dispatcher.ResultTTL = cfg.Retention.Dedupe.D()
	m.Dispatcher.MaxAnswer = cfg.Limits.MaxBody
	m.Metrics.Register(&metrics.Gauges{Stats: db.Stats, Size: db.Size, Breakers: m.Dispatcher.Breakers, Now: time.Now})

	in := ingress.New(db, router, sources, log.With(relay.LogKeyComponent, "ingress"))
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

	api := admin.New(db, cfg.Admin.Token.Reveal(), log.With(relay.LogKeyComponent, "admin"))
	api.Version = version
	if m.DB != nil {
		api.Backup = m.DB
	}
	api.Notify = m.Dispatcher.Notify
	api.Targets = m.targetHealth
	api.Queue, api.DedupeTTL, api.MaxQueue = db, cfg.Retention.Dedupe.D(), cfg.Limits.MaxQueue
	api.Router, api.Preview = router, m.Dispatcher.Preview
	api.Handle(http.MethodGet, "/metrics", m.Metrics.Handler())
	api.Checks = func(ctx context.Context) map[string]string {
		checks := map[string]string{"store": "ok", "dispatcher": "ok", "draining": "ok"}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := db.Stats(ctx); err != nil {
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
		for {
			now := time.Now()
			n, err := m.Store.Prune(ctx, now, now.Add(-m.Config.Retention.Events.D()), 500)
			if err != nil {
				if ctx.Err() == nil {
					m.Logger.Error("prune", slog.String(relay.LogKeyError, err.Error()))
				}
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
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

func buildSources(cfg config.Config) ([]*ingress.Source, error) {
	var out []*ingress.Source
	for i, s := range cfg.Sources {
		v, err := provider.New(s.ProviderOptions())
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		src := &ingress.Source{Name: s.Name, Kind: s.Kind, Verifier: v, ContentTypes: s.ContentTypes, MaxBody: s.MaxBody, PublicURL: s.PublicURL,
			Redact: sourceRedactor(cfg, i)}
		if len(src.ContentTypes) == 0 {
			src.ContentTypes = provider.ContentTypes(v) // e.g. slack: JSON and forms
		}
		keys := func(secrets []config.Secret) ([][]byte, error) {
			var ks [][]byte
			for _, sec := range secrets {
				k, err := v.Key(sec.Reveal())
				if err != nil {
					return nil, fmt.Errorf("source %s: %w", s.Name, err)
				}
				ks = append(ks, k)
			}
			return ks, nil
		}
		if len(s.Secrets) > 0 {
			ks, err := keys(s.Secrets)
			if err != nil {
				return nil, err
			}
			src.Tenants = append(src.Tenants, ingress.Tenant{Keys: ks})
		}
		for _, t := range s.Tenants {
			ks, err := keys(t.Secrets)
			if err != nil {
				return nil, err
			}
			src.Tenants = append(src.Tenants, ingress.Tenant{Name: t.Name, Keys: ks})
		}
		for _, a := range s.AllowIPs {
			p, err := config.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("source %s: allow_ips: %w", s.Name, err)
			}
			src.AllowIPs = append(src.AllowIPs, p)
		}
		out = append(out, src)
	}
	return out, nil
}

// sourceRedactor is the redaction policy of the requests stored for source
// i: its configured signature header (kind hmac), and every value of the
// configuration's ${…} references.
func sourceRedactor(cfg config.Config, i int) *relay.Redactor {
	var headers []string
	if s := cfg.Sources[i]; s.Kind == "hmac" {
		headers = append(headers, s.HMAC.Header)
	}
	return relay.NewRedactor(headers, cfg.References(""))
}

// logRedactor is what every log line is kept free of: the values of the
// configuration's ${…} references and the targets' credentials.
func logRedactor(cfg config.Config) *relay.Redactor {
	values := cfg.References("")
	for _, t := range cfg.Targets {
		values = append(values, targetCredentials(t)...)
	}
	return relay.NewRedactor(nil, values)
}

// targetCredentials are the secret values of a target's settings.
func targetCredentials(t config.Target) []string {
	var out []string
	for _, sec := range []config.Secret{t.JWTSecret, t.SigningSecret, t.Auth.Bearer} {
		out = append(out, sec.Reveal())
	}
	if a := t.Auth.Basic; a != nil {
		out = append(out, a.Password.Reveal())
	}
	if a := t.Auth.HMAC; a != nil {
		out = append(out, a.Secret.Reveal())
	}
	if a := t.Auth.JWT; a != nil {
		out = append(out, a.Secret.Reveal())
	}
	return out
}

func buildTargets(cfg config.Config) ([]deliver.Target, error) {
	var out []deliver.Target
	for i, t := range cfg.Targets {
		dt := deliver.Target{
			Name: t.Name, Kind: t.Kind, URL: t.URL, Timeout: t.Timeout.D(), MaxAttempts: t.MaxAttempts,
			MaxAge: t.MaxAge.D(), MaxBackoff: t.MaxBackoff.D(), Concurrency: t.Concurrency, Rate: t.Rate,
			SuccessCodes: t.SuccessCodes, AllowPrivate: t.AllowPrivate, ReplyTo: t.ReplyTo,
			RatePerMinute: t.RatePerMinute, DailyBudget: t.DailyBudget,
			Signer:  deliver.Signer{Audience: t.Audience},
			Breaker: &deliver.Breaker{Failures: t.Breaker.Failures, Cooldown: t.Breaker.Cooldown.D(), MaxCooldown: t.Breaker.MaxCooldown.D()},
		}
		if len(t.Headers) > 0 {
			dt.Headers = map[string]string{}
			for k, v := range t.Headers {
				dt.Headers[k] = v.Reveal()
				if cfg.FromReference(fmt.Sprintf("targets[%d].headers.%s", i, k)) {
					dt.SecretHeaders = append(dt.SecretHeaders, k) // from ${…}: never shown
				}
			}
		}
		if t.JWTSecret != "" {
			dt.Signer.JWTSecret = []byte(t.JWTSecret.Reveal())
		}
		if t.SigningSecret != "" {
			k, err := config.StandardKey(t.SigningSecret)
			if err != nil {
				return nil, fmt.Errorf("target %s: signing_secret: %w", t.Name, err)
			}
			dt.Signer.SigningKey = k
		}
		switch a := t.Auth; {
		case a.Bearer != "":
			dt.Auth.Bearer = a.Bearer.Reveal()
		case a.Basic != nil:
			dt.Auth.BasicUser, dt.Auth.BasicPassword = a.Basic.Username, a.Basic.Password.Reveal()
		case a.HMAC != nil:
			dt.Auth.HMAC = &deliver.HMACAuth{Key: []byte(a.HMAC.Secret.Reveal()), Header: a.HMAC.Header,
				Prefix: a.HMAC.Prefix, Encoding: a.HMAC.Encoding, TimestampHeader: a.HMAC.TimestampHeader}
		case a.JWT != nil:
			dt.Signer.JWTSecret = []byte(a.JWT.Secret.Reveal())
			if a.JWT.Audience != "" {
				dt.Signer.Audience = a.JWT.Audience
			}
		}
		// Secret values never recorded: every value from ${…} in the
		// target's settings, and its credentials.
		dt.Redact = append(cfg.References(fmt.Sprintf("targets[%d]", i)), targetCredentials(t)...)
		if t.Template != "" {
			tp, err := deliver.ParseTemplate(t.Name, t.Template)
			if err != nil {
				return nil, fmt.Errorf("target %s: template: %w", t.Name, err)
			}
			dt.Template = tp
		}
		out = append(out, dt)
	}
	return out, nil
}

// buildRouter returns the router of cfg's routes, with the targets that
// order their deliveries by subject.
func buildRouter(cfg config.Config) *relay.Router {
	routes := make([]relay.Route, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		routes = append(routes, relay.Route{Name: r.Name, Source: r.Source, Tenant: r.Tenant, Types: r.Types,
			Where: r.Where, To: r.To, DryRun: r.DryRun, MirrorTo: r.MirrorTo})
	}
	router := relay.NewRouter(routes)
	for _, t := range cfg.Targets {
		if t.Ordering == "subject" {
			if router.Ordering == nil {
				router.Ordering = map[string]relay.Order{}
			}
			router.Ordering[t.Name] = relay.Order{Coalesce: t.Coalesce, Skip: t.OutOfOrder == "skip"}
		}
	}
	return router
}

// buildSealer returns the store's sealer, or nil when encryption is off.
func buildSealer(c config.Encryption) (*store.Sealer, error) {
	if len(c.Keys) == 0 {
		return nil, nil
	}
	var keys []store.Key
	for _, k := range c.Keys {
		b, err := config.DecodeKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("encryption key %q: %w", k.ID, err)
		}
		keys = append(keys, store.Key{ID: k.ID, Secret: b})
	}
	return store.NewSealer(keys)
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

// storeBackend is what Main needs from a store: the bbolt file or the
// MySQL/MariaDB database.
type storeBackend interface {
	relay.Queue
	admin.Store
	relay.Pruner
	relay.Counters
	Size() int64
	ResealAll(ctx context.Context, batch int, progress func(done int)) (int, error)
	Close() error
}

// openStore opens the store that cfg.Store selects: the bbolt file in the
// data dir, or the tables of store.dsn (migrating their schema first).
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, onCommit func(int, time.Duration)) (storeBackend, error) {
	if cfg.Store.Kind == "mysql" {
		var sealer *mysql.Sealer
		if len(cfg.Encryption.Keys) > 0 {
			var keys []mysql.Key
			for _, k := range cfg.Encryption.Keys {
				b, err := config.DecodeKey(k.Key)
				if err != nil {
					return nil, fmt.Errorf("encryption key %q: %w", k.ID, err)
				}
				keys = append(keys, mysql.Key{ID: k.ID, Secret: b})
			}
			var err error
			if sealer, err = mysql.NewSealer(keys); err != nil {
				return nil, err
			}
		}
		db, err := mysql.Open(ctx, mysql.Options{
			DSN: cfg.Store.DSN.Reveal(), TablePrefix: cfg.Store.TablePrefix, MaxConns: cfg.Store.MaxConns,
			PendingTTL: time.Second, Logger: log, Sealer: sealer, OnCommit: onCommit,
		})
		if err != nil {
			return nil, err
		}
		return db, nil
	}
	sealer, err := buildSealer(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, "wprelay.db"), store.Options{
		Commit: cfg.Store.Commit, BatchDelay: time.Duration(cfg.Store.BatchDelay), Logger: log, OnCommit: onCommit, Sealer: sealer,
	})
	if err != nil {
		return nil, err
	}
	return db, nil
}
