//go:build integration

package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// One redaction policy (relay.Redactor) everywhere: a generic hmac source's
// configured signature header (X-Hook-Digest, a name no built-in list
// knows), a secret from ${…} in a target URL's query, and a source secret a
// sender echoes in some header appear neither in the log (go-retryablehttp's
// lines included) nor in /raw, an export or a backup.
func TestRedaction_LogRawExportBackup(t *testing.T) {
	const (
		hookSecret = "e2e-redact-hook-secret-5d41402abc4b2a76"
		crmKey     = "e2e-redact-crm-key-7d793037a0760186"
	)
	t.Setenv("E2E_HOOK_SECRET", hookSecret)
	t.Setenv("E2E_CRM_KEY", crmKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // the target refuses connections: every attempt fails and is logged
	dir := t.TempDir()
	sc := startSidecar(t, dir, `
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json, level: info}
sources:
  - {name: hooks, kind: hmac, secrets: ["${E2E_HOOK_SECRET}"], hmac: {header: X-Hook-Digest, prefix: "sha256="}}
targets:
  - {name: crm, kind: http, url: "http://`+dead+`/in?api_key=${E2E_CRM_KEY}", allow_private: true, max_attempts: 2, timeout: 1s}
routes:
  - {source: hooks, to: [crm]}
`)
	body := []byte(`{"id":"redact-1","type":"contact.created"}`)
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write(body)
	digest := hex.EncodeToString(m.Sum(nil))
	rep := post(t, sc.public+"/hooks/hooks", body, map[string]string{
		"Content-Type": "application/json", "X-Hook-Digest": "sha256=" + digest, "X-Relay-Echo": "check " + hookSecret})
	if rep.Status != 202 {
		t.Fatalf("ingest: %d %v", rep.Status, rep.Body)
	}
	id, _ := rep.Body["id"].(string)
	ev := sc.waitEvent(id, "failed", 30*time.Second)
	if len(ev.Deliveries) != 1 || ev.Deliveries[0].Attempts != 2 {
		t.Fatalf("event: %+v", ev)
	}

	var raw map[string]any
	if st := sc.adminDo("GET", "/admin/v1/events/"+id+"/raw", "", &raw); st != 200 {
		t.Fatalf("raw: %d", st)
	}
	export := filepath.Join(dir, "export.jsonl")
	backup := filepath.Join(dir, "backup.db")
	for _, args := range [][]string{{"export", "--since", "0", "-o", export}, {"backup", backup}} {
		cmd := exec.Command(binPath, append(args, "--admin-url", sc.admin)...)
		cmd.Env = append(os.Environ(), "WPRELAY_ADMIN_TOKEN="+adminToken)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
	}
	exported, _ := os.ReadFile(export)
	backedUp, _ := os.ReadFile(backup)
	if !strings.Contains(string(exported), id) || !strings.Contains(string(backedUp), "contact.created") {
		t.Fatalf("the export or the backup lacks the event:\n%s", exported)
	}
	sc.stop()
	logs := sc.logs.String()
	if !strings.Contains(logs, "request failed") || !strings.Contains(logs, `"msg":"deliver"`) {
		t.Fatalf("the failed attempts were not logged:\n%s", logs)
	}
	for what, text := range map[string]string{"the log": logs, "/raw": mustJSON(raw), "the export": string(exported), "the backup": string(backedUp)} {
		for name, secret := range map[string]string{"the X-Hook-Digest signature": digest, "the ${E2E_CRM_KEY} of the target URL": crmKey, "the source secret": hookSecret} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds %s", what, name)
			}
		}
	}
	if h, _ := raw["headers"].(map[string]any); mustJSON(h["X-Hook-Digest"]) != `["REDACTED"]` || mustJSON(h["X-Relay-Echo"]) != `["check REDACTED"]` {
		t.Errorf("/raw headers: %s", mustJSON(raw))
	}
}
