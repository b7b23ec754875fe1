package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wprelay/wprelay/store"
)

// rotate-key takes --data-dir, never creates a store, and says "stop the
// sidecar" only when the file is locked.
func TestRotateKey_DataDirAndItsErrors(t *testing.T) {
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	cfg := writeFile(t, filepath.Join(dir, "wprelay.yaml"), `admin: {token: "0123456789abcdef0123"}
data_dir: ./nowhere
encryption: {keys: [{id: k1, key: "`+key+`"}]}
sources:
  - {name: gh, kind: github, secrets: [s3cret]}
`)
	_, stderr, code := runCLI("rotate-key", "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "no store to re-seal") || !strings.Contains(stderr, "--data-dir") || strings.Contains(stderr, "stop the sidecar") {
		t.Fatalf("missing store: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); !os.IsNotExist(err) {
		t.Fatalf("rotate-key created the data dir (%v)", err)
	}

	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(data, "wprelay.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Held open, as a serving sidecar holds it.
	_, stderr, code = runCLI("rotate-key", "--config", cfg, "--data-dir", data)
	db.Close()
	if code != 1 || !strings.Contains(stderr, "another wprelay may be running") || !strings.Contains(stderr, "stop the sidecar first") {
		t.Fatalf("locked store: exit %d\n%s", code, stderr)
	}
	out, stderr, code := runCLI("rotate-key", "--config", cfg, "--data-dir", data)
	if code != 0 || !strings.Contains(out, `with key "k1"`) {
		t.Fatalf("rotate-key --data-dir: exit %d\n%s%s", code, out, stderr)
	}
}
