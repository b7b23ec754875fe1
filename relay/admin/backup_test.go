package admin_test

import (
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/relaytest"
	"github.com/wprelay/wprelay/store"
)

const backupToken = "backup-test-token-0123456789"

func TestAPI_Backup_StreamsACheckedCopy(t *testing.T) {
	ctx := t.Context()
	db, err := store.Open(filepath.Join(t.TempDir(), "wprelay.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	at := time.Now()
	outs, err := db.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{{
		Event:      relay.Event{Source: "stripe", Type: "invoice.paid", IdempotencyKey: "stripe::evt_1", ReceivedAt: at, Envelope: []byte(`{}`)},
		Raw:        &relay.Raw{Method: "POST", Path: "/hooks/stripe", Body: []byte(`{"id":"evt_1"}`)},
		BodyHash:   sha256.Sum256([]byte(`{"id":"evt_1"}`)),
		KeyExpires: at.Add(time.Hour),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	api := admin.New(db, backupToken, slog.New(slog.DiscardHandler))
	api.Backup = db
	srv := httptest.NewServer(api)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/admin/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the token: %d, want 401", resp.StatusCode)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+backupToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if cl, _ := strconv.Atoi(resp.Header.Get("Content-Length")); cl != len(body) || cl == 0 {
		t.Fatalf("Content-Length %q, body %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := store.OpenReadOnly(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Fatal(err)
	}
	if e, err := cp.Event(ctx, outs[0].ID); err != nil || e.IdempotencyKey != "stripe::evt_1" {
		t.Errorf("the event in the copy: %+v, %v", e, err)
	}
}

func TestAPI_Backup_NotSupported(t *testing.T) {
	db := relaytest.NewMemStore() // a store without Backup
	srv := httptest.NewServer(admin.New(db, backupToken, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+backupToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("a store without Backup: %d, want 501", resp.StatusCode)
	}
}
