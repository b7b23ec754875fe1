package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wprelay/wprelay/relay/config"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// init --force over files and a secrets dir others could read leaves them
// its owner's alone; it kept the modes it found.
func TestInit_ForceTightensModes(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, "secrets")
	if err := os.Mkdir(sdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "wprelay.yaml"), filepath.Join(sdir, "admin_token"), filepath.Join(sdir, "site_jwt_secret")} {
		if err := os.WriteFile(f, []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o644); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	if err := os.Chmod(sdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"init", "--dir", dir, "--force"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("init --force: exit %d", code)
	}
	if m := mode(t, sdir); m != 0o700 {
		t.Errorf("secrets dir mode %04o, want 0700", m)
	}
	for _, f := range []string{filepath.Join(dir, "wprelay.yaml"), filepath.Join(sdir, "admin_token"), filepath.Join(sdir, "site_jwt_secret"), filepath.Join(sdir, "wp_jwt_secret")} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s mode %04o, want 0600", f, m)
		}
	}
}

// serve refuses a ${file:...} secret every user may read, naming the
// command that fixes it, and creates nothing.
func TestServe_RefusesWorldReadableSecret(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "token")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, filepath.Join(dir, "wprelay.yaml"), `admin: {token: "${file:token}"}
data_dir: ./data
sources:
  - {name: stripe, kind: stripe, secrets: [s3cret]}
`)
	_, stderr, code := runCLI("serve", "--config", cfg, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "chmod o-rwx "+secret) {
		t.Fatalf("serve with a world-readable secret: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("serve created the data dir (%v)", err)
	}
	// Readable by a group (the systemd layout, root:wprelay 0640) is fine.
	if err := os.Chmod(secret, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI("check", "--config", cfg); code != 0 {
		t.Fatalf("check with a 0640 secret: exit %d\n%s", code, stderr)
	}
}

// serve makes a data dir others could read its owner's alone.
func TestServe_TightensDataDir(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = data
	cfg.Admin.Token = "0123456789abcdef0123"
	cfg.Sources = []config.Source{{Name: "stripe", Kind: "stripe", Secrets: []config.Secret{"s3cret"}}}
	MustRunMain(t, cfg)
	if m := mode(t, data); m != 0o700 {
		t.Errorf("data dir mode %04o after serve, want 0700", m)
	}
}
