//go:build integration

package main

// The README's install guide, run as written against the real WordPress
// test stack. Only the values of the variables its first line documents
// (SITE_URL, WP_ROOT, WPRELAY_BIN, WPRELAY_ETC, WPRELAY_DATA) are changed:
// to the test site and temp dirs. Everything else runs verbatim in bash,
// from a copy of this checkout, so the guide cannot rot unnoticed.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
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

// guideVars are the variables the guide's first command sets, in order.
var guideVars = []string{"SITE_URL", "WP_ROOT", "WPRELAY_BIN", "WPRELAY_ETC", "WPRELAY_DATA"}

// installGuide returns the commands between the README's install-guide
// markers, without the code fence.
func installGuide(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- install-guide:begin -->\\s*```sh\n(.*?)```\\s*<!-- install-guide:end -->").FindSubmatch(data)
	if m == nil {
		t.Fatal("README.md has no ```sh block between <!-- install-guide:begin --> and <!-- install-guide:end -->")
	}
	return string(m[1])
}

// guideCommands counts the guide's commands (a line continued with \ is
// one command; comments and blank lines are none).
func guideCommands(script string) int {
	n := 0
	for _, line := range strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// withVars replaces the values of the guide's export line.
func withVars(t *testing.T, script string, vars map[string]string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^export ((?:[A-Z_]+=\S+(?:\s*\\\n\s*|[ \t]+)?)+)$`)
	loc := re.FindStringSubmatchIndex(script)
	if loc == nil {
		t.Fatal("the guide's first command is not `export VAR=value ...`")
	}
	var names []string
	for _, m := range regexp.MustCompile(`([A-Z_]+)=\S+`).FindAllStringSubmatch(script[loc[2]:loc[3]], -1) {
		names = append(names, m[1])
	}
	if !slices.Equal(names, guideVars) {
		t.Fatalf("the guide's variables are %v; the test substitutes %v (update both)", names, guideVars)
	}
	var b strings.Builder
	b.WriteString("export")
	for _, n := range guideVars {
		fmt.Fprintf(&b, " %s=%s", n, shellQuote(vars[n]))
	}
	return script[:loc[0]] + b.String() + script[loc[1]:]
}

// copyCheckout copies what a checkout needs for the guide (the build and
// the plugin) into dir.
func copyCheckout(t *testing.T, dir string) {
	t.Helper()
	for _, p := range []string{"Makefile", "go.mod", "go.sum", "cmd", "relay", "store", "internal", "wpplugin"} {
		if out, err := exec.Command("cp", "-r", filepath.Join("../..", p), dir).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", p, err, out)
		}
	}
}

func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func TestInstallGuide_FollowedLiterally(t *testing.T) {
	guide := installGuide(t)
	if n := guideCommands(guide); n > 10 {
		t.Errorf("the install guide has %d commands; it promises at most ten", n)
	}
	// The guide uses the sidecar's default ports, as a host would.
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:8081"} {
		if !portFree(addr) {
			t.Fatalf("%s is taken: the guide needs the default ports (make integration runs the tests in a network namespace of their own)", addr)
		}
	}
	site := sharedSite(t)
	// A WordPress whose wp-config.php has no WPRELAY_* constants yet.
	site.SetConstants(t, map[string]string{})
	wpConfig := filepath.Join(site.Root, "wp-config.php")
	original, err := os.ReadFile(wpConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(wpConfig, original, 0o644); err != nil {
			t.Errorf("restore wp-config.php: %v", err)
		}
	})

	tmp := t.TempDir()
	checkout := filepath.Join(tmp, "wprelay")
	if err := os.Mkdir(checkout, 0o755); err != nil {
		t.Fatal(err)
	}
	copyCheckout(t, checkout)
	vars := map[string]string{
		"SITE_URL": site.URL, "WP_ROOT": site.Root, "WPRELAY_BIN": filepath.Join(tmp, "bin"),
		"WPRELAY_ETC": filepath.Join(tmp, "etc", "wprelay"), "WPRELAY_DATA": filepath.Join(tmp, "var", "lib", "wprelay"),
	}
	if err := os.MkdirAll(vars["WPRELAY_BIN"], 0o755); err != nil { // "must be on your PATH": it exists
		t.Fatal(err)
	}
	pidFile := filepath.Join(tmp, "sidecar.pid")
	// Harness lines around the guide, not part of it: fail on the first
	// failing command, and note the PID of the sidecar it starts in the
	// background so that the test can stop it.
	script := "set -euo pipefail\ntrap 'echo \"${!:-}\" > " + shellQuote(pidFile) + "' EXIT\n" + withVars(t, guide, vars)

	logPath := filepath.Join(tmp, "guide.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = checkout
	// The sidecar outlives bash: a file, not a pipe, so Wait returns.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "PATH="+vars["WPRELAY_BIN"]+":"+os.Getenv("PATH"))
	started := time.Now()
	runErr := runWithin(cmd, 5*time.Minute)
	took := time.Since(started)
	defer stopGuideSidecar(t, pidFile)
	logs, _ := os.ReadFile(logPath)
	if runErr != nil {
		t.Fatalf("the install guide failed after %s: %v\n%s", took.Round(time.Millisecond), runErr, tail(string(logs), 60))
	}
	for _, secret := range secretsIn(t, filepath.Join(vars["WPRELAY_ETC"], "secrets")) {
		if strings.Contains(string(logs), secret) {
			t.Errorf("the guide printed a secret (%s…)", secret[:8])
		}
	}

	// The event the guide sent ...
	// (The sidecar logs to the same file, so a log line may come between
	// the status line and the body that sign prints.)
	m := regexp.MustCompile(`(?m)^\{"id":"([0-9a-f-]{36})","status":"queued"\}$`).FindStringSubmatch(string(logs))
	if m == nil || !strings.Contains(string(logs), "HTTP/1.1 202 Accepted\n") {
		t.Fatalf("wprelay sign --send did not answer 202 with an id:\n%s", tail(string(logs), 40))
	}
	id := m[1]
	// ... arrives in WordPress, through the route and the target the guide
	// set up (the sidecar the guide started delivers it).
	waitFor(t, 20*time.Second, "the guide's event in WordPress's receipts", func() bool {
		return site.QueryInt(t, fmt.Sprintf("SELECT COUNT(*) FROM wp_wprelay_receipts WHERE event_id = '%s' AND event_type = 'post.published'", id)) == 1
	})
	stopGuideSidecar(t, pidFile)
	// ... and the guide's last command showed it.
	if !regexp.MustCompile(`(?m)^` + id + `\s.*post\.published`).Match(logs) {
		t.Errorf("wprelay events list did not show the event %s:\n%s", id, tail(string(logs), 20))
	}
	t.Logf("install guide: %d commands, %s; event %s delivered to WordPress; the end of its output:\n%s",
		guideCommands(guide), took.Round(time.Millisecond), id, tail(string(logs), 8))

	// wp-admin → Tools → Webhook Relay lists it: a second sidecar on the
	// guide's config and store (the guide's one is stopped), the admin page
	// asked by a logged-in administrator.
	serve := exec.Command(filepath.Join(vars["WPRELAY_BIN"], "wprelay"), "serve", "--config", filepath.Join(vars["WPRELAY_ETC"], "wprelay.yaml"), "--data-dir", vars["WPRELAY_DATA"])
	serve.Stdout, serve.Stderr = logFile, logFile
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		_ = serve.Wait()
	}()
	if out, err := exec.Command(filepath.Join(vars["WPRELAY_BIN"], "wprelay"), "healthcheck", "--wait", "15s").CombinedOutput(); err != nil {
		t.Fatalf("the guide's sidecar, restarted: %v %s", err, out)
	}
	page := wpAdminPage(t, site.URL, site.AdminUser, site.AdminPass, "/wp-admin/tools.php?page=wprelay")
	if !strings.Contains(page, id) {
		t.Errorf("wp-admin → Tools → Webhook Relay does not list the event %s:\n%s", id, tail(stripTags(page), 40))
	}
}

// runWithin runs cmd and kills it after d.
func runWithin(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("still running after %s", d)
	}
}

// stopGuideSidecar stops the sidecar the guide started, by its PID (once).
func stopGuideSidecar(t *testing.T, pidFile string) {
	t.Helper()
	data, err := os.ReadFile(pidFile)
	os.Remove(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for p.Signal(syscall.Signal(0)) == nil {
		if time.Now().After(deadline) {
			_ = p.Kill()
			t.Errorf("the guide's sidecar (pid %d) did not stop within 15 s of SIGTERM", pid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func secretsIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(string(b)))
	}
	return out
}

// wpAdminPage logs in to wp-admin and returns the page at path.
func wpAdminPage(t *testing.T, base, user, pass, path string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	if resp, err := c.Get(base + "/wp-login.php"); err == nil { // sets the test cookie
		resp.Body.Close()
	}
	resp, err := c.PostForm(base+"/wp-login.php", url.Values{
		"log": {user}, "pwd": {pass}, "wp-submit": {"Log In"}, "testcookie": {"1"}, "redirect_to": {base + path},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || bytes.Contains(body, []byte(`id="loginform"`)) {
		t.Fatalf("wp-admin login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return string(body)
}

func stripTags(s string) string {
	s = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>`).ReplaceAllString(s, "")
	s = regexp.MustCompile(`<[^>]+>`).ReplaceAllString(s, " ")
	return regexp.MustCompile(`\s*\n\s*`).ReplaceAllString(s, "\n")
}
