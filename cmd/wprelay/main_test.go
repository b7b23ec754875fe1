package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wprelay/wprelay/relay/config"
)

// testWhsec returns a fresh Standard Webhooks secret ("whsec_" and 24
// random bytes in base64): the tests make their secrets when they run
// rather than keep secret-shaped strings in the code.
func testWhsec() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// MustRunMain starts the whole daemon in-process on 127.0.0.1:0 with cfg.
func MustRunMain(tb testing.TB, cfg config.Config) *Main {
	tb.Helper()
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.DataDir == "" || cfg.DataDir == "./data" {
		cfg.DataDir = tb.TempDir()
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	m := &Main{Config: cfg, Logger: slog.New(slog.DiscardHandler)}
	if err := m.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Error(err)
		}
	})
	return m
}

func TestRun_HelpOnEveryCommand(t *testing.T) {
	for _, cmd := range []string{"serve", "init", "check", "rotate-key"} {
		var out, errb bytes.Buffer
		if code := run([]string{cmd, "--help"}, &out, &errb); code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		if s := errb.String(); !strings.Contains(s, "Usage: wprelay "+cmd) || !strings.Contains(s, "Example:") {
			t.Errorf("%s --help lacks usage or example:\n%s", cmd, s)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"help"}, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "serve") {
		t.Errorf("help: %d %s", code, out.String())
	}
	if code := run([]string{"bogus"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code := run(nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
	out.Reset()
	if code := run([]string{"version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "wprelay ") {
		t.Errorf("version: %d %q", code, out.String())
	}
}

func TestInit_WritesAValidConfig(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if code := run([]string{"init", "--dir", dir, "--site-url", "https://shop.example"}, &out, io.Discard); code != 0 {
		t.Fatalf("init: exit %d", code)
	}
	for _, c := range []string{"WPRELAY_SITE_JWT_SECRET", "WPRELAY_WP_SIGNING_SECRET', 'whsec_", "WPRELAY_ADMIN_TOKEN", "WPRELAY_SIDECAR_URL"} {
		if !strings.Contains(out.String(), c) {
			t.Errorf("init output lacks %q", c)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "secrets", "admin_token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	cfg, _, err := loadConfig(filepath.Join(dir, "wprelay.yaml"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("init wrote an invalid config: %v", err)
	}
	if cfg.Sources[0].Issuer != "https://shop.example" || cfg.DataDir != filepath.Join(dir, "data") {
		t.Errorf("issuer %q data_dir %q", cfg.Sources[0].Issuer, cfg.DataDir)
	}
	token, _ := os.ReadFile(filepath.Join(dir, "secrets", "admin_token"))
	if cfg.Admin.Token.Reveal() != strings.TrimSpace(string(token)) {
		t.Error("admin token not read from its file")
	}
	if strings.Contains(string(mustRead(t, filepath.Join(dir, "wprelay.yaml"))), strings.TrimSpace(string(token))) {
		t.Error("wprelay.yaml holds a secret; secrets belong in secrets/")
	}
	if code := run([]string{"init", "--dir", dir}, io.Discard, io.Discard); code != 2 {
		t.Errorf("second init without --force: exit %d, want 2", code)
	}
}

func TestDefaultConfig_SecretsMadeOnceAndShownOnce(t *testing.T) {
	dir := t.TempDir()
	cfg, banner, err := defaultConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if !strings.Contains(banner, "define( 'WPRELAY_SITE_JWT_SECRET', '"+cfg.Sources[0].JWTSecret.Reveal()+"' );") {
		t.Errorf("banner lacks the wp-config line:\n%s", banner)
	}
	cfg2, banner2, err := defaultConfig(dir)
	if err != nil || banner2 != "" {
		t.Fatalf("second start: banner %q err %v", banner2, err)
	}
	if cfg2.Sources[0].JWTSecret != cfg.Sources[0].JWTSecret || cfg2.Admin.Token != cfg.Admin.Token {
		t.Error("secrets changed across starts")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "default-secrets.json")); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("default-secrets.json mode: %v", fi)
	}
}

func TestMain_InProcess_ServesAndCloses(t *testing.T) {
	cfg, _, err := defaultConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := MustRunMain(t, cfg)
	resp, err := http.Get("http://" + m.AdminAddr() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", err, resp)
	}
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if ready.Status != "ready" || ready.Checks["store"] != "ok" || ready.Checks["dispatcher"] != "ok" || ready.Checks["draining"] != "ok" {
		t.Fatalf("readyz detail: %+v", ready)
	}
	resp, err = http.Post("http://"+m.PublicAddr()+"/hooks/wordpress", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("unsigned WordPress event: %d, want 401", resp.StatusCode)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
