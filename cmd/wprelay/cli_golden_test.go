package main

// Golden tests of the operator commands (events, dlq, stats) against an
// in-process sidecar. Each case's command line, exit code, stdout and
// stderr are kept in testdata/cli/NAME.golden, with ids, times, durations,
// trace ids, cursors and ports normalized to placeholders of the same
// width (so that table columns stay aligned). Rewrite them with
// go test ./cmd/wprelay -run TestCLI_Golden -update.

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wprelay/wprelay/relay/admin"
)

func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// normalizer replaces what changes from run to run.
type normalizer struct {
	ids map[string]string // known event ids → placeholders
}

var (
	reUUID     = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	reRFC3339  = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	reTableT   = regexp.MustCompile(`\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}`)
	reDuration = regexp.MustCompile(` *\d+ms\b`)
	reTraceID  = regexp.MustCompile(`\b[0-9a-f]{32}\b`)
	reSpanID   = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
	reCursor   = regexp.MustCompile(`--cursor [A-Za-z0-9_-]+`)
	rePort     = regexp.MustCompile(`127\.0\.0\.1:\d{5}`)
	reDurMS    = regexp.MustCompile(`"duration_ms": \d+`)
)

func (n *normalizer) norm(s string) string {
	s = reUUID.ReplaceAllStringFunc(s, func(id string) string {
		if p, ok := n.ids[id]; ok {
			return p
		}
		return "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
	})
	s = reRFC3339.ReplaceAllString(s, "<TIME>")
	s = reTableT.ReplaceAllString(s, "YYYY-MM-DD hh:mm:ss")
	s = reDuration.ReplaceAllStringFunc(s, func(m string) string { return fmt.Sprintf("%*s", len(m), "Nms") })
	s = reTraceID.ReplaceAllString(s, strings.Repeat("t", 32))
	s = reSpanID.ReplaceAllString(s, strings.Repeat("s", 16))
	s = reCursor.ReplaceAllString(s, "--cursor CURSOR")
	s = rePort.ReplaceAllString(s, "127.0.0.1:PORT")
	s = reDurMS.ReplaceAllString(s, `"duration_ms": N`)
	return s
}

// golden compares (or with -update writes) testdata/cli/name.golden.
func golden(t *testing.T, name string, args []string, stdout, stderr string, code int) {
	t.Helper()
	got := fmt.Sprintf("$ wprelay %s\n--- exit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(args, " "), code, stdout, stderr)
	path := filepath.Join("..", "..", "testdata", "cli", name+".golden")
	if updating() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (rerun with -update if the change is intended):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func TestCLI_Golden(t *testing.T) {
	e := newAdminEnv(t)
	n := &normalizer{ids: map[string]string{}}
	named := func(id string) string {
		n.ids[id] = fmt.Sprintf("00000000-0000-7000-8000-%012d", len(n.ids)+1)
		return id
	}
	push := named(e.github("g-1", "push", `{"ref":"refs/heads/main","repository":{"id":7,"full_name":"acme/site"},"sender":{"login":"octocat"}}`))
	e.waitStatus(push, "delivered")
	inv := named(e.stripe("evt_cli_2", "invoice.created"))
	e.waitStatus(inv, "delivered")
	e.crm.set(400, nil)
	dead := named(e.github("g-3", "push", `{"ref":"refs/heads/broken","repository":{"id":7,"full_name":"acme/site"}}`))
	e.waitStatus(dead, "failed")
	e.crm.set(200, nil)
	charge := named(e.stripe("evt_cli_4", "charge.succeeded"))
	e.waitStatus(charge, "discarded")

	cases := []struct {
		name  string
		args  []string
		code  int
		after func()
	}{
		{"events_list", []string{"events", "list"}, 0, nil},
		{"events_list_failed", []string{"events", "list", "--status", "failed"}, 0, nil},
		{"events_list_page", []string{"events", "list", "--limit", "2"}, 0, nil},
		{"events_list_json", []string{"events", "list", "--source", "gh", "--json"}, 0, nil},
		{"events_list_none", []string{"events", "list", "--tenant", "globex"}, 0, nil},
		{"events_list_bad_status", []string{"events", "list", "--status", "done"}, 2, nil},
		{"events_show_dead", []string{"events", "show", dead}, 0, nil},
		{"events_show_raw", []string{"events", "show", inv, "--raw"}, 0, nil},
		{"events_show_json", []string{"events", "show", push, "--json"}, 0, nil},
		{"events_show_unknown", []string{"events", "show", "no-such-event"}, 3, nil},
		{"events_show_no_id", []string{"events", "show"}, 2, nil},
		{"dlq_list", []string{"dlq", "list"}, 0, nil},
		{"stats", []string{"stats"}, 0, nil},
		{"events_replay_unknown_target", []string{"events", "replay", dead, "--target", "nope"}, 1, nil},
		{"dlq_replay_needs_yes", []string{"dlq", "replay", "--target", "crm"}, 2, nil},
		{"dlq_replay", []string{"dlq", "replay", "--target", "crm", "--yes"}, 0, func() { e.waitStatus(dead, "delivered") }},
		{"dlq_replay_nothing", []string{"dlq", "replay", "--yes"}, 0, nil},
		{"events_replay", []string{"events", "replay", inv, "--target", "wp"}, 0, func() {
			e.wait(inv, "the replay", func(v admin.EventView) bool { return v.Status == "delivered" && v.Deliveries[1].Attempts == 2 })
		}},
		{"events_help", []string{"events", "--help"}, 0, nil},
		{"dlq_replay_help", []string{"dlq", "replay", "--help"}, 0, nil},
	}
	for _, c := range cases {
		out, errOut, code := e.cli(c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.name, code, c.code, out, errOut)
		}
		args := make([]string, len(c.args))
		for i, a := range c.args {
			args[i] = n.norm(a)
		}
		golden(t, c.name, args, n.norm(out), n.norm(errOut), code)
		if c.after != nil {
			c.after()
		}
	}
}

// Exit codes that do not depend on a golden file's text.
func TestCLI_ExitCodes(t *testing.T) {
	e := newAdminEnv(t)
	id := e.github("x-1", "push", `{}`)
	e.waitStatus(id, "delivered")
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not-the-admin-token-at-all"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	closed := "http://" + freeLoopbackAddr(t)

	t.Setenv(envAdminToken, "")
	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"ok", []string{"events", "show", id, "--admin-url", e.admin, "--token-file", e.tokenFile}, 0, ""},
		{"token from the environment", []string{"stats", "--admin-url", e.admin}, 0, "env"},
		{"wrong token", []string{"events", "list", "--admin-url", e.admin, "--token-file", wrong}, 4, "refused the token"},
		{"unreachable", []string{"stats", "--admin-url", closed, "--token-file", e.tokenFile}, 4, "cannot reach the admin API"},
		{"no token", []string{"stats", "--admin-url", e.admin}, 2, "no admin token"},
		{"empty token file", []string{"stats", "--admin-url", e.admin, "--token-file", empty}, 2, "no admin token"},
		{"bad flag", []string{"events", "list", "--bogus"}, 2, "flag provided but not defined"},
		{"bad time", []string{"events", "list", "--since", "last tuesday", "--admin-url", e.admin, "--token-file", e.tokenFile}, 2, "is not a time"},
		{"bad url", []string{"stats", "--admin-url", "localhost:8081", "--token-file", e.tokenFile}, 2, "want http://host:port"},
		{"not found", []string{"events", "replay", "no-such", "--admin-url", e.admin, "--token-file", e.tokenFile}, 3, "no such event"},
		{"unknown subcommand", []string{"events", "frobnicate"}, 2, "unknown command"},
		{"no subcommand", []string{"dlq"}, 2, "which command"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.msg == "env" {
				t.Setenv(envAdminToken, cliAdminToken)
			}
			out, errOut, code := runCLI(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, errOut)
			}
			if c.msg != "" && c.msg != "env" && !strings.Contains(errOut, c.msg) {
				t.Errorf("stderr lacks %q:\n%s", c.msg, errOut)
			}
		})
	}
	// --help documents the exit codes and shows an example on each command.
	for _, args := range [][]string{{"events", "list"}, {"events", "show"}, {"events", "replay"}, {"dlq", "list"}, {"dlq", "replay"}, {"stats"}, {"export"}, {"import"}} {
		_, errOut, code := runCLI(append(args, "--help")...)
		if code != 0 || !strings.Contains(errOut, "Example:") || !strings.Contains(errOut, "Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found") {
			t.Errorf("%v --help: exit %d\n%s", args, code, errOut)
		}
	}
}

// freeLoopbackAddr returns a loopback address nothing listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
