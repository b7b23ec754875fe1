//go:build integration

package main

// Docs that run: the README's quick start and admin API block, run as
// written in bash against the real binary (as the install guide is, in
// install_guide_test.go). The lines the test adds around a block are
// marked as the test's.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// markedBlock returns the ```sh block of a Markdown file between
// <!-- name:begin --> and <!-- name:end -->.
func markedBlock(t *testing.T, path, name string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(name) + ":begin -->\\s*```sh\n(.*?)```\\s*<!-- " + regexp.QuoteMeta(name) + ":end -->").FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s has no ```sh block between <!-- %s:begin --> and <!-- %s:end -->", path, name, name)
	}
	return string(m[1])
}

// docShell runs script in bash in dir, with the binary on PATH, and
// returns its output (stdout and stderr together).
func docShell(t *testing.T, dir, script string, env ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(dir, ".bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(bin, "wprelay")); err != nil {
		if err := os.Symlink(binPath, filepath.Join(bin, "wprelay")); err != nil {
			t.Fatal(err)
		}
	}
	log, err := os.CreateTemp(dir, ".shell-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log // a sidecar started in the background outlives bash
	cmd.Env = append(append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH")), env...)
	runErr := runWithin(cmd, 2*time.Minute)
	out, _ := os.ReadFile(log.Name())
	return string(out), runErr
}

func TestDocs_QuickStartAndAdminAPIBlock(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:8081"} {
		if !portFree(addr) {
			t.Fatalf("%s is taken: the quick start uses the default ports (make integration runs the tests in a network namespace of their own)", addr)
		}
	}
	dir := t.TempDir()
	pidFile, tokenFile := filepath.Join(dir, ".sidecar.pid"), filepath.Join(dir, ".admin-token")
	// The test's lines: note the PID of the sidecar the block starts, and
	// the admin token it made, for the next block.
	script := "trap 'echo \"${!:-}\" > " + shellQuote(pidFile) + "' EXIT\n" +
		markedBlock(t, "../../README.md", "quick-start") +
		"\necho \"$WPRELAY_ADMIN_TOKEN\" > " + shellQuote(tokenFile) + "\n"
	out, err := docShell(t, dir, script)
	defer stopGuideSidecar(t, pidFile)
	if err != nil {
		t.Fatalf("the quick start failed: %v\n%s", err, tail(out, 60))
	}
	if !strings.Contains(out, "HTTP/1.1 202 Accepted\n") || len(regexp.MustCompile(`\{"id":"[0-9a-f-]{36}","status":"queued"\}`).FindAllString(out, -1)) < 2 {
		t.Fatalf("the quick start's two events were not both accepted:\n%s", tail(out, 40))
	}
	// Its last command lists both, stored discarded (no route yet), the
	// invoice of invoice.json among them.
	last := out[strings.LastIndex(out, `{"events":`):]
	var list struct {
		Events []struct {
			ID, Status, Type string
			Key              string `json:"idempotency_key"`
		} `json:"events"`
	}
	if err := json.NewDecoder(strings.NewReader(last)).Decode(&list); err != nil {
		t.Fatalf("the quick start's last command: %v\n%s", err, tail(out, 20))
	}
	invoice := ""
	for _, e := range list.Events {
		if e.Status != "discarded" {
			t.Errorf("event %+v: want discarded (the quick start has no route)", e)
		}
		if strings.Contains(e.Key, "evt_quickstart_invoice_1") && e.Type == "invoice.paid" {
			invoice = e.ID
		}
	}
	if len(list.Events) != 2 || invoice == "" {
		t.Fatalf("the quick start's events: %+v", list.Events)
	}

	// The admin API block, with <id> the invoice's id, in the same
	// directory and environment.
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	api := strings.ReplaceAll(markedBlock(t, "../../README.md", "admin-api"), "<id>", invoice)
	out, err = docShell(t, dir, api, "WPRELAY_ADMIN_TOKEN="+strings.TrimSpace(string(token)))
	if err != nil {
		t.Fatalf("the admin API block failed: %v\n%s", err, out)
	}
	if strings.Contains(out, "unauthorized") {
		t.Fatalf("the admin API block was refused its token:\n%s", out)
	}
	for _, want := range []string{
		`"events":[`,                  // the list
		`"id":"` + invoice + `"`,      // the detail
		`"method":"POST"`,             // the raw request
		`"error":"nothing_to_replay"`, // no delivery to replay: the quick start routes nothing
		`"deliveries":[`,              // the dead-letter list
		`"queue_depth":`,              // the stats
		`"status":"ready"`,            // /readyz
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the admin API block's output lacks %s:\n%s", want, out)
		}
	}
	export, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil || strings.Count(string(export), "\n") != 2 {
		t.Errorf("events.jsonl: %v, %d lines, want the 2 events", err, strings.Count(string(export), "\n"))
	}
}
