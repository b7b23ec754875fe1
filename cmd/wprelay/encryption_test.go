//go:build integration

package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestE2E_Encryption_AtRestAndRotation(t *testing.T) {
	keyA := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA1}, 32))
	keyB := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xB2}, 32))
	tg := newTarget(t, nil)
	dir := t.TempDir()
	cfg := func(keys string) string { return e2eConfig(tg.URL(), "encryption: {keys: ["+keys+"]}\n") }

	sc := startSidecar(t, dir, cfg(`{id: a, key: "`+keyA+`"}`))
	var ids []string
	for i := range 5 {
		body := stripeEvent("evt_sealed_"+string(rune('a'+i)), "invoice.created")
		body = bytes.Replace(body, []byte(`"currency":"usd"`), []byte(`"currency":"usd","note":"PLAINTEXT-MARKER-77"`), 1)
		r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
		ids = append(ids, r.Body["id"].(string))
	}
	for _, id := range ids {
		sc.waitEvent(id, "delivered", 10*time.Second)
	}
	sc.stop()
	db, _ := os.ReadFile(filepath.Join(dir, "data", "wprelay.db"))
	if bytes.Contains(db, []byte("PLAINTEXT-MARKER-77")) {
		t.Fatal("the store file holds a body in plain text")
	}
	// The target got the plain envelope.
	if got := tg.got[0].Envelope["data"].(map[string]any)["object"].(map[string]any)["note"]; got != "PLAINTEXT-MARKER-77" {
		t.Fatalf("envelope data at the target: %v", got)
	}

	// A wrong key stops the start, loudly.
	os.WriteFile(filepath.Join(dir, "wprelay.yaml"), []byte(cfg(`{id: a, key: "`+keyB+`"}`)), 0o600)
	out, err := binCmd("serve", "--config", filepath.Join(dir, "wprelay.yaml"), "--listen", freeAddr(t), "--admin-listen", freeAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "encryption key does not match") {
		t.Fatalf("wrong key: %v\n%s", err, out)
	}

	// Rotate offline: new key first, old key kept.
	os.WriteFile(filepath.Join(dir, "wprelay.yaml"), []byte(cfg(`{id: b, key: "`+keyB+`"}, {id: a, key: "`+keyA+`"}`)), 0o600)
	out, err = binCmd("rotate-key", "--config", filepath.Join(dir, "wprelay.yaml")).CombinedOutput()
	// One record per event: its raw request, which holds its envelope.
	if err != nil || !strings.Contains(string(out), "re-sealed 5 records") {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	// Then the old key goes, and everything still reads.
	sc = startSidecar(t, dir, cfg(`{id: b, key: "`+keyB+`"}`))
	for _, id := range ids {
		var raw map[string]any
		if st := sc.adminDo("GET", "/admin/v1/events/"+id+"/raw", "", &raw); st != 200 || !strings.Contains(mustJSON(raw), "PLAINTEXT-MARKER-77") {
			t.Fatalf("raw %s after rotation: %d %v", id, st, raw)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// binCmd runs the built binary with the environment the e2e configs expect.
func binCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "WPRELAY_E2E_ADMIN="+adminToken)
	return cmd
}
