package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/lmittmann/tint"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/config"
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
	cfg, err := parseConfig(path, data, config.Env{Lookup: os.LookupEnv, ReadFile: readSecretFile, Dir: filepath.Dir(path)})
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
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}))
}

// durationText writes a duration as people read it ("10s"), not as the
// JSON handler would (10000000000 nanoseconds).
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
