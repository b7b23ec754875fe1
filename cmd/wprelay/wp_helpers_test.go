//go:build integration

package main

// Helpers of the WordPress tests (wp_*_test.go): one real WordPress site
// (internal/wpstack) shared by the package's tests, the sidecar's config
// wired to it, and a client that signs requests to the plugin's routes as
// the sidecar does, built on golang-jwt and the standard-webhooks library.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// Secrets of the site → sidecar direction (the sidecar → WordPress
// direction uses wpJWTSecret and wpSigning from the harness).
const siteJWTSecret = "wp-e2e-site-jwt-secret-3c59dc048e8850243be8"

var siteSigning = testWhsec()

func init() { allSecrets = append(allSecrets, siteJWTSecret, siteSigning) }

// sidecarHost is the loopback address the sidecar listens on in the
// WordPress tests: not the site's host (127.0.0.1), as in production where
// the site has a public name, so that http_request_host_is_external is
// what lets the plugin reach it.
const sidecarHost = "127.0.0.2"

var (
	wpOnce sync.Once
	wpSite *wpstack.Site
	wpErr  error
)

// sharedSite returns the package's WordPress site, started on first use
// and stopped after the last test.
func sharedSite(t *testing.T) *wpstack.Site {
	t.Helper()
	wpOnce.Do(func() {
		wpSite, wpErr = wpstack.New(wpstack.Options{Logf: t.Logf})
		if wpErr == nil {
			afterAll = append(afterAll, wpSite.Stop)
		}
	})
	if wpErr != nil {
		wpstack.Fail(t, wpErr)
	}
	t.Cleanup(func() {
		log := wpSite.DebugLog()
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "PHP ") && strings.Contains(line, "/plugins/wprelay/") {
				t.Errorf("the plugin logged a PHP error: %s", line)
			}
			for _, secret := range []string{siteJWTSecret, siteSigning, wpJWTSecret, wpSigning, adminToken} {
				if strings.Contains(line, secret) {
					t.Errorf("WordPress's debug.log contains the secret %q", secret[:12]+"…")
				}
			}
		}
		if t.Failed() {
			t.Logf("WordPress debug.log:\n%s", tail(log, 40))
		}
	})
	return wpSite
}

// wpConstants are the wp-config.php constants for a sidecar at sidecarURL.
func wpConstants(sidecarURL, adminURL string) map[string]string {
	return map[string]string{
		"WPRELAY_SIDECAR_URL":         sidecarURL,
		"WPRELAY_SOURCE":              "site",
		"WPRELAY_SITE_JWT_SECRET":     siteJWTSecret,
		"WPRELAY_SITE_SIGNING_SECRET": siteSigning,
		"WPRELAY_WP_JWT_SECRET":       wpJWTSecret,
		"WPRELAY_WP_SIGNING_SECRET":   wpSigning,
		"WPRELAY_ADMIN_URL":           adminURL,
		"WPRELAY_ADMIN_TOKEN":         adminToken,
	}
}

// wpSidecarConfig is the sidecar's YAML for the WordPress tests: a Stripe
// source routed to the site's /events, the site's own source routed to
// the fake target, and the site's /user-sync and /results as targets.
func wpSidecarConfig(site *wpstack.Site, fakeURL string, wpTimeout string) string {
	return fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json, level: info}
sources:
  - name: stripe
    kind: stripe
    tolerance: 5m
    tenants:
      - {name: acme, secrets: [%[1]q]}
  - {name: site, kind: wordpress, issuer: %[2]q, jwt_secret: %[3]q, secrets: [%[4]q]}
targets:
  - {name: wordpress, kind: wordpress, url: %[5]q, jwt_secret: %[6]q, signing_secret: %[7]q, timeout: %[8]s, max_attempts: 5, concurrency: 4}
  - {name: fake, kind: http, url: %[9]q, jwt_secret: %[6]q, signing_secret: %[7]q, allow_private: true, timeout: 2s, max_attempts: 5}
routes:
  - {source: stripe, types: ["invoice.*"], to: [wordpress]}
  - {source: site, types: ["post.*", "test.*"], to: [fake]}
`, stripeSecret, site.URL, siteJWTSecret, siteSigning, site.URL+"/wp-json/wprelay/v1/events",
		wpJWTSecret, wpSigning, wpTimeout, fakeURL)
}

// startWPSidecar starts the sidecar on sidecarHost (fresh ports) with cfg
// and points the site's constants at it.
func startWPSidecar(t *testing.T, site *wpstack.Site, cfg string) *sidecar {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "wprelay.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{t: t, dir: dir, logs: &syncBuffer{}}
	for try := 1; !s.tryStartAt(freeHostAddr(t, sidecarHost), freeAddr(t)); try++ {
		if try == 5 || !strings.Contains(s.logs.String(), "address already in use") {
			t.Fatalf("sidecar not ready:\n%s", s.logs.String())
		}
	}
	t.Cleanup(func() {
		s.stop()
		logs := s.logs.String()
		for _, secret := range allSecrets {
			if strings.Contains(logs, secret) {
				t.Errorf("the sidecar's log contains the secret %q", secret[:12]+"…")
			}
		}
		if t.Failed() {
			t.Logf("sidecar log:\n%s", tail(logs, 40))
		}
	})
	site.SetConstants(t, wpConstants(s.public, s.admin))
	return s
}

// restartAt starts a stopped sidecar again on the same ports.
func (s *sidecar) restartSame() {
	s.t.Helper()
	s.startAt(strings.TrimPrefix(s.public, "http://"), strings.TrimPrefix(s.admin, "http://"))
}

func freeHostAddr(t testing.TB, host string) string {
	t.Helper()
	addr := freeAddr(t) // a free port on 127.0.0.1 is very likely free on host too
	return host + addr[strings.LastIndexByte(addr, ':'):]
}

// wpCall is one request to a plugin route, signed as the sidecar signs
// deliveries unless a field says otherwise.
type wpCall struct {
	Route     string // events, user-sync, results
	Body      []byte
	Key       string            // Idempotency-Key and webhook-id; default a fresh one
	WebhookID string            // when set, differs from Key
	JWTSecret string            // default wpJWTSecret
	Method    jwt.SigningMethod // default HS256
	SignKey   any               // for Method; default []byte(JWTSecret)
	Audience  string            // default the site's URL
	Issuer    string            // default "wprelay"
	IssuedAt  time.Time         // default now
	TTL       time.Duration     // default 60 s
	Signing   string            // default wpSigning
	Timestamp time.Time         // webhook-timestamp; default now
	SignBody  []byte            // the body the signature covers; default Body
	NoToken   bool
	NoSig     bool
}

type wpReply struct {
	Status int
	Body   map[string]any
	Raw    string
	Header http.Header
}

// call sends c to the site.
func (c wpCall) send(t *testing.T, site *wpstack.Site) wpReply {
	t.Helper()
	now := time.Now()
	if c.Key == "" {
		c.Key = uuid.NewString() + ":wordpress"
	}
	if c.WebhookID == "" {
		c.WebhookID = c.Key
	}
	if c.JWTSecret == "" {
		c.JWTSecret = wpJWTSecret
	}
	if c.Method == nil {
		c.Method = jwt.SigningMethodHS256
	}
	if c.SignKey == nil {
		c.SignKey = []byte(c.JWTSecret)
	}
	if c.Audience == "" {
		c.Audience = site.URL
	}
	if c.Issuer == "" {
		c.Issuer = "wprelay"
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}
	if c.TTL == 0 {
		c.TTL = time.Minute
	}
	if c.Signing == "" {
		c.Signing = wpSigning
	}
	if c.Timestamp.IsZero() {
		c.Timestamp = now
	}
	req, _ := http.NewRequest("POST", site.URL+"/wp-json/wprelay/v1/"+c.Route, bytes.NewReader(c.Body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", c.Key)
	if !c.NoToken {
		tok, err := jwt.NewWithClaims(c.Method, jwt.RegisteredClaims{
			Issuer: c.Issuer, Audience: jwt.ClaimStrings{c.Audience}, IssuedAt: jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.IssuedAt.Add(c.TTL)), ID: uuid.NewString(),
		}).SignedString(c.SignKey)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if !c.NoSig {
		wh, err := standardwebhooks.NewWebhook(c.Signing)
		if err != nil {
			t.Fatal(err)
		}
		signed := c.Body
		if c.SignBody != nil {
			signed = c.SignBody
		}
		sig, err := wh.Sign(c.WebhookID, c.Timestamp, signed)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("webhook-id", c.WebhookID)
		req.Header.Set("webhook-timestamp", fmt.Sprint(c.Timestamp.Unix()))
		req.Header.Set("webhook-signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := wpReply{Status: resp.StatusCode, Raw: string(data), Header: resp.Header}
	_ = json.Unmarshal(data, &r.Body)
	return r
}

// envelope returns a canonical envelope as the sidecar delivers it.
func envelope(id, typ string, data any) []byte {
	d, _ := json.Marshal(data)
	now := time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(map[string]any{
		"id": id, "source": "crm", "tenant": "", "type": typ, "idempotency_key": "crm::" + id,
		"occurred_at": now, "received_at": now, "actor": map[string]string{"id": "", "email": ""},
		"subject": map[string]string{"id": "", "type": strings.SplitN(typ, ".", 2)[0]},
		"action":  map[string]string{"type": "", "reason": ""}, "data": json.RawMessage(d),
	})
	return b
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
