//go:build integration

package main

// deploy/ checked with the real tools: systemd-analyze on the units, and
// nginx running the snippet in front of the real binary. Both come from
// Debian packages (scripts/wpstack/install-packages.sh, run by make deps).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needTool fails the test when a tool that make deps installs is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if _, err2 := os.Stat(filepath.Join("/usr/sbin", name)); err2 == nil {
			return filepath.Join("/usr/sbin", name)
		}
		t.Fatalf("%s is not installed: run `make deps` (scripts/wpstack/install-packages.sh installs it)", name)
	}
	return p
}

func TestDeploy_SystemdAnalyzeVerify(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	dir := t.TempDir()
	units := []string{"wprelay.service", "wprelay-backup.service", "wprelay-backup.timer"}
	var paths []string
	for _, u := range units {
		data, err := os.ReadFile(filepath.Join(deployDir, "systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		// verify checks that ExecStart's program exists: point it at the
		// binary under test instead of /usr/local/bin.
		data = bytes.ReplaceAll(data, []byte("/usr/local/bin/wprelay"), []byte(binPath))
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
	// verify exits 0 on warnings (an unknown key, a bad value): any output fails.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", paths[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for wprelay.service: ([0-9.]+) (\w+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze verify: clean; security --offline: exposure %.1f %s", level, m[2])
	if level > 2.0 {
		t.Errorf("exposure %.1f: the sandbox got weaker (want 2.0 or less)\n%s", level, out)
	}
}

// nginxConf is the smallest nginx.conf that serves the snippet inside a
// server block, as the site's HTTPS server would (without TLS here).
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen %[2]s;
        server_name hooks.example.test;
        include %[1]s/wprelay.conf;
        location / { return 404 "WordPress would answer here\n"; }
    }
}
`

// postFrom sends a POST from a given loopback address.
func postFrom(t *testing.T, from, url string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext,
	}}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestDeploy_NginxSnippet runs deploy/nginx/wprelay.conf in a real nginx in
// front of the real binary: /hooks/ reaches the sidecar with the client's
// address (trusted_proxies), a forged X-Forwarded-For does not pass,
// nothing else of the sidecar is reachable, and the body limit matches.
func TestDeploy_NginxSnippet(t *testing.T) {
	nginx := needTool(t, "nginx")
	// The sidecar believes X-Forwarded-For from nginx (127.0.0.1), and its
	// stripe source takes requests from 127.0.0.5 only.
	sc := startSidecar(t, t.TempDir(), fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json}
trusted_proxies: ["127.0.0.1"]
sources:
  - {name: stripe, kind: stripe, secrets: [%q], allow_ips: ["127.0.0.5"]}
`, stripeSecret))

	dir := t.TempDir()
	snippet, err := os.ReadFile(filepath.Join(deployDir, "nginx", "wprelay.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(snippet, []byte("proxy_pass http://127.0.0.1:8080;")) {
		t.Fatal("the snippet no longer proxies to 127.0.0.1:8080")
	}
	snippet = bytes.ReplaceAll(snippet, []byte("http://127.0.0.1:8080"), []byte(sc.public))
	listen := freeHostAddr(t, "127.0.0.3")
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(filepath.Join(dir, "wprelay.conf"), snippet, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, listen)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")}
	if out, err := exec.Command(nginx, append(args, "-t")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(nginx, args...)
	var nlog syncBuffer
	cmd.Stdout, cmd.Stderr = &nlog, &nlog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			errs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx:\n%s%s", nlog.String(), errs)
		}
	})
	base := "http://" + listen
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx is not listening")
		}
		time.Sleep(20 * time.Millisecond)
	}

	signed := func(id string, pad int) ([]byte, map[string]string) {
		body := stripeEvent(id, "invoice.created")
		if pad > 0 {
			body = append(body[:len(body)-1], fmt.Sprintf(`,"pad":%q}`, strings.Repeat("p", pad))...)
		}
		return body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())}
	}

	// The client's own address reaches the sidecar through nginx.
	body, h := signed("evt_nginx_1", 0)
	if code, resp := postFrom(t, "127.0.0.5", base+"/hooks/stripe", body, h); code != 202 {
		t.Fatalf("from the allowed address through nginx: %d %s", code, resp)
	}
	// A client that writes the allowed address into X-Forwarded-For is still itself.
	body, h = signed("evt_nginx_2", 0)
	h["X-Forwarded-For"] = "127.0.0.5"
	if code, resp := postFrom(t, "127.0.0.6", base+"/hooks/stripe", body, h); code != 403 || !strings.Contains(resp, `"forbidden"`) {
		t.Errorf("forged X-Forwarded-For: %d %s, want 403 forbidden", code, resp)
	}
	// A body just under limits.max_body passes; one over it is nginx's 413, in JSON.
	body, h = signed("evt_nginx_3", 500<<10)
	if code, resp := postFrom(t, "127.0.0.5", base+"/hooks/stripe", body, h); code != 202 {
		t.Errorf("500 KiB body: %d %s", code, resp)
	}
	body, h = signed("evt_nginx_4", 600<<10)
	code, resp := postFrom(t, "127.0.0.5", base+"/hooks/stripe", body, h)
	var e struct{ Error string }
	if code != 413 || json.Unmarshal([]byte(resp), &e) != nil || e.Error != "payload_too_large" || !strings.Contains(resp, "512 KiB limit") {
		t.Errorf("600 KiB body: %d %s, want nginx's 413 payload_too_large", code, resp)
	}
	// Only /hooks/ is proxied: the admin API and the metrics are not reachable.
	for _, path := range []string{"/admin/v1/events", "/metrics", "/readyz", "/hooksx", "/"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || !strings.Contains(string(data), "WordPress would answer here") {
			t.Errorf("GET %s through nginx: %d %s; want the site's 404, not the sidecar", path, resp.StatusCode, data)
		}
	}
	var list struct {
		Events []struct{ ID string } `json:"events"`
	}
	sc.adminDo("GET", "/admin/v1/events?source=stripe", "", &list)
	if len(list.Events) != 2 {
		t.Errorf("the sidecar stored %d events, want 2 (evt_nginx_1 and _3)", len(list.Events))
	}
}

// TestDeploy_ComposeConfigExtraRuns runs the PHP that compose.yaml gives
// WordPress (WORDPRESS_CONFIG_EXTRA) over secret files that "wprelay init"
// wrote: every constant the plugin needs comes out set, from the files.
func TestDeploy_ComposeConfigExtraRuns(t *testing.T) {
	php := needTool(t, "php")
	data, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`WORDPRESS_CONFIG_EXTRA: \|\n((?: {8}.*\n)+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no WORDPRESS_CONFIG_EXTRA block in compose.yaml")
	}
	var code strings.Builder
	for _, line := range strings.Split(strings.TrimRight(string(m[1]), "\n"), "\n") {
		code.WriteString(strings.ReplaceAll(strings.TrimPrefix(line, "        "), "$$", "$") + "\n")
	}
	// The secrets volume, as init fills it.
	dir := t.TempDir()
	if out, err := exec.Command(binPath, "init", "--dir", dir, "--site-url", "http://localhost:8000").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	script := "<?php\n" + strings.ReplaceAll(code.String(), "/run/wprelay/", dir+"/") +
		`foreach ( array( 'WPRELAY_SIDECAR_URL', 'WPRELAY_SOURCE', 'WPRELAY_SITE_JWT_SECRET', 'WPRELAY_SITE_SIGNING_SECRET', 'WPRELAY_WP_JWT_SECRET', 'WPRELAY_WP_SIGNING_SECRET', 'WPRELAY_ADMIN_URL', 'WPRELAY_ADMIN_TOKEN' ) as $c ) { echo $c, '=', constant( $c ), "\n"; }`
	f := filepath.Join(dir, "extra.php")
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(php, "-d", "display_errors=stderr", f).CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	for name, file := range map[string]string{
		"WPRELAY_SITE_JWT_SECRET": "site_jwt_secret", "WPRELAY_SITE_SIGNING_SECRET": "site_signing_secret",
		"WPRELAY_WP_JWT_SECRET": "wp_jwt_secret", "WPRELAY_WP_SIGNING_SECRET": "wp_signing_secret", "WPRELAY_ADMIN_TOKEN": "admin_token",
	} {
		want, _ := os.ReadFile(filepath.Join(dir, "secrets", file))
		if got[name] == "" || got[name] != strings.TrimSpace(string(want)) {
			t.Errorf("%s is %q, want the content of secrets/%s", name, got[name], file)
		}
	}
	if got["WPRELAY_SIDECAR_URL"] != "http://wprelay:8080" || got["WPRELAY_ADMIN_URL"] != "http://wprelay:8081" || got["WPRELAY_SOURCE"] != "wordpress" {
		t.Errorf("constants: %v", got)
	}
}
