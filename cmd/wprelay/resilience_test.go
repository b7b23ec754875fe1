//go:build integration

package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// burst sends n fresh events over c connections and returns the ids
// answered 202 and every latency. stop ends it early.
func burst(t *testing.T, url, prefix string, n, c int, stop <-chan struct{}, onAck func(int64)) (acked []string, lat []time.Duration) {
	t.Helper()
	var mu sync.Mutex
	var next, nAcked atomic.Int64
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: c}}
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if stop != nil {
					select {
					case <-stop:
						return
					default:
					}
				}
				body := stripeEvent(fmt.Sprintf("%s_%d", prefix, i), "invoice.created")
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Stripe-Signature", signStripe(body, stripeSecret, time.Now()))
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				var r struct {
					ID string `json:"id"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				took := time.Since(start)
				mu.Lock()
				lat = append(lat, took)
				if resp.StatusCode == 202 {
					acked = append(acked, r.ID)
				}
				mu.Unlock()
				if resp.StatusCode == 202 && onAck != nil {
					onAck(nAcked.Add(1))
				}
			}
		})
	}
	wg.Wait()
	return acked, lat
}

func p99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// waitDelivered waits until every id reached the target; it returns how
// many never did.
func waitDelivered(tg *target, ids []string, within time.Duration) (lost int) {
	deadline := time.Now().Add(within)
	for {
		got := tg.delivered()
		lost = 0
		for _, id := range ids {
			if got[id] == 0 {
				lost++
			}
		}
		if lost == 0 || time.Now().After(deadline) {
			return lost
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func duplicates(tg *target) int {
	n := 0
	for _, c := range tg.delivered() {
		n += c - 1
	}
	return n
}

func TestE2E_Resilience_Kill9FiveRounds(t *testing.T) {
	tg := newTarget(t, nil)
	dir := t.TempDir()
	sc := startSidecar(t, dir, e2eConfig(tg.URL(), ""))
	var acked []string
	for round := range 5 {
		stop := make(chan struct{})
		var once sync.Once
		ids, _ := burst(t, sc.public+"/hooks/stripe", fmt.Sprintf("evt_k9_%d", round), 800, 16, stop, func(n int64) {
			if n == 300 {
				once.Do(func() { sc.kill9(); close(stop) })
			}
		})
		once.Do(func() { sc.kill9(); close(stop) })
		acked = append(acked, ids...)
		checkStore(t, filepath.Join(dir, "data"))
		sc.start()
	}
	lost := waitDelivered(tg, acked, 60*time.Second)
	t.Logf("kill -9 x5: acknowledged %d, delivered %d distinct, lost %d, duplicates delivered %d, bbolt check clean after each kill",
		len(acked), len(tg.delivered()), lost, duplicates(tg))
	if lost != 0 {
		t.Fatalf("%d acknowledged events lost", lost)
	}
	tg.checkAuthentic()
}

func TestE2E_Resilience_LateSuccessIsRetriedAndDedupedAtReceiver(t *testing.T) {
	// The first attempt is applied by the receiver but answered after the
	// sidecar's 2 s timeout; the sidecar retries with the same
	// Idempotency-Key, and the receiver must not apply it twice.
	var mu sync.Mutex
	applied := map[string]int{}
	tg := newTarget(t, func(n int, key string) answer {
		mu.Lock()
		if applied[key] == 0 {
			applied[key]++ // the receiver's own dedupe on Idempotency-Key
		}
		mu.Unlock()
		if n == 1 {
			return answer{status: 200, delay: 2500 * time.Millisecond}
		}
		return answer{status: 200}
	})
	sc := startSidecar(t, t.TempDir(), e2eConfig(tg.URL(), ""))
	body := stripeEvent("evt_late", "invoice.created")
	r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
	id := r.Body["id"].(string)
	ev := sc.waitEvent(id, "delivered", 20*time.Second)
	d := ev.Deliveries[0]
	if d.Attempts != 2 || !strings.Contains(d.History[0].Error, "timeout") {
		t.Fatalf("delivery: %+v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := tg.attempts(id + ":wordpress"); n != 2 || applied[id+":wordpress"] != 1 {
		t.Fatalf("receiver saw %d attempts, applied %d times", n, applied[id+":wordpress"])
	}
	t.Logf("late 200: acknowledged 1, delivered 1, lost 0, duplicates delivered %d, duplicates applied 0", duplicates(tg))
}

func TestE2E_Resilience_ClockSkew(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), e2eConfig(tg.URL(), "")) // tolerance 5m
	for _, c := range []struct {
		skew time.Duration
		want int
	}{
		{-290 * time.Second, 202}, {290 * time.Second, 202},
		{-310 * time.Second, 401}, {310 * time.Second, 401},
	} {
		body := stripeEvent(fmt.Sprintf("evt_skew_%d", int(c.skew.Seconds())), "invoice.created")
		r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now().Add(c.skew))})
		if r.Status != c.want || (c.want == 401 && r.Body["error"] != "stale_timestamp") {
			t.Errorf("skew %v: %d %v, want %d", c.skew, r.Status, r.Body, c.want)
		}
	}
}

func TestE2E_Resilience_5xxStormBreaker(t *testing.T) {
	var healthy atomic.Bool
	var hits atomic.Int64
	tg := newTarget(t, func(int, string) answer {
		hits.Add(1)
		if healthy.Load() {
			return answer{status: 200}
		}
		return answer{status: 503}
	})
	// Same config with a short breaker cool-down and a generous retry budget.
	cfg := strings.Replace(e2eConfig(tg.URL(), ""), "    concurrency: 8\n", "    concurrency: 8\n    max_attempts: 50\n    breaker: {failures: 5, cooldown: 1s, max_cooldown: 2s}\n", 1)
	cfg = strings.Replace(cfg, "    max_attempts: 4\n", "", 1)
	sc := startSidecar(t, t.TempDir(), cfg)

	acked, lat := burst(t, sc.public+"/hooks/stripe", "evt_storm", 3000, 32, nil, nil)
	if len(acked) != 3000 {
		t.Fatalf("only %d of 3000 ingested during the storm", len(acked))
	}
	var stats struct {
		Targets map[string]struct {
			Breaker string `json:"breaker"`
		} `json:"targets"`
	}
	sc.adminDo("GET", "/admin/v1/stats", "", &stats)
	if stats.Targets["wordpress"].Breaker == "closed" {
		t.Fatalf("breaker closed during a 503 storm: %+v", stats)
	}
	duringStorm := hits.Load()
	healthy.Store(true)
	lost := waitDelivered(tg, acked, 90*time.Second)
	t.Logf("5xx storm: ingested 3000 (p99 %v) while the breaker was %s; %d attempts reached the failing target; after recovery: delivered %d, lost %d, duplicates delivered %d, total attempts %d",
		p99(lat), stats.Targets["wordpress"].Breaker, duringStorm, len(tg.delivered()), lost, duplicates(tg), hits.Load())
	if lost != 0 {
		t.Fatalf("%d events lost", lost)
	}
	// Without the breaker every event would have been tried (and failed)
	// at least once during the storm.
	if duringStorm > 300 {
		t.Fatalf("%d attempts reached the failing target", duringStorm)
	}
}

func TestE2E_Resilience_SlowLorisAndHugeHeaders(t *testing.T) {
	tg := newTarget(t, nil)
	cfg := e2eConfig(tg.URL(), "http: {read_header_timeout: 1s, read_timeout: 5s, write_timeout: 5s, idle_timeout: 5s, max_header_bytes: 8192}\n")
	sc := startSidecar(t, t.TempDir(), cfg)
	addr := strings.TrimPrefix(sc.public, "http://")

	// 200 clients that send half a request and stall.
	var conns []net.Conn
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /hooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Honest clients are served meanwhile.
	for i := range 20 {
		body := stripeEvent(fmt.Sprintf("evt_loris_%d", i), "invoice.created")
		start := time.Now()
		r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
		if r.Status != 202 || time.Since(start) > 500*time.Millisecond {
			t.Fatalf("honest client during slow-loris: %d after %v", r.Status, time.Since(start))
		}
	}
	// The stalled connections are cut after read_header_timeout.
	time.Sleep(1500 * time.Millisecond)
	closed := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		buf := make([]byte, 1)
		if _, err := c.Read(buf); err != nil && !isTimeout(err) {
			closed++
		}
	}
	if closed < 190 {
		t.Fatalf("only %d of 200 stalled connections were cut after the header timeout", closed)
	}

	// Headers over max_header_bytes: 431.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /hooks/stripe HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nContent-Length: 2\r\n\r\n{}", strings.Repeat("a", 20000))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("huge headers: %d", resp.StatusCode)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestE2E_Resilience_TLSWithHSTS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	tg := newTarget(t, nil)
	sc := startSidecar(t, dir, e2eConfig(tg.URL(), "tls: {cert_file: cert.pem, key_file: key.pem}\n"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	url := strings.Replace(sc.public, "http://", "https://", 1) + "/hooks/stripe"
	body := stripeEvent("evt_tls", "invoice.created")
	send := func(cfg *tls.Config) (*http.Response, error) {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", signStripe(body, stripeSecret, time.Now()))
		return (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Do(req)
	}
	resp, err := send(&tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 || !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("TLS: %d HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	if _, err := send(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 client was accepted")
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
