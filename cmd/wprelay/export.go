package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/store"
)

const exportSynopsis = `Write stored events as JSON lines (one event a line, oldest first): the envelope,
the raw request (credentials were redacted at ingest) and a summary of the
deliveries. For backfills and audits; "wprelay import" reads the file back.

Where the events come from (--from):
  api   the running sidecar's admin API (GET /admin/v1/export): it streams the
        events while the sidecar keeps serving.
  file  the bbolt data file of a stopped sidecar, opened read-only (--data-dir, or
        the data_dir and encryption keys of --config). A running sidecar holds the
        file's lock, so this waits a moment and then says so.
  auto  (default) the admin API when it answers, else the file.

Progress goes to stderr; the lines go to stdout or --output.`

const exportExample = `  wprelay export --since 7d > events.jsonl
  wprelay export --since 2026-11-01 --until 2026-11-15 --source stripe --type invoice.paid -o invoices.jsonl
  wprelay export --from file --config /etc/wprelay/wprelay.yaml --since 0 > all.jsonl   # sidecar stopped`

func cmdExport(args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("export --since WHEN [flags] > events.jsonl", exportSynopsis, exportExample, stderr)
	since := fs.String("since", "", "received at or after (required; 0 for everything): RFC 3339, a date, unix seconds, or an age (7d)")
	until := fs.String("until", "", "received before (same forms as --since)")
	source := fs.String("source", "", "only this source")
	tenant := fs.String("tenant", "", "only this tenant")
	typ := fs.String("type", "", "only this event type (exact)")
	status := fs.String("status", "", "only events with this status (queued, delivered, failed, discarded)")
	output := fs.String("output", "", "write to this file instead of stdout")
	fs.StringVar(output, "o", "", "short for --output")
	from := fs.String("from", "auto", "auto, api or file (see above)")
	dataDir := fs.String("data-dir", "", "--from file: the data directory (default: the config's data_dir, else ./data)")
	cfgPath := fs.String("config", os.Getenv("WPRELAY_CONFIG"), "--from file: the sidecar's config, for data_dir and encryption keys (env WPRELAY_CONFIG; default ./wprelay.yaml when present)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *since == "" {
		return usageError{errors.New("--since is required (an age such as 7d, a date, or 0 for every event)")}
	}
	now := time.Now()
	f := relay.EventFilter{Status: *status, Source: *source, Tenant: *tenant, Type: *typ}
	var err error
	if f.Since, err = parseWhen(*since, now); err != nil {
		return usageError{fmt.Errorf("--since: %w", err)}
	}
	if f.Until, err = parseWhen(*until, now); err != nil {
		return usageError{fmt.Errorf("--until: %w", err)}
	}
	if *from != "auto" && *from != "api" && *from != "file" {
		return usageError{fmt.Errorf("--from %q: want auto, api or file", *from)}
	}

	out := stdout
	if *output != "" {
		file, err := os.OpenFile(*output, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer file.Close()
		out = file
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	p := &progress{w: stderr, verb: "exported", every: time.Second}
	var skipErr error // events an offline export could not encode

	var where string
	useAPI := *from == "api"
	if *from == "auto" {
		useAPI = adminAnswers(cf.url)
	}
	if useAPI {
		c, err := cf.client()
		if err != nil {
			return err
		}
		where = "the admin API at " + c.base
		err = exportAPI(c, cf.timeout, f, bw, p)
		if err != nil {
			return err
		}
	} else {
		path, sealer, err := exportFile(*dataDir, *cfgPath)
		if err != nil {
			return err
		}
		where = path + " (read-only)"
		db, err := store.OpenReadOnly(path, store.Options{LockTimeout: 2 * time.Second, Sealer: sealer})
		if errors.Is(err, store.ErrDamaged) {
			return err // names the file and the runbook
		}
		if err != nil {
			hint := "stop the sidecar, or export through its admin API (--from api, --admin-url)"
			if *from == "auto" {
				hint = "the admin API at " + cf.url + " did not answer either: start the sidecar, or stop it and export from its file"
			}
			return fmt.Errorf("%w; %s", err, hint)
		}
		defer db.Close()
		var skipped admin.Unencodable
		err = db.Export(context.Background(), f, func(e *relay.Event, raw *relay.Raw) error {
			if err := skipped.Write(bw, e, raw); err != nil || skipped.Has(e.ID) {
				return err
			}
			p.add(1)
			return nil
		})
		if err != nil {
			return err
		}
		skipErr = skipped.Err()
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %s from %s\n", plural(p.n, "event", "events"), where)
	return skipErr
}

// adminAnswers tells whether something answers HTTP at the admin URL
// (/healthz needs no token).
func adminAnswers(base string) bool {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// exportAPI streams GET /admin/v1/export into w.
func exportAPI(c *adminClient, headerTimeout time.Duration, f relay.EventFilter, w io.Writer, p *progress) error {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.Status, "source": f.Source, "tenant": f.Tenant, "type": f.Type} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	// The whole stream may take long: bound the wait for its start only.
	stream := *c
	stream.http = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: headerTimeout, Proxy: http.ProxyFromEnvironment}}
	resp, err := stream.send(context.Background(), "GET", "/admin/v1/export?"+q.Encode(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 256<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				return fmt.Errorf("export cut short after %d events: a partial line", p.n)
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
			p.add(1)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("export cut short after %d events: %w", p.n, err)
		}
	}
	if msg := resp.Trailer.Get(admin.TrailerError); msg != "" {
		return fmt.Errorf("export cut short by the sidecar after %d events: %s", p.n, msg)
	}
	if n, err := strconv.Atoi(resp.Trailer.Get(admin.TrailerCount)); err != nil || n != p.n {
		return fmt.Errorf("export incomplete: received %d events, the sidecar reports %q", p.n, resp.Trailer.Get(admin.TrailerCount))
	}
	return nil
}

// exportFile returns the store file and sealer an offline export reads:
// --data-dir, else the config's data_dir; the config's encryption keys.
func exportFile(dataDir, cfgPath string) (string, *store.Sealer, error) {
	if cfgPath == "" {
		if _, err := os.Stat("wprelay.yaml"); err == nil {
			cfgPath = "wprelay.yaml"
		}
	}
	var sealer *store.Sealer
	if cfgPath != "" {
		cfg, _, err := loadConfig(cfgPath, dataDir)
		if err != nil {
			return "", nil, usageError{err}
		}
		if cfg.Store.Kind != "" && cfg.Store.Kind != "bbolt" {
			return "", nil, usageError{fmt.Errorf("%s: store %s has no data file: export through a running sidecar's admin API (--from api)", cfgPath, cfg.Store.Kind)}
		}
		if sealer, err = buildSealer(cfg.Encryption); err != nil {
			return "", nil, usageError{err}
		}
		dataDir = cfg.DataDir
	}
	if dataDir == "" {
		dataDir = "./data"
	}
	return filepath.Join(dataDir, "wprelay.db"), sealer, nil
}

// progress reports a count on stderr at most once per interval.
type progress struct {
	w     io.Writer
	verb  string
	every time.Duration
	n     int
	last  time.Time
}

func (p *progress) add(n int) {
	p.n += n
	if now := time.Now(); now.Sub(p.last) >= p.every {
		if !p.last.IsZero() {
			fmt.Fprintf(p.w, "%s %d events…\n", p.verb, p.n)
		}
		p.last = now
	}
}
