//go:build integration

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// batchConfig is a config with a stripe and a hubspot source routed to
// the test's target, batches allowed up to maxBatch events.
func batchConfig(targetURL string, maxBatch int) string {
	return fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json, level: warn}
limits: {max_body: 1048576, max_batch: %d}
sources:
  - {name: stripe, kind: stripe, tenants: [{name: acme, secrets: [%q]}]}
  - {name: hubspot, kind: hubspot, public_url: %q, secrets: [%q]}
targets:
  - {name: wordpress, kind: wordpress, url: %q, jwt_secret: %q, signing_secret: %q, timeout: 2s, concurrency: 8}
routes:
  - {source: stripe, to: [wordpress]}
  - {source: hubspot, to: [wordpress]}
`, maxBatch, stripeSecret, hubspotPublic, hubspotSecret, targetURL, wpJWTSecret, wpSigning)
}

// hubspotBody is a batch of n HubSpot events (about 180 bytes each, as in
// the report: 2,000 in 355 KiB) numbered from first.
func hubspotBody(first, n int) []byte {
	parts := make([]string, n)
	for i := range parts {
		id := first + i
		parts[i] = fmt.Sprintf(`{"eventId":%d,"subscriptionId":2881778,"portalId":62515,"occurredAt":%d,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":%d}`,
			id, time.Now().UnixMilli(), 65059681000+id)
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}

func hubspotHeaders(body []byte) map[string]string {
	ts := fmt.Sprint(time.Now().UnixMilli())
	return map[string]string{"X-HubSpot-Request-Timestamp": ts, "X-HubSpot-Signature-v3": b64HMAC(hubspotSecret, "POST", hubspotPublic, string(body), ts)}
}

// TestE2E_HubSpotBatch_Bounded: a 2,000-element HubSpot batch (max_batch
// raised to 2,000) is answered in under a second and stores its body once
// (it took 12 s and stored it 2,000 times), while Stripe events sent
// meanwhile are answered in milliseconds; the default max_batch refuses
// it with 413 naming the limit.
func TestE2E_HubSpotBatch_Bounded(t *testing.T) {
	tg := newTarget(t, nil)
	dir := t.TempDir()
	sc := startSidecar(t, dir, batchConfig(tg.URL(), 2000))
	hook := sc.public + "/hooks/hubspot"
	dbPath := filepath.Join(dir, "data", "wprelay.db")
	// Warm up: one small batch, one Stripe event.
	wantStatus(t, "warm-up batch", post(t, hook, hubspotBody(1_000_000, 2), hubspotHeaders(hubspotBody(1_000_000, 2))), 202, "")
	sizeBefore := fileSize(t, dbPath)

	body := hubspotBody(1, 2000)
	var (
		mu        sync.Mutex
		stripeLat []time.Duration
		done      = make(chan struct{})
		wg        sync.WaitGroup
	)
	wg.Add(1)
	go func() { // Stripe keeps sending while the batch goes in
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			ev := stripeEvent(fmt.Sprintf("evt_batch_%d", i), "invoice.created")
			start := time.Now()
			r := post(t, sc.public+"/hooks/stripe/acme", ev, map[string]string{"Stripe-Signature": signStripe(ev, stripeSecret, time.Now())})
			lat := time.Since(start)
			if r.Status != 202 {
				t.Errorf("stripe during the batch: %d %v", r.Status, r.Body)
				return
			}
			mu.Lock()
			stripeLat = append(stripeLat, lat)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	r := post(t, hook, body, hubspotHeaders(body))
	took := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	close(done)
	wg.Wait()
	wantStatus(t, "2,000-element batch", r, 202, "")
	if ids, _ := r.Body["ids"].([]any); len(ids) != 2000 {
		t.Fatalf("batch: %d ids, want 2000", len(ids))
	}
	slices.Sort(stripeLat)
	p50, worst := stripeLat[len(stripeLat)/2], stripeLat[len(stripeLat)-1]
	sc.stop()
	growth := fileSize(t, dbPath) - sizeBefore
	rawBytes, used := bucketBytes(t, dbPath, "raws")
	t.Logf("2,000-element batch, body %d bytes: answered in %s; store file grew %d bytes (%.1f× the body; pages in use %d bytes for all %d events), raw requests hold %d bytes; "+
		"%d Stripe events meanwhile: median %s, worst %s",
		len(body), took.Round(time.Millisecond), growth, float64(growth)/float64(len(body)), used, 2002+len(stripeLat), rawBytes, len(stripeLat), p50.Round(time.Millisecond), worst.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("the batch was answered in %s, want under a second", took)
	}
	if rawBytes >= int64(2*len(body)) {
		t.Errorf("raw requests hold %d bytes for a %d-byte batch: want it stored once", rawBytes, len(body))
	}
	if growth > int64(len(body))+4096*2000 {
		t.Errorf("the store grew %d bytes for a %d-byte batch of 2,000 events: more than the body plus 4 KiB per event", growth, len(body))
	}
	if len(stripeLat) < 5 || p50 > 50*time.Millisecond || worst > 300*time.Millisecond {
		t.Errorf("Stripe during the batch: %d events, median %s, worst %s; want them answered in milliseconds", len(stripeLat), p50, worst)
	}

	// The default limit (100) refuses the same batch, naming it.
	sc2 := startSidecar(t, t.TempDir(), strings.Replace(batchConfig(tg.URL(), 2000), "max_batch: 2000", "max_batch: 100", 1))
	over := post(t, sc2.public+"/hooks/hubspot", body, hubspotHeaders(body))
	wantStatus(t, "over max_batch", over, 413, "payload_too_large")
	if msg, _ := over.Body["message"].(string); !strings.Contains(msg, "limits.max_batch") || !strings.Contains(msg, "100") {
		t.Errorf("413 message %q does not name limits.max_batch and its value", msg)
	}
	if n := len(eventsOf(t, sc2, "hubspot")); n != 0 {
		t.Errorf("the refused batch stored %d events", n)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// bucketBytes sums the values of a bucket of a stopped sidecar's store,
// and reports the bytes of the pages it uses (its size but free pages).
func bucketBytes(t *testing.T, path, bucket string) (n, used int64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		st := db.Stats()
		used = tx.Size() - int64(st.FreePageN+st.PendingPageN)*int64(db.Info().PageSize)
		return tx.Bucket([]byte(bucket)).ForEach(func(_, v []byte) error { n += int64(len(v)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n, used
}
