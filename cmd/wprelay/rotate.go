package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

func cmdRotateKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rotate-key", "Re-seal every stored body and envelope with the first key of encryption.keys.\n"+
		"To rotate: put the new key first and keep the old one listed, then either restart the\n"+
		"sidecar (it re-seals in the background) or stop it and run this command; once done,\n"+
		"remove the old key. Also turns a store written before encryption was on into a sealed one.",
		"  wprelay rotate-key --config /etc/wprelay/wprelay.yaml", stderr)
	cfgPath := fs.String("config", "", "config file (required: it names the keys and the data dir)")
	batch := fs.Int("batch", 500, "records per transaction")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageError{fmt.Errorf("--config is required")}
	}
	cfg, _, err := loadConfig(*cfgPath, "")
	if err != nil {
		return usageError{err}
	}
	if err := validConfig(*cfgPath, cfg); err != nil {
		return usageError{err}
	}
	if len(cfg.Encryption.Keys) == 0 {
		return usageError{fmt.Errorf("encryption.keys is empty: add a key first (head -c32 /dev/urandom | base64)")}
	}
	// The configured store, bbolt or MySQL, opened with the configured keys.
	db, err := openStore(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		if cfg.Store.Kind == "mysql" {
			return err
		}
		return fmt.Errorf("%w (stop the sidecar first: the bbolt file is locked while it serves)", err)
	}
	defer db.Close()
	n, err := db.ResealAll(context.Background(), *batch, func(done int) {
		fmt.Fprintf(stderr, "\rre-sealed %d records…", done)
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-sealed %d records with key %q; the other keys can now be removed from encryption.keys\n", n, cfg.Encryption.Keys[0].ID)
	return nil
}
