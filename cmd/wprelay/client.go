package main

// The admin API client shared by the operator commands (events, dlq,
// stats, export, import): flags, the token, errors as exit codes, and the
// output helpers (aligned tables for people, JSON for scripts).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wprelay/wprelay/relay/ingress"
)

// Environment variables of the operator commands.
const (
	envAdminURL   = "WPRELAY_ADMIN_URL"
	envAdminToken = "WPRELAY_ADMIN_TOKEN"
	defaultAdmin  = "http://127.0.0.1:8081"
)

// Exit codes of the operator commands (also see run).
const (
	exitOK           = 0
	exitFailure      = 1
	exitUsage        = 2
	exitNotFound     = 3
	exitUnauthorized = 4 // the token was refused, or the admin API could not be reached
)

// exitCodesHelp ends the --help of every command that calls the admin API.
const exitCodesHelp = `The admin API is at --admin-url (env ` + envAdminURL + `, default ` + defaultAdmin + `).
The token comes from env ` + envAdminToken + ` or --token-file FILE (never a flag value,
which would land in shell history); it is admin.token in wprelay.yaml.

Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found,
4 unauthorized or the admin API unreachable.`

// exitError is an error with the exit code it means.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// clientFlags are the flags every admin API command takes.
type clientFlags struct {
	url       string
	tokenFile string
	json      bool
	timeout   time.Duration
}

// newClientFlags returns a FlagSet for an admin API command whose --help
// prints usage (e.g. "events show ID [flags]"), the synopsis, the flags,
// the examples and the exit codes.
func newClientFlags(usage, synopsis, example string, out io.Writer) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet(usage, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: wprelay %s\n\n%s\n\nFlags:\n", usage, synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(out, "\nExample:\n%s\n\n%s\n", example, exitCodesHelp)
	}
	cf := &clientFlags{}
	def := os.Getenv(envAdminURL)
	if def == "" {
		def = defaultAdmin
	}
	fs.StringVar(&cf.url, "admin-url", def, "the admin API's base URL (env "+envAdminURL+")")
	fs.StringVar(&cf.tokenFile, "token-file", "", "read the admin token from this file (default: env "+envAdminToken+")")
	fs.DurationVar(&cf.timeout, "timeout", 30*time.Second, "how long one request may take (export: until the answer starts)")
	return fs, cf
}

// jsonFlag adds --json to a command that prints tables.
func (cf *clientFlags) jsonFlag(fs *flag.FlagSet) {
	fs.BoolVar(&cf.json, "json", false, "print JSON for scripts instead of a table")
}

// parseArgs parses flags that may come before or after the positional
// arguments ("events show ID --json") and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// adminClient calls the admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// client returns the admin API client the flags describe.
func (cf *clientFlags) client() (*adminClient, error) {
	u, err := url.Parse(cf.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Errorf("--admin-url %q: want http://host:port, e.g. %s", cf.url, defaultAdmin)}
	}
	token := os.Getenv(envAdminToken)
	if cf.tokenFile != "" {
		b, err := os.ReadFile(cf.tokenFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--token-file: %w", err)}
		}
		token = string(b)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, usageError{fmt.Errorf("no admin token: export %s (admin.token in wprelay.yaml) or pass --token-file FILE", envAdminToken)}
	}
	return &adminClient{base: strings.TrimRight(cf.url, "/"), token: token, http: &http.Client{Timeout: cf.timeout}}, nil
}

// apiError is an error answer of the admin API.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Message + " (" + e.Code + ")" }

// exitCode maps an admin API status onto an exit code.
func (e *apiError) exitCode() int {
	switch {
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return exitUnauthorized
	case e.Status == http.StatusNotFound:
		return exitNotFound
	case e.Status == http.StatusBadRequest:
		return exitUsage
	}
	return exitFailure
}

// send makes one request and returns the response (the caller closes its
// body) when the status is 2xx; errors carry their exit code.
func (c *adminClient) send(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, exitError{exitUsage, err}
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, unreachable(c.base, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ae := &apiError{Status: resp.StatusCode}
	if json.Unmarshal(data, ae) != nil || ae.Code == "" {
		ae.Code, ae.Message = "http_"+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(data))
		if ae.Message == "" {
			ae.Message = resp.Status
		}
	}
	if ae.Status == http.StatusNotFound && ae.Message == ingress.PublicListenerNotAdmin {
		ae.Message = fmt.Sprintf("--admin-url %s is the public webhook listener, not the admin API: use admin.listen's address (default %s) in --admin-url or %s",
			c.base, defaultAdmin, envAdminURL)
		return nil, exitError{exitUsage, ae}
	}
	if ae.Status == http.StatusUnauthorized {
		ae.Message = "the admin API refused the token: " + envAdminToken + " (or --token-file) must hold admin.token of wprelay.yaml"
	}
	return nil, exitError{ae.exitCode(), ae}
}

// do makes a JSON request and decodes the answer into out (when not nil).
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := c.send(ctx, method, path, body, ct)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, path, err)
	}
	return nil
}

// unreachable explains a failed connection to the admin API (exit 4).
func unreachable(base string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	hint := "is `wprelay serve` running, and is --admin-url (" + envAdminURL + ") its admin.listen?"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		hint = "it did not answer in time (--timeout)"
	}
	return exitError{exitUnauthorized, fmt.Errorf("cannot reach the admin API at %s: %v; %s", base, err, hint)}
}

// isUnreachable tells whether err is a failure to reach the admin API.
func isUnreachable(err error) bool {
	var ee exitError
	var ae *apiError
	return errors.As(err, &ee) && ee.code == exitUnauthorized && !errors.As(err, &ae)
}

// printJSON writes v indented, for scripts.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a tabwriter for aligned columns (flush it).
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// timeLayout is how tables show times: UTC, to the second.
const timeLayout = "2006-01-02 15:04:05"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeLayout)
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clip shortens s to n runes, on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

var relDuration = regexp.MustCompile(`^(\d+)([smhdw])$`)

// parseWhen parses a time flag: RFC 3339, a date (2026-11-28, UTC), unix
// seconds, or an age such as 90m, 6h, 7d, 2w (that long before now).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if m := relDuration.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
		return now.Add(-time.Duration(n) * unit), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-11-28T10:00:00Z), a date (2026-11-28), unix seconds, or an age (90m, 6h, 7d)", s)
}

// whenFlags parses --since and --until values into query parameters.
func whenParams(q url.Values, now time.Time, flags map[string]string) error {
	for name, v := range flags {
		t, err := parseWhen(v, now)
		if err != nil {
			return usageError{fmt.Errorf("--%s: %w", name, err)}
		}
		if !t.IsZero() {
			q.Set(name, t.UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
}

// subcommand runs one of cmds by args[0], or prints the list.
func subcommand(group, synopsis string, cmds map[string]func([]string, io.Writer, io.Writer) error, order []string,
	args []string, stdout, stderr io.Writer) error {
	help := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: wprelay %s <command> [flags]\n\n%s\n\nCommands:\n", group, synopsis)
		for _, name := range order {
			fmt.Fprintf(w, "  %s %s\n", group, name)
		}
		fmt.Fprintf(w, "\nRun \"wprelay %s <command> --help\" for its flags and examples.\n\n%s\n", group, exitCodesHelp)
	}
	if len(args) == 0 {
		help(stderr)
		return usageError{fmt.Errorf("%s: which command? (%s)", group, strings.Join(order, ", "))}
	}
	if args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		help(stdout)
		return nil
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		help(stderr)
		return usageError{fmt.Errorf("unknown command %q", group+" "+args[0])}
	}
	return cmd(args[1:], stdout, stderr)
}
