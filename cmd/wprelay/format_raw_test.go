//go:build integration

package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// A target with format: raw receives the provider's body byte for byte (a
// pretty-printed Stripe event here), with its Content-Type, and still the
// sidecar's JWT, Standard Webhooks signature over those bytes and
// Idempotency-Key, which the receiver checks with golang-jwt and the
// standard-webhooks library.
func TestE2E_FormatRaw_ProviderBodyAsItCame(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook(wpSigning)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		body []byte
		h    http.Header
		bad  string
	}
	var mu sync.Mutex
	var reqs []got
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		g := got{body: b, h: r.Header.Clone()}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, err := jwt.ParseWithClaims(tok, &jwt.RegisteredClaims{}, func(*jwt.Token) (any, error) { return []byte(wpJWTSecret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("wprelay"), jwt.WithAudience(srv.URL), jwt.WithExpirationRequired()); err != nil {
			g.bad = "jwt: " + err.Error()
		} else if err := wh.Verify(b, r.Header); err != nil {
			g.bad = "signature: " + err.Error()
		}
		mu.Lock()
		reqs = append(reqs, g)
		mu.Unlock()
	}))
	defer srv.Close()

	cfg := fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json, level: info}
sources:
  - {name: stripe, kind: stripe, secrets: [%q]}
targets:
  - {name: crm, kind: http, url: %q, allow_private: true, format: raw, jwt_secret: %q, signing_secret: %q, timeout: 2s}
routes:
  - {source: stripe, types: ["invoice.*"], to: [crm]}
`, stripeSecret, srv.URL+"/hooks/stripe-events", wpJWTSecret, wpSigning)
	sc := startSidecar(t, t.TempDir(), cfg)

	body := []byte("{\n  \"id\": \"evt_raw_1\",\n  \"object\": \"event\",\n  \"created\": " + fmt.Sprint(time.Now().Unix()) +
		",\n  \"type\": \"invoice.paid\",\n  \"data\": {\n    \"object\": {\"id\": \"in_raw_1\", \"object\": \"invoice\", \"amount_due\": 1999}\n  }\n}\n")
	r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
	if r.Status != 202 {
		t.Fatalf("ingest: %d %v", r.Status, r.Body)
	}
	id := r.Body["id"].(string)
	sc.waitEvent(id, "delivered", 10*time.Second)

	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 1 {
		t.Fatalf("the target got %d requests, want 1", len(reqs))
	}
	g := reqs[0]
	if g.bad != "" {
		t.Fatalf("the receiver refused the request: %s", g.bad)
	}
	if string(g.body) != string(body) {
		t.Fatalf("body:\n%q\nwant the provider's bytes:\n%q", g.body, body)
	}
	if g.h.Get("Idempotency-Key") != id+":crm" || g.h.Get("webhook-id") != id+":crm" || g.h.Get("Content-Type") != "application/json" {
		t.Fatalf("headers: %v", g.h)
	}
	if g.h.Get("Stripe-Signature") != "" {
		t.Fatal("the provider's signature header was forwarded")
	}
}
