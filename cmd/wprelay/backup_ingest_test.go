//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprelay/wprelay/store"
)

// ack is one event the sidecar answered 202, and when the answer arrived.
type ack struct {
	id string
	at time.Time
}

// sendPadded posts a signed Stripe event with a pad-byte filler and
// returns its id when it was answered 202.
func sendPadded(client *http.Client, url, id string, pad int) (string, bool) {
	body := stripeEvent(id, "invoice.created")
	body = append(body[:len(body)-1], fmt.Sprintf(`,"pad":%q}`, strings.Repeat("p", pad))...)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signStripe(body, stripeSecret, time.Now()))
	resp, err := client.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var r struct{ ID, Status string }
	if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&r) != nil {
		return "", false
	}
	return r.ID, true
}

// TestBackup_HotUnderIngest takes a backup with the real binary while
// webhooks keep arriving and deliveries keep completing, restores it into a
// new data dir, and finds there every event acknowledged before the backup
// started; the restored file passes wprelay check and a sidecar serves it.
func TestBackup_HotUnderIngest(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json}
sources:
  - {name: stripe, kind: stripe, secrets: [%q]}
targets:
  - {name: wordpress, kind: wordpress, url: %q, jwt_secret: %q, signing_secret: %q, concurrency: 8, timeout: 5s}
routes:
  - {source: stripe, to: [wordpress]}
`, stripeSecret, tg.URL(), wpJWTSecret, wpSigning))
	url := sc.public + "/hooks/stripe"
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

	var mu sync.Mutex
	var acks []ack
	record := func(id string) {
		mu.Lock()
		acks = append(acks, ack{id, time.Now()})
		mu.Unlock()
	}
	// A store of some size first (about 200 events of 32 KiB), so that the
	// copy takes long enough for ingest to overlap it.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1); i <= 200; i = next.Add(1) {
				if id, ok := sendPadded(client, url, fmt.Sprintf("evt_pre_%d", i), 32<<10); ok {
					record(id)
				}
			}
		})
	}
	wg.Wait()

	// Then senders that keep going through the backup and after it.
	stop := make(chan struct{})
	var live atomic.Int64
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if id, ok := sendPadded(client, url, fmt.Sprintf("evt_live_%d_%d", w, i), 4<<10); ok {
					record(id)
					live.Add(1)
				}
			}
		})
	}
	waitLive := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for live.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("ingest stalled at %d events", live.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitLive(20)

	file := filepath.Join(t.TempDir(), "backups", "wprelay.db")
	cmd := binCmd("backup", file, "--admin-url", sc.admin)
	cmd.Env = append(cmd.Env, "WPRELAY_ADMIN_TOKEN="+adminToken)
	began := time.Now()
	out, err := cmd.CombinedOutput()
	ended := time.Now()
	waitLive(live.Load() + 20) // ingest went on after it, too
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("wprelay backup: %v\n%s", err, out)
	}

	var before, during []string
	for _, a := range acks {
		switch {
		case a.at.Before(began):
			before = append(before, a.id)
		case a.at.Before(ended):
			during = append(during, a.id)
		}
	}
	fi, _ := os.Stat(file)
	t.Logf("backup of %d bytes in %s (%s); %d events acknowledged before it, %d while it ran, %d in all",
		fi.Size(), ended.Sub(began).Round(time.Millisecond), strings.TrimSpace(string(out)), len(before), len(during), len(acks))
	if len(during) == 0 {
		t.Errorf("no event was acknowledged while the backup ran: ingest did not overlap the copy")
	}

	// Restore into a new data dir; the served one is refused.
	if out, err := binCmd("restore", file, "--data-dir", filepath.Join(sc.dir, "data")).CombinedOutput(); err == nil || !strings.Contains(string(out), "stop it first") {
		t.Errorf("restore into the served data dir: %v\n%s", err, out)
	}
	restored := filepath.Join(t.TempDir(), "data")
	if out, err := binCmd("restore", file, "--data-dir", restored).CombinedOutput(); err != nil {
		t.Fatalf("wprelay restore: %v\n%s", err, out)
	}
	checkStore(t, restored)

	db, err := store.OpenReadOnly(filepath.Join(restored, "wprelay.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, id := range before {
		if _, err := db.Event(context.Background(), id); err != nil {
			missing++
			if missing <= 5 {
				t.Errorf("event %s was acknowledged before the backup began and is not in it: %v", id, err)
			}
		}
	}
	st, err := db.Stats(context.Background())
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range st.Events {
		total += n
	}
	if missing > 0 || total < len(before) || total > len(acks) {
		t.Errorf("%d of %d missing; the backup holds %d events, want between %d and %d", missing, len(before), total, len(before), len(acks))
	}

	// A sidecar serves the restored store.
	sc2 := startSidecar(t, t.TempDir(), fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: %q
log: {format: json}
sources:
  - {name: stripe, kind: stripe, secrets: [%q]}
`, restored, stripeSecret))
	var ev eventView
	if code := sc2.adminDo("GET", "/admin/v1/events/"+before[0], "", &ev); code != 200 || ev.ID != before[0] {
		t.Errorf("the restored store, served: %d %+v", code, ev)
	}
}
