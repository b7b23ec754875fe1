package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/wprelay/wprelay/store"
)

func cmdRotateKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rotate-key", "Re-seal every stored body and envelope with the first key of encryption.keys.\n"+
		"To rotate: put the new key first and keep the old one listed, then either restart the\n"+
		"sidecar (it re-seals in the background) or stop it and run this command; once done,\n"+
		"remove the old key. Also turns a store written before encryption was on into a sealed one.",
		"  wprelay rotate-key --config /etc/wprelay/wprelay.yaml\n"+
			"  wprelay rotate-key --config /etc/wprelay/wprelay.yaml --data-dir /var/lib/wprelay", stderr)
	cfgPath := fs.String("config", "", "config file (required: it names the keys and the data dir)")
	dataDir := fs.String("data-dir", "", "the data dir whose store is re-sealed (overrides data_dir, as serve --data-dir does)")
	batch := fs.Int("batch", 500, "records per transaction")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageError{fmt.Errorf("--config is required")}
	}
	cfg, _, err := loadConfig(*cfgPath, *dataDir)
	if err != nil {
		return usageError{err}
	}
	if err := validConfig(*cfgPath, cfg); err != nil {
		return usageError{err}
	}
	if len(cfg.Encryption.Keys) == 0 {
		return usageError{fmt.Errorf("encryption.keys is empty: add a key first (head -c32 /dev/urandom | base64)")}
	}
	if cfg.Store.Kind != "mysql" {
		// Re-sealing is for a store that exists: never create one.
		path := filepath.Join(cfg.DataDir, "wprelay.db")
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no store to re-seal: %w (is the data dir right? data_dir in %s, or --data-dir)", err, *cfgPath)
		}
	}
	// The configured store, bbolt or MySQL, opened with the configured keys.
	db, err := openStore(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: stop the sidecar first (systemctl stop wprelay), or let it re-seal in the background: it does at start", err)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.ResealAll(context.Background(), *batch, func(done int) {
		fmt.Fprintf(stderr, "\rre-sealed %d records…", done)
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-sealed %s with key %q; the other keys can now be removed from encryption.keys\n", plural(n, "record", "records"), cfg.Encryption.Keys[0].ID)
	return nil
}
