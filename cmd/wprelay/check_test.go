package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheck_ConfigValid(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CHECK_TEST_TOKEN", "0123456789abcdef0123")
	t.Setenv("CHECK_TEST_SECRET", testWhsec())
	cfg := writeFile(t, filepath.Join(dir, "wprelay.yaml"), `admin: {token: "${CHECK_TEST_TOKEN}"}
sources:
  - {name: stripe, kind: stripe, secrets: ["${CHECK_TEST_SECRET}"]}
`)
	out, stderr, code := runCLI("check", "--config", cfg)
	if code != 0 || !strings.Contains(out, cfg+": ok (1 source, 0 targets, 0 routes;") || strings.Count(out, "\n") != 1 {
		t.Fatalf("exit %d\nstdout %q\nstderr %s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("check --config created the data dir (%v)", err)
	}
}

func TestCheck_ConfigInvalidListsEachProblemWithItsLine(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "wprelay.yaml"), `admin: {token: "${CHECK_TEST_UNSET_TOKEN}"}
sources:
  - name: gh
    kind: github
    tolerance: 5 minutes
    secrets: ["${file:secrets/missing}"]
routes:
  - {source: gh, to: [crm], typs: ["*"]}
`)
	out, stderr, code := runCLI("check", "--config", cfg)
	if code != 2 || out != "" {
		t.Fatalf("exit %d stdout %q", code, out)
	}
	for _, want := range []string{
		cfg + ":1: admin.token: ${CHECK_TEST_UNSET_TOKEN} is not set",
		cfg + `:5: sources[0].tolerance: "5 minutes" is not a duration: use e.g. 90s, 5m, 168h or 7d`,
		cfg + ":6: sources[0].secrets[0]: ${file:" + filepath.Join(dir, "secrets/missing") + "}",
		cfg + `:8: routes[0].typs: unknown field "typs": did you mean "types"?`,
		cfg + `:8: routes[0].to[0]: no target named "crm"`, // validated with the rest, in the same run
		"Fix them, then check again with: wprelay check --config " + cfg,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "config.") || strings.Contains(stderr, "unmarshal") {
		t.Errorf("Go type names in:\n%s", stderr)
	}

	// Parsed, then validated: the validator's problems have lines too.
	writeFile(t, cfg, `admin: {token: "0123456789abcdef0123"}
sources:
  - {name: gh, kind: github, secrets: [s3cret]}
routes:
  - {source: gh, to: [crm]}
`)
	_, stderr, code = runCLI("check", "--config", cfg)
	if want := cfg + `:5: routes[0].to[0]: no target named "crm"`; code != 2 || !strings.Contains(stderr, want) {
		t.Fatalf("exit %d, stderr lacks %q:\n%s", code, want, stderr)
	}
	// serve says the same, in the same words, and starts nothing.
	_, serveErr, code := runCLI("serve", "--config", cfg)
	if code != 2 || !strings.Contains(serveErr, cfg+`:5: routes[0].to[0]: no target named "crm"`) {
		t.Fatalf("serve: exit %d\n%s", code, serveErr)
	}
}

func TestCheck_HelpHasAnExample(t *testing.T) {
	_, stderr, code := runCLI("check", "--help")
	if code != 0 || !strings.Contains(stderr, "wprelay check --config /etc/wprelay/wprelay.yaml") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// Every command refuses a word it does not take, with its usage, rather than
// ignoring the flags after it (serve would otherwise run on the embedded
// default, with fresh secrets, on every address).
func TestCommands_RefuseUnexpectedArguments(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	for _, args := range [][]string{
		{"serve", "stray", "--config", "x.yaml", "--data-dir", data},
		{"serve", "--data-dir", data, "stray"},
		{"check", "stray", "--data-dir", data},
		{"init", "stray", "--dir", data},
		{"rotate-key", "stray"},
		{"migrate", "stray"},
		{"migrate-store", "stray"},
		{"events", "list", "stray"},
		{"dlq", "list", "stray"},
		{"dlq", "replay", "stray"},
		{"stats", "stray"},
		{"export", "stray"},
		{"healthcheck", "stray"},
		{"sign", "stray"},
		{"version", "stray"},
		{"help", "stray"},
	} {
		_, stderr, code := runCLI(args...)
		if code != 2 || !strings.Contains(stderr, `unexpected argument "stray"`) || !strings.Contains(stderr, "Usage:") {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	for _, args := range [][]string{
		{"events", "show", "a", "b"},
		{"events", "replay", "a", "b"},
		{"import", "a", "b"},
		{"backup", "a", "b"},
		{"restore", "a", "b", "--data-dir", data},
	} {
		_, stderr, code := runCLI(args...)
		if code != 2 || !strings.Contains(stderr, "Usage: wprelay") {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("a refused command created %s (%v)", data, err)
	}
}

// A port in use stops serve before it creates anything: no data dir, no
// store file, no secrets.
func TestServe_PortInUseCreatesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()

	data := filepath.Join(dir, "default")
	_, stderr, code := runCLI("serve", "--data-dir", data, "--listen", ln.Addr().String(), "--admin-listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "listen "+ln.Addr().String()) {
		t.Fatalf("embedded default: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("embedded default: %s exists after a failed listen (%v)", data, err)
	}

	cfg := writeFile(t, filepath.Join(dir, "wprelay.yaml"), `admin: {token: "0123456789abcdef0123", listen: "127.0.0.1:0"}
data_dir: ./fromfile
sources:
  - {name: gh, kind: github, secrets: [s3cret]}
`)
	_, stderr, code = runCLI("serve", "--config", cfg, "--listen", ln.Addr().String())
	if code == 0 || !strings.Contains(stderr, "listen "+ln.Addr().String()) {
		t.Fatalf("config file: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "fromfile")); !os.IsNotExist(err) {
		t.Errorf("config file: the data dir exists after a failed listen (%v)", err)
	}
}

// check --data-dir on a dir without a store says so; "stop the sidecar"
// is for a locked file only.
func TestCheck_DataDirWithoutAStore(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := runCLI("check", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "no store to check") || strings.Contains(stderr, "stop the sidecar") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}
