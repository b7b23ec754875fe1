package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"path/filepath"
	"strings"

	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/store"
)

const checkSynopsis = `Check a configuration, a store, or both, without starting anything.

--config FILE validates the configuration alone, with the same code serve uses:
every field, every ${VAR} and ${file:...} (read from this environment and this
machine, so run it as the service would). Each problem is printed with its line
and path (wprelay.yaml:12: sources[0].kind: ...); the exit code is 2 when there is
one, 0 with a one-line summary when there is none.

--data-dir DIR runs bbolt's page check on the store file DIR/wprelay.db. Run it
while the sidecar is stopped: the file is locked while it serves. Without
--config, --data-dir defaults to ./data.`

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", checkSynopsis,
		"  wprelay check --config /etc/wprelay/wprelay.yaml\n"+
			"  wprelay check --config /etc/wprelay/wprelay.yaml --data-dir /var/lib/wprelay\n"+
			"  wprelay check --data-dir /var/lib/wprelay", stderr)
	cfgPath := fs.String("config", "", "validate this config file (nothing is started or created)")
	dataDir := fs.String("data-dir", "", "check the store file wprelay.db in this directory (default ./data without --config)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *cfgPath != "" {
		cfg, _, err := loadConfig(*cfgPath, "")
		if err == nil {
			err = validConfig(*cfgPath, cfg)
		}
		if err != nil {
			return usageError{err}
		}
		fmt.Fprintf(stdout, "%s: ok (%s)\n", *cfgPath, configSummary(cfg))
	} else if *dataDir == "" {
		*dataDir = "./data"
	}
	if *dataDir == "" {
		return nil
	}
	path := filepath.Join(*dataDir, "wprelay.db")
	db, err := store.OpenReadOnly(path, store.Options{LockTimeout: 2e9})
	if errors.Is(err, store.ErrDamaged) {
		return err // names the file and the runbook
	}
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: stop the sidecar first (the file is locked while it serves)", err)
	}
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("no store to check: %w (is --data-dir the sidecar's data dir?)", err)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		return err // store file damaged: … (see the runbook)
	}
	fmt.Fprintf(stdout, "%s: ok (%d bytes)\n", path, db.Size())
	return nil
}

// configSummary is one line about a valid configuration.
func configSummary(cfg config.Config) string {
	where := cfg.DataDir
	if cfg.Store.Kind == "mysql" {
		where = "a MySQL/MariaDB database"
	}
	admin := "admin API off"
	if cfg.Admin.Listen != "" && cfg.Admin.Listen != "off" {
		admin = "admin API on " + cfg.Admin.Listen
	}
	return fmt.Sprintf("%s, %s, %s; listens on %s, %s; store %s in %s",
		plural(len(cfg.Sources), "source", "sources"), plural(len(cfg.Targets), "target", "targets"),
		plural(len(cfg.Routes), "route", "routes"), cfg.Listen, admin, cfg.Store.Kind, where)
}

// plural is "1 source" or "3 sources".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// parseConfig parses the config file at path (its bytes in data, its
// references resolved by env), with its problems in invalidConfig's form.
// serve, check and the docs tests read configs through it.
func parseConfig(path string, data []byte, env config.Env) (config.Config, error) {
	cfg, err := config.Parse(data, env)
	if err != nil {
		// Every problem at once: what could be read is validated too.
		_, all := config.Check(data, env)
		return cfg, invalidConfig(path, cmp.Or(all, err))
	}
	return cfg, nil
}

// validConfig validates cfg, read from path ("" for the embedded default),
// and returns its problems in invalidConfig's form, or nil.
func validConfig(path string, cfg config.Config) error {
	if err := cfg.Validate(); err != nil {
		return invalidConfig(path, err)
	}
	return nil
}

// invalidConfig lists a configuration's problems one per line, each as
// file:line: field: message, and says how to check the file again.
func invalidConfig(path string, err error) error {
	ps := config.Problems(err)
	file := path
	if file == "" {
		file = "(embedded default)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration, %s:", plural(len(ps), "problem", "problems"))
	for _, p := range ps {
		if p.Line > 0 {
			fmt.Fprintf(&b, "\n  %s:%d: %s", file, p.Line, p.Error())
		} else {
			fmt.Fprintf(&b, "\n  %s: %s", file, p.Error())
		}
	}
	if path != "" {
		fmt.Fprintf(&b, "\nFix them, then check again with: wprelay check --config %s", path)
	}
	return &configError{msg: b.String(), err: err}
}

// configError is a configuration's problems, formatted; it unwraps to the
// problems themselves (errors.Is(err, iofs.ErrNotExist) for a missing file).
type configError struct {
	msg string
	err error
}

func (e *configError) Error() string { return e.msg }
func (e *configError) Unwrap() error { return e.err }

// parseFlagsOnly parses a command that takes flags and no arguments: a
// stray word is refused with the usage (rather than the flags after it
// being ignored), and so is a bad flag.
func parseFlagsOnly(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usageError{fmt.Errorf("unexpected argument %q: %s takes flags only (see the usage above)", fs.Arg(0), fs.Name())}
	}
	return nil
}
