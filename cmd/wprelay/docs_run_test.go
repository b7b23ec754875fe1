//go:build integration

package main

// Docs that run: the README's quick start and admin API block, run as
// written in bash against the real binary (as the install guide is, in
// install_guide_test.go). The lines the test adds around a block are
// marked as the test's.

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
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

// shBlocks returns the ```sh blocks of a Markdown file, dedented.
func shBlocks(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?m)^([ \\t]*)```sh\\n((?:.*\\n)*?)[ \\t]*```").FindAllStringSubmatch(string(data), -1) {
		var lines []string
		for _, l := range strings.Split(m[2], "\n") {
			lines = append(lines, strings.TrimPrefix(l, m[1]))
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	return out
}

// runbookNeeds are what a runbook block may need that one test machine
// does not have: those blocks are not run (the test counts the others).
var runbookNeeds = []string{"docker ", "ssh ", "journalctl", "install -m 0644 deploy/systemd", "$WP_ROOT"}

// runbookHost is the prelude of every runbook session: the host's paths,
// and stand-ins for what needs root (systemctl for the sidecar's service,
// runuser, chgrp, chown). All of it is the test's, not the runbook's.
const runbookHost = `
set +e # as typed at a prompt: a failing command is reported (the ERR trap), the next one runs
systemctl() {
  case "$1 ${2:-}" in
    "stop wprelay") sidecar_stop ;;
    "start wprelay") sidecar_start ;;
    "restart wprelay") sidecar_stop; sidecar_start ;;
    *) echo "systemctl $*: not on this test host" >&2; return 1 ;;
  esac
}
sidecar_start() {
  wprelay serve --config "$ETC/wprelay.yaml" >>"$ROOT/sidecar.log" 2>&1 &
  echo $! > "$ROOT/sidecar.pid"
  wprelay healthcheck --wait 30s >/dev/null
}
sidecar_stop() {
  local pid; pid=$(cat "$ROOT/sidecar.pid")
  kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}
runuser() { while [ "$1" != "--" ]; do shift; done; shift; "$@"; }
chgrp() { :; }
chown() { :; }
trap 'echo "RUNBOOK-FAILED [$?]: $BASH_COMMAND" >&2' ERR
`

// The runbooks' commands, run on one machine: a host whose /etc/wprelay,
// /var/lib/wprelay, /var/backups/wprelay, /usr/local/bin, /tmp and
// /mnt/other are directories of a temp dir, with a serving sidecar (a
// stripe source, an http target named wordpress that answers 400 to some
// events, so that there are dead letters). Each runbook's blocks run in
// order in one bash session, as an operator would type them; the example
// event ids become a dead event's id.
func TestDocs_RunbooksRunOnOneMachine(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:18080", "127.0.0.1:18081"} {
		if !portFree(addr) {
			t.Fatalf("%s is taken: the runbooks use the default ports (make integration runs the tests in a network namespace of their own)", addr)
		}
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "payment_failed") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer target.Close()

	root := t.TempDir()
	paths := map[string]string{
		"/etc/wprelay": "etc/wprelay", "/var/lib/wprelay": "var/lib/wprelay", "/var/backups/wprelay": "var/backups/wprelay",
		"/usr/local/bin": "usr/local/bin", "/tmp/": "tmp/", "/mnt/other": "mnt/other",
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Join(root, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	etc, bin := filepath.Join(root, "etc/wprelay"), filepath.Join(root, "usr/local/bin")
	if err := os.MkdirAll(filepath.Join(etc, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(etc, "secrets", "admin_token"), "runbook-admin-token-0123456789abcdef\n")
	writeFile(t, filepath.Join(etc, "secrets", "stripe"), "whsec_runbook_stripe\n")
	writeFile(t, filepath.Join(etc, "wprelay.yaml"), `listen: "127.0.0.1:8080"
admin: {listen: "127.0.0.1:8081", token: "${file:secrets/admin_token}"}
data_dir: `+filepath.Join(root, "var/lib/wprelay")+`
sources:
  - {name: stripe, kind: stripe, secrets: ["${file:secrets/stripe}"]}
targets:
  - {name: wordpress, kind: http, url: "`+target.URL+`", allow_private: true, max_attempts: 1}
routes:
  - {source: stripe, types: ["invoice.*"], to: [wordpress]}
`)
	for _, name := range []string{"wprelay", "wprelay.new"} { // upgrade.md: the new binary beside the old
		data, err := os.ReadFile(binPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var pairs []string // one pass: a path made here is not replaced again
	for from, to := range paths {
		to = filepath.Join(root, to)
		if strings.HasSuffix(from, "/") {
			to += "/"
		}
		pairs = append(pairs, from, to)
	}
	hostPaths := strings.NewReplacer(pairs...)
	host := "export ROOT=" + shellQuote(root) + " ETC=" + shellQuote(etc) + " PATH=" + shellQuote(bin) + ":$PATH CRM_API_KEY=runbook-crm-key\n" + runbookHost
	defer func() {
		if data, err := os.ReadFile(filepath.Join(root, "sidecar.pid")); err == nil {
			if p, err := os.FindProcess(must(strconv.Atoi(strings.TrimSpace(string(data))))); err == nil {
				_ = p.Signal(syscall.SIGTERM)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()

	// The host serves, with events: delivered invoices and dead ones.
	setup := host + "sidecar_start\n" + `export WPRELAY_SIGN_SECRET=whsec_runbook_stripe
for i in 1 2 3; do
  echo '{"id":"evt_rb_paid_'$i'","object":"event","type":"invoice.paid","created":1764806400,"data":{"object":{"id":"in_'$i'","object":"invoice"}}}' > paid.json
  wprelay sign --kind stripe --file paid.json --send http://127.0.0.1:8080/hooks/stripe >/dev/null
  echo '{"id":"evt_rb_failed_'$i'","object":"event","type":"invoice.payment_failed","created":1764806400,"data":{"object":{"id":"in_f'$i'","object":"invoice"}}}' > failed.json
  wprelay sign --kind stripe --file failed.json --send http://127.0.0.1:8080/hooks/stripe >/dev/null
done
`
	out, err := docShell(t, filepath.Join(root, "tmp"), setup)
	if err != nil || strings.Contains(out, "RUNBOOK-FAILED") {
		t.Fatalf("the test host: %v\n%s", err, out)
	}
	admin := &adminClient{base: "http://127.0.0.1:8081", token: "runbook-admin-token-0123456789abcdef", http: &http.Client{Timeout: 10 * time.Second}}
	dead := ""
	waitFor(t, 20*time.Second, "three dead letters", func() bool {
		var page struct {
			Deliveries []struct {
				EventID string `json:"event_id"`
			} `json:"deliveries"`
		}
		if admin.do(t.Context(), "GET", "/admin/v1/dlq", nil, &page) != nil || len(page.Deliveries) < 3 {
			return false
		}
		dead = page.Deliveries[0].EventID
		return true
	})

	ran := 0
	for _, name := range []string{"README.md", "replay-and-backfill.md", "dead-letters.md", "rotate-secrets.md", "disk-and-retention.md", "backup-and-restore.md", "upgrade.md"} {
		t.Run(name, func(t *testing.T) {
			var script strings.Builder
			script.WriteString(host)
			if name == "backup-and-restore.md" {
				// The test's line: a backup as the nightly timer names it.
				script.WriteString("wprelay backup --token-file " + shellQuote(filepath.Join(etc, "secrets/admin_token")) + " " + shellQuote(filepath.Join(root, "var/backups/wprelay/wprelay-Mon.db")) + " >/dev/null\n")
			}
			blocks := 0
			for _, b := range shBlocks(t, filepath.Join("../../docs/runbooks", name)) {
				if slices.ContainsFunc(runbookNeeds, func(n string) bool { return strings.Contains(b, n) }) {
					continue
				}
				b = hostPaths.Replace(b)
				b = strings.ReplaceAll(b, "<event id>", dead)
				b = strings.ReplaceAll(b, "01923c5e-8a1b-7cc2-9f0e-3b1d2a4c5e6f", dead)
				script.WriteString("echo '>>> block'\n" + b + "\n")
				blocks++
			}
			out, err := docShell(t, filepath.Join(root, "tmp"), script.String())
			if err != nil {
				t.Fatalf("%v\n%s", err, tail(out, 60))
			}
			for _, line := range strings.Split(out, "\n") {
				// A bare "dlq replay" asks for confirmation, which a shell
				// without a terminal cannot give: it says so, and the
				// runbook's --yes variant runs.
				if strings.HasPrefix(line, "RUNBOOK-FAILED") && !strings.Contains(line, "dlq replay --target wordpress --since 24h") {
					t.Errorf("%s\n--- output:\n%s", line, tail(out, 60))
				}
			}
			if strings.Contains(out, "RUNBOOK-FAILED") && !strings.Contains(out, "pass --yes to confirm (stdin is not a terminal)") {
				t.Errorf("a dlq replay failed for another reason than the missing terminal:\n%s", tail(out, 40))
			}
			t.Logf("%s: %d blocks run", name, blocks)
			ran += blocks
		})
	}
	if ran < 20 {
		t.Errorf("ran %d runbook blocks; the runbooks have more that one machine can run", ran)
	}
}
