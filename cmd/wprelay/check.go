package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/wprelay/wprelay/store"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "Check the store file's consistency (bbolt's page check). Run it while the\n"+
		"sidecar is stopped: the file is locked while it serves.",
		"  wprelay check --data-dir /var/lib/wprelay", stderr)
	dataDir := fs.String("data-dir", "./data", "data directory holding wprelay.db")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := filepath.Join(*dataDir, "wprelay.db")
	db, err := store.OpenReadOnly(path, store.Options{LockTimeout: 2e9})
	if err != nil {
		return fmt.Errorf("%w (stop the sidecar first, or check another data dir)", err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		return fmt.Errorf("%s is damaged:\n%w\nRestore it from a backup, or export what can be read with wprelay export", path, err)
	}
	fmt.Fprintf(stdout, "%s: ok (%d bytes)\n", path, db.Size())
	return nil
}
