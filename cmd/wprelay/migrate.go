package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/store"
	"github.com/wprelay/wprelay/store/mysql"
)

// cmdMigrate runs "migrate" (the MySQL schema) or "migrate-store" (copy
// a bbolt store into MySQL).
func cmdMigrate(name string, args []string, stdout, stderr io.Writer) error {
	if name == "migrate-store" {
		return cmdMigrateStore(args, stdout, stderr)
	}
	fs := newFlags("migrate", "Apply the MySQL/MariaDB store's schema migrations (store.kind mysql) and print what\n"+
		"was done. serve applies them at start too; run this alone to migrate before a rolling\n"+
		"upgrade, or with a database user that may change tables when the sidecars' may not.\n"+
		"With store.kind bbolt there is nothing to do (the file's schema is checked at start).",
		"  WPRELAY_MYSQL_DSN='wprelay:pass@tcp(db:3306)/wordpress' wprelay migrate --config /etc/wprelay/wprelay.yaml\n"+
			"  wprelay migrate --config wprelay.yaml --dry-run", stderr)
	cfgPath := fs.String("config", os.Getenv("WPRELAY_CONFIG"), "config file (default ./wprelay.yaml; env WPRELAY_CONFIG)")
	dryRun := fs.Bool("dry-run", false, "only print the migrations that would be applied")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	cfg, err := storeConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Store.Kind != "mysql" {
		fmt.Fprintf(stdout, "store.kind is %s: its schema lives in %s and is checked when serve opens it; nothing to migrate\n",
			cfg.Store.Kind, filepath.Join(cfg.DataDir, "wprelay.db"))
		return nil
	}
	ctx, cancel := signalContext()
	defer cancel()
	r, err := mysql.Migrate(ctx, mysql.Options{DSN: cfg.Store.DSN.Reveal(), TablePrefix: cfg.Store.TablePrefix}, *dryRun)
	if err != nil {
		return err
	}
	verb := "applied"
	if *dryRun {
		verb = "would apply"
	}
	fmt.Fprintf(stdout, "server %s, tables %s*: schema version %d", r.Server, cfg.Store.TablePrefix, r.From)
	if r.To != r.From {
		fmt.Fprintf(stdout, " → %d", r.To)
	}
	fmt.Fprintln(stdout)
	for _, s := range r.Applied {
		fmt.Fprintf(stdout, "  %s %d: %s\n", verb, s.Version, s.Name)
	}
	if len(r.Applied) == 0 {
		fmt.Fprintln(stdout, "  up to date; nothing to apply")
	}
	if !*dryRun {
		fmt.Fprintln(stdout, "history:")
		for _, s := range r.History {
			fmt.Fprintf(stdout, "  %d  %s  by %s  %s\n", s.Version, s.AppliedAt.Format(time.RFC3339), s.AppliedBy, s.Name)
		}
	}
	return nil
}

// storeConfig loads and validates the config for the migrate commands.
func storeConfig(path string) (config.Config, error) {
	if path == "" {
		if _, err := os.Stat("wprelay.yaml"); err != nil {
			return config.Config{}, usageError{errors.New("--config is required (no ./wprelay.yaml)")}
		}
		path = "wprelay.yaml"
	}
	cfg, _, err := loadConfig(path, "")
	if err != nil {
		return cfg, usageError{err}
	}
	if err := validConfig(path, cfg); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

const migrateStoreSynopsis = `Copy a bbolt store (wprelay.db of a stopped sidecar) into the MySQL/MariaDB store of
--config (store.kind mysql), keeping every event as it is: its id, envelope and raw
request, its deliveries with their status, attempts, history and dead letters, and its
idempotency key (expiring retention.dedupe after the event was received). Deliveries
that were in flight become due at once, as after a restart. Events already in the
database are skipped, so the command can be run again after an interruption.

Not copied: the JWT replay cache (its entries expire within minutes of the stop) and
the exact expiry of keys (recomputed as above). Body hashes are recomputed for the
wordpress sources (the only kind that answers 409 to a reused key).

The file is opened read-only, with a shared lock: stop the bbolt sidecar first. See the
README section "Choosing a store" for moving a running site.`

func cmdMigrateStore(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate-store", migrateStoreSynopsis,
		"  systemctl stop wprelay\n"+
			"  wprelay migrate-store --from /var/lib/wprelay --config /etc/wprelay/wprelay-mysql.yaml\n"+
			"  systemctl start wprelay   # now with the mysql config", stderr)
	cfgPath := fs.String("config", os.Getenv("WPRELAY_CONFIG"), "config of the MySQL store (store.kind mysql; its encryption keys open the file too)")
	from := fs.String("from", "", "the bbolt data dir or its wprelay.db (default: the config's data_dir)")
	batch := fs.Int("batch", 200, "events per transaction")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	cfg, err := storeConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Store.Kind != "mysql" {
		return usageError{fmt.Errorf("store.kind is %s: --config must name the MySQL store to copy into", cfg.Store.Kind)}
	}
	path := *from
	if path == "" {
		path = cfg.DataDir
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "wprelay.db")
	}
	sealer, err := buildSealer(cfg.Encryption)
	if err != nil {
		return usageError{err}
	}
	src, err := store.OpenReadOnly(path, store.Options{LockTimeout: 2 * time.Second, Sealer: sealer})
	if err != nil {
		return fmt.Errorf("%w (stop the sidecar that serves it first)", err)
	}
	defer src.Close()

	ctx, cancel := signalContext()
	defer cancel()
	dst, err := openStore(ctx, cfg, newLogger(cfg.Log, io.Discard), nil)
	if err != nil {
		return err
	}
	defer dst.Close()
	db := dst.MySQL // store.kind is mysql (checked above)

	strict := map[string]bool{} // sources whose keys carry a body hash
	for _, s := range cfg.Sources {
		strict[s.Name] = s.Kind == "wordpress"
	}
	start := time.Now()
	var (
		pending       []mysql.Imported
		read, written int
		lastReport    time.Time
	)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		n, err := db.Import(ctx, pending)
		if err != nil {
			return err
		}
		written += n
		pending = pending[:0]
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			fmt.Fprintf(stderr, "%d events read, %d copied…\n", read, written)
		}
		return nil
	}
	dedupe := cfg.Retention.Dedupe.D()
	err = src.Export(ctx, relay.EventFilter{}, func(e *relay.Event, raw *relay.Raw) error {
		read++
		it := mysql.Imported{Event: e, Raw: raw, KeyExpires: e.ReceivedAt.Add(dedupe)}
		if raw != nil && strict[e.Source] {
			it.BodyHash = sha256.Sum256(raw.Body)
		}
		pending = append(pending, it)
		if len(pending) >= *batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("after %d events (%d copied; run again to go on): %w", read, written, err)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "copied %d of %d events from %s into %s (tables %s*) in %s (%.0f events/s); %d were already there\n",
		written, read, path, db.Server(), cfg.Store.TablePrefix, took.Round(time.Millisecond), float64(read)/max(took.Seconds(), 0.001), read-written)
	if s, err := db.Stats(ctx); err == nil {
		fmt.Fprintf(stdout, "the database now holds: events %s; queue depth %d, dead letters %d\n", countsLine(s.Events), s.Pending, s.Dead)
	}
	return nil
}

func countsLine(m map[string]int) string {
	var parts []string
	for _, k := range []string{relay.EventQueued, relay.EventDelivered, relay.EventFailed, relay.EventDiscarded} {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
