package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/store"
)

// Every command that opens a store reports a truncated file as damaged,
// naming the runbook, and exits 1; each panicked ("assertion failed: Page
// expected to be: 58, but self identifies as 0", exit 2).
func TestCommands_DamagedStore(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(data, "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	for i := range 200 {
		body := []byte(fmt.Sprintf(`{"id":"evt_%d","pad":%q}`, i, strings.Repeat("x", 300)))
		_, err := db.Enqueue(context.Background(), &relay.Batch{Events: []relay.Incoming{{
			Event:      relay.Event{Source: "stripe", Type: "invoice.paid", IdempotencyKey: fmt.Sprintf("stripe::evt_%d", i), ReceivedAt: at, Envelope: []byte(`{}`)},
			Raw:        &relay.Raw{Method: "POST", Path: "/hooks/stripe", Body: body},
			BodyHash:   sha256.Sum256(body),
			KeyExpires: at.Add(time.Hour),
		}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	size := db.Size()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size/4); err != nil {
		t.Fatal(err)
	}
	backupFile := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(backupFile, mustRead(t, path), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, filepath.Join(dir, "wprelay.yaml"), `admin: {token: "0123456789abcdef0123"}
data_dir: ./data
sources:
  - {name: stripe, kind: stripe, secrets: [s3cret]}
`)
	for _, args := range [][]string{
		{"serve", "--config", cfg, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"},
		{"check", "--data-dir", data},
		{"restore", backupFile, "--data-dir", filepath.Join(dir, "other")},
		{"backup", filepath.Join(dir, "copy.db"), "--data-dir", data},
		{"export", "--from", "file", "--data-dir", data, "--since", "0"},
	} {
		t.Run(args[0], func(t *testing.T) {
			_, stderr, code := runCLI(args...)
			if code != 1 || !strings.Contains(stderr, "store file damaged: ") ||
				!strings.Contains(stderr, "(see docs/runbooks/backup-and-restore.md)") || strings.Contains(stderr, "panic") {
				t.Errorf("wprelay %s: exit %d\n%s\nwant exit 1 and store file damaged: … (see docs/runbooks/backup-and-restore.md)", strings.Join(args, " "), code, stderr)
			}
		})
	}
}
