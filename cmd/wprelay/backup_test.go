package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/store"
)

const backupTestToken = "backup-unit-token-6f1c0a9e"

// backupMain runs the daemon in-process with n events in its store.
func backupMain(t *testing.T, n int) (*Main, []string) {
	t.Helper()
	cfg := config.Default()
	cfg.Admin.Token = backupTestToken
	cfg.Sources = []config.Source{{Name: "stripe", Kind: "stripe", Secrets: []config.Secret{"whsec_backup_unit"}}}
	m := MustRunMain(t, cfg)
	var ids []string
	at := time.Now()
	for i := range n {
		body := fmt.Appendf(nil, `{"id":"evt_%d"}`, i)
		outs, err := m.DB.Enqueue(context.Background(), &relay.Batch{Events: []relay.Incoming{{
			Event:      relay.Event{Source: "stripe", Type: "invoice.paid", IdempotencyKey: fmt.Sprintf("stripe::evt_%d", i), ReceivedAt: at, Envelope: body},
			Raw:        &relay.Raw{Method: "POST", Path: "/hooks/stripe", Body: body},
			BodyHash:   sha256.Sum256(body),
			KeyExpires: at.Add(time.Hour),
		}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, outs[0].ID)
	}
	return m, ids
}

func runBackupCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestBackup_Help(t *testing.T) {
	for _, cmd := range []string{"backup", "restore", "healthcheck"} {
		code, _, stderr := runBackupCLI(cmd, "--help")
		if code != 0 || !strings.Contains(stderr, "Usage: wprelay "+cmd) || !strings.Contains(stderr, "Example:") {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, stderr)
		}
	}
}

func TestBackup_HotThenRestore(t *testing.T) {
	m, ids := backupMain(t, 25)
	t.Setenv(envAdminToken, backupTestToken)
	dir := t.TempDir()
	file := filepath.Join(dir, "backups", "wprelay.db")

	code, stdout, stderr := runBackupCLI("backup", file, "--admin-url", "http://"+m.AdminAddr())
	if code != 0 || !strings.Contains(stdout, "25 events") || !strings.Contains(stdout, "checked") {
		t.Fatalf("backup: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp is left behind: %v", file, err)
	}

	// The data dir being served cannot be restored into, nor copied directly.
	code, _, stderr = runBackupCLI("restore", file, "--data-dir", m.Config.DataDir)
	if code != 1 || !strings.Contains(stderr, "stop it first") {
		t.Errorf("restore into a served data dir: exit %d: %s", code, stderr)
	}
	code, _, stderr = runBackupCLI("backup", "--data-dir", m.Config.DataDir, filepath.Join(dir, "direct.db"))
	if code != 1 || !strings.Contains(stderr, "through its admin API") {
		t.Errorf("backup --data-dir of a served data dir: exit %d: %s", code, stderr)
	}

	restored := filepath.Join(dir, "restored")
	code, stdout, stderr = runBackupCLI("restore", file, "--data-dir", restored)
	if code != 0 || !strings.Contains(stdout, "25 events") {
		t.Fatalf("restore: exit %d\n%s\n%s", code, stdout, stderr)
	}
	db, err := store.OpenReadOnly(filepath.Join(restored, storeFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := db.Event(context.Background(), id); err != nil {
			t.Errorf("event %s missing after restore: %v", id, err)
		}
	}
	db.Close()

	// Again: the first restore's store is kept as .bak, a second .bak is refused.
	if code, _, stderr = runBackupCLI("restore", file, "--data-dir", restored); code != 0 {
		t.Fatalf("second restore: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(restored, storeFile+".bak")); err != nil {
		t.Errorf("no .bak after restoring over a store: %v", err)
	}
	if code, _, stderr = runBackupCLI("restore", file, "--data-dir", restored); code != 2 || !strings.Contains(stderr, "--force") {
		t.Errorf("restore with a .bak present: exit %d: %s", code, stderr)
	}
	if code, _, stderr = runBackupCLI("restore", file, "--data-dir", restored, "--force", "--compact"); code != 0 ||
		!strings.Contains(stderr, "compact: rewriting "+file) || !strings.Contains(stderr, "compact: ") || !regexp.MustCompile(`compact: .+ → .+ in `).MatchString(stderr) {
		t.Errorf("restore --force --compact: exit %d, no compact progress on stderr: %s", code, stderr)
	}
	// The store compacted onto itself (disk-and-retention.md).
	if code, stdout, stderr := runBackupCLI("restore", filepath.Join(restored, storeFile), "--data-dir", restored, "--compact", "--force"); code != 0 || !strings.Contains(stdout, "25 events") {
		t.Errorf("self-compaction: exit %d %s %s", code, stdout, stderr)
	}
	if code, stdout, stderr := runBackupCLI("check", "--data-dir", restored); code != 0 || !strings.Contains(stdout, ": ok") {
		t.Errorf("check after restore: exit %d %s %s", code, stdout, stderr)
	}
}

func TestBackup_Refusals(t *testing.T) {
	m, _ := backupMain(t, 1)
	dir := t.TempDir()
	file := filepath.Join(dir, "wprelay.db")

	t.Setenv(envAdminToken, "not-the-token-at-all")
	if code, _, stderr := runBackupCLI("backup", file, "--admin-url", "http://"+m.AdminAddr()); code != exitUnauthorized {
		t.Errorf("wrong token: exit %d, want %d: %s", code, exitUnauthorized, stderr)
	}
	t.Setenv(envAdminToken, backupTestToken)
	if code, _, _ := runBackupCLI("backup"); code != 2 {
		t.Errorf("no FILE: exit %d, want 2", code)
	}
	if code, _, _ := runBackupCLI("backup", dir); code != 2 {
		t.Errorf("FILE is a directory: exit %d, want 2", code)
	}

	// A damaged backup is refused and nothing changes.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not bbolt "), 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "data")
	if code, _, stderr := runBackupCLI("restore", junk, "--data-dir", target); code != 1 || !strings.Contains(stderr, "nothing was changed") {
		t.Errorf("restore of a damaged file: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a refused restore created %s", target)
	}
	if code, _, _ := runBackupCLI("restore", junk); code != 2 {
		t.Errorf("restore without --data-dir: exit %d, want 2", code)
	}
}

// TestBackup_CutCopyKeepsThePreviousFile: a stream shorter than its
// Content-Length (the sidecar stopped mid-copy) leaves FILE as it was.
func TestBackup_CutCopyKeepsThePreviousFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "only the start of a file")
	}))
	defer srv.Close()
	t.Setenv(envAdminToken, backupTestToken)
	file := filepath.Join(t.TempDir(), "wprelay.db")
	if err := os.WriteFile(file, []byte("yesterday's backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runBackupCLI("backup", file, "--admin-url", srv.URL)
	if code != 1 || !strings.Contains(stderr, "ended after") {
		t.Errorf("cut copy: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(file); string(b) != "yesterday's backup" {
		t.Errorf("the previous backup was changed: %q", b)
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("the cut copy was left as .tmp")
	}
}

func TestHealthcheck(t *testing.T) {
	m, _ := backupMain(t, 0)
	if code, stdout, stderr := runBackupCLI("healthcheck", "--url", "http://"+m.AdminAddr()+"/readyz"); code != 0 || !strings.Contains(stdout, "ready") {
		t.Errorf("ready sidecar: exit %d %s %s", code, stdout, stderr)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"status":"unavailable","reason":"draining"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	if code, _, stderr := runBackupCLI("healthcheck", "--url", srv.URL); code != 1 || !strings.Contains(stderr, "draining") {
		t.Errorf("draining sidecar: exit %d %s", code, stderr)
	}
	srv.Close()
	if code, _, _ := runBackupCLI("healthcheck", "--url", srv.URL, "--timeout", "1s"); code != 1 {
		t.Errorf("nothing listening: exit %d", code)
	}

	// --wait: ready after a few refusals.
	var calls atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	}))
	defer slow.Close()
	if code, _, stderr := runBackupCLI("healthcheck", "--url", slow.URL, "--wait", "10s"); code != 0 || calls.Load() != 3 {
		t.Errorf("--wait: exit %d after %d calls: %s", code, calls.Load(), stderr)
	}
}

func TestCopyMeter_ReportsLongCopies(t *testing.T) {
	var buf bytes.Buffer
	m := newCopyMeter(&buf, "backup")
	m.total = 4 << 20
	_, _ = m.Write(make([]byte, 1<<20)) // within the first second: quiet
	if buf.Len() != 0 {
		t.Fatalf("a short copy printed %q", buf.String())
	}
	m.last = m.last.Add(-time.Minute) // the next write is due a line
	_, _ = m.Write(make([]byte, 1<<20))
	m.done()
	if got := buf.String(); !strings.Contains(got, "backup: 2.0 MiB of 4.0 MiB (50%)") || strings.Count(got, "\n") != 2 {
		t.Errorf("progress lines (not a terminal: one line each):\n%s", got)
	}
	for n, want := range map[int64]string{512: "512 B", 1536: "1.5 KiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
