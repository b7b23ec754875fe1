//go:build integration

package main

// End-to-end tests of the shopify, slack, hubspot and woocommerce kinds and
// of "wprelay sign", through the real binary. Requests are signed here by
// hand (HMACs computed in this file, independently of relay/provider), or
// by the binary's sign command.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay/provider"
)

const (
	shopifySecret = "e2e-shopify-secret-3c59dc048e8850243be8"
	slackSecret   = "e2e-slack-signing-secret-a87ff679a2f3e71d"
	hubspotSecret = "e2e-hubspot-client-secret-e4da3b7fbbce2345"
	wooSecret     = "e2e-woo-secret-1679091c5a880faf6fb5e6087eb1b2dc"
	hmacSecret    = "e2e-hmac-secret-8f14e45fceea167a5a36dedd"
	siteJWT       = "e2e-site-jwt-secret-c4ca4238a0b923820dcc509a"
	hubspotPublic = "https://hooks.example.com/hooks/hubspot"
	siteIssuer    = "https://shop.example.com"
)

var standardSecret = testWhsec()

func init() {
	allSecrets = append(allSecrets, shopifySecret, slackSecret, hubspotSecret, wooSecret, standardSecret, hmacSecret, siteJWT)
}

// providersConfig is a config with one source of every kind, each routed
// (every type) to the test's target.
func providersConfig(targetURL string) string {
	return fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json, level: info}
sources:
  - {name: stripe, kind: stripe, secrets: [%q]}
  - {name: gh, kind: github, secrets: [%q]}
  - {name: shop, kind: shopify, secrets: [%q]}
  - {name: slack, kind: slack, secrets: [%q]}
  - {name: hubspot, kind: hubspot, public_url: %q, secrets: [%q]}
  - {name: woo, kind: woocommerce, secrets: [%q]}
  - {name: std, kind: standard, secrets: [%q]}
  - {name: crm, kind: hmac, secrets: [%q],
     hmac: {header: X-Signature, prefix: "sha256=", template: "{timestamp}.{body}", timestamp_header: X-Timestamp, type_path: type}}
  - {name: site, kind: wordpress, issuer: %q, jwt_secret: %q, secrets: [%q]}
targets:
  - {name: wordpress, kind: wordpress, url: %q, jwt_secret: %q, signing_secret: %q, timeout: 2s, concurrency: 8}
routes:
  - {source: stripe, to: [wordpress]}
  - {source: gh, to: [wordpress]}
  - {source: shop, to: [wordpress]}
  - {source: slack, to: [wordpress]}
  - {source: hubspot, to: [wordpress]}
  - {source: woo, to: [wordpress]}
  - {source: std, to: [wordpress]}
  - {source: crm, to: [wordpress]}
  - {source: site, to: [wordpress]}
`, stripeSecret, githubSecret, shopifySecret, slackSecret, hubspotPublic, hubspotSecret, wooSecret, standardSecret, hmacSecret,
		siteIssuer, siteJWT, standardSecret, targetURL, wpJWTSecret, wpSigning)
}

func macOf(secret string, parts ...string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func b64HMAC(secret string, parts ...string) string {
	return base64.StdEncoding.EncodeToString(macOf(secret, parts...))
}

func hexHMAC(secret string, parts ...string) string {
	return hex.EncodeToString(macOf(secret, parts...))
}

// envelopeOf waits until the event is delivered and returns the envelope
// the target received for it.
func envelopeOf(t *testing.T, sc *sidecar, tg *target, id string) map[string]any {
	t.Helper()
	sc.waitEvent(id, "delivered", 10*time.Second)
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for _, g := range tg.got {
		if g.EventID == id {
			return g.Envelope
		}
	}
	t.Fatalf("the target did not get event %s", id)
	return nil
}

// wantNormal fails t unless the envelope's actor, subject and action are
// the given "id/email", "id/type" and "type/reason".
func wantNormal(t *testing.T, env map[string]any, actor, subject, action string) {
	t.Helper()
	pair := func(k, a, b string) string {
		m, _ := env[k].(map[string]any)
		return fmt.Sprint(m[a]) + "/" + fmt.Sprint(m[b])
	}
	if got := pair("actor", "id", "email"); got != actor {
		t.Errorf("actor %s, want %s", got, actor)
	}
	if got := pair("subject", "id", "type"); got != subject {
		t.Errorf("subject %s, want %s", got, subject)
	}
	if got := pair("action", "type", "reason"); got != action {
		t.Errorf("action %s, want %s", got, action)
	}
}

// eventsOf lists the events stored for source.
func eventsOf(t *testing.T, sc *sidecar, source string) []eventView {
	t.Helper()
	var list struct {
		Events []eventView `json:"events"`
	}
	if st := sc.adminDo("GET", "/admin/v1/events?source="+source, "", &list); st != 200 {
		t.Fatalf("list %s: %d", source, st)
	}
	return list.Events
}

func wantStatus(t *testing.T, name string, r reply, status int, code string) {
	t.Helper()
	if r.Status != status || (code != "" && r.Body["error"] != code) {
		t.Fatalf("%s: %d %v, want %d %s", name, r.Status, r.Body, status, code)
	}
}

func TestE2E_Provider_Shopify(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), providersConfig(tg.URL()))
	hook := sc.public + "/hooks/shop"
	order := []byte(`{"id":820982911946154508,"email":"jon@example.com","total_price":"199.65","customer":{"id":115310627314723954,"email":"jon@example.com"}}`)
	headers := func(body []byte) map[string]string {
		return map[string]string{"X-Shopify-Hmac-Sha256": b64HMAC(shopifySecret, string(body)), "X-Shopify-Topic": "orders/create",
			"X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "X-Shopify-Shop-Domain": "example.myshopify.com",
			"X-Shopify-Triggered-At": time.Now().UTC().Format(time.RFC3339Nano)}
	}
	valid := post(t, hook, order, headers(order))
	wantStatus(t, "valid", valid, 202, "")
	dup := post(t, hook, order, headers(order))
	wantStatus(t, "retry", dup, 200, "")
	if dup.Body["status"] != "duplicate" || dup.Body["id"] != valid.Body["id"] {
		t.Fatalf("retry: %v, want the duplicate of %v", dup.Body, valid.Body)
	}
	tampered := headers(order)
	wantStatus(t, "tampered", post(t, hook, append(order[:len(order):len(order)], ' '), tampered), 401, "invalid_signature")

	env := envelopeOf(t, sc, tg, valid.Body["id"].(string))
	if env["type"] != "orders/create" || env["idempotency_key"] != "shop::b54557e4-bdd9-4b37-8a5f-bf7d70bcd043" {
		t.Errorf("envelope %v", env)
	}
	wantNormal(t, env, "115310627314723954/jon@example.com", "820982911946154508/order", "create/")
	tg.checkAuthentic()
}

func TestE2E_Provider_Slack(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), providersConfig(tg.URL()))
	hook := sc.public + "/hooks/slack"
	signed := func(body []byte, at time.Time, ct string) map[string]string {
		ts := fmt.Sprint(at.Unix())
		return map[string]string{"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + hexHMAC(slackSecret, "v0:"+ts+":", string(body)), "Content-Type": ct}
	}

	challenge := []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	ch := post(t, hook, challenge, signed(challenge, time.Now(), "application/json"))
	if ch.Status != 200 || ch.Body["challenge"] != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" || len(ch.Body) != 1 {
		t.Fatalf("url_verification: %d %v", ch.Status, ch.Body)
	}
	wantStatus(t, "unsigned challenge", post(t, hook, challenge, nil), 401, "invalid_signature")
	if evs := eventsOf(t, sc, "slack"); len(evs) != 0 {
		t.Fatalf("the handshake stored %d events", len(evs))
	}

	ev := []byte(`{"token":"XXYYZZ","team_id":"T0001","api_app_id":"A0001","event":{"type":"app_mention","user":"U061F7AUR","text":"<@U0LAN0Z89> hi","ts":"1795859998.000016","channel":"C0LAN2Q65","event_ts":"1795859998.000016"},"type":"event_callback","event_id":"Ev0LAN670R","event_time":1795859998}`)
	first := post(t, hook, ev, signed(ev, time.Now(), "application/json"))
	wantStatus(t, "event_callback", first, 202, "")
	// Slack retries with X-Slack-Retry-Num, a new timestamp and signature,
	// and the same event_id: a duplicate.
	retry := signed(ev, time.Now().Add(2*time.Second), "application/json")
	retry["X-Slack-Retry-Num"], retry["X-Slack-Retry-Reason"] = "1", "http_timeout"
	again := post(t, hook, ev, retry)
	wantStatus(t, "retry", again, 200, "")
	if again.Body["status"] != "duplicate" || again.Body["id"] != first.Body["id"] {
		t.Fatalf("retry: %v, want the duplicate of %v", again.Body, first.Body)
	}
	wantStatus(t, "tampered", post(t, hook, append(ev[:len(ev):len(ev)], ' '), signed(ev, time.Now(), "application/json")), 401, "invalid_signature")
	wantStatus(t, "stale", post(t, hook, ev, signed(ev, time.Now().Add(-10*time.Minute), "application/json")), 401, "stale_timestamp")

	payload := `{"type":"block_actions","trigger_id":"12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3","user":{"id":"U0CA5"},"team":{"id":"T3MDE"},"channel":{"id":"C0CA5"},"actions":[{"action_id":"approve_refund","action_ts":"1795859999.457031"}]}`
	form := []byte(url.Values{"payload": {payload}}.Encode())
	inter := post(t, hook, form, signed(form, time.Now(), "application/x-www-form-urlencoded"))
	// Interactivity and slash commands are stored, then acknowledged with
	// an empty 200: Slack shows an answer body to the user.
	wantStatus(t, "interactivity", inter, 200, "")
	if len(inter.Body) != 0 {
		t.Errorf("interactivity answered with a body: %v", inter.Body)
	}
	cmd := []byte("command=%2Fweather&text=94070&user_id=U2147483697&channel_id=C2147483705&trigger_id=13345224609.738474920.8088930838d88f008e0")
	slash := post(t, hook, cmd, signed(cmd, time.Now(), "application/x-www-form-urlencoded"))
	wantStatus(t, "slash command", slash, 200, "")
	if len(slash.Body) != 0 {
		t.Errorf("slash command answered with a body: %v", slash.Body)
	}
	eventOfType := func(typ string) string {
		var list struct {
			Events []eventView `json:"events"`
		}
		sc.adminDo("GET", "/admin/v1/events?source=slack&type="+typ, "", &list)
		if len(list.Events) != 1 {
			t.Fatalf("%d stored events of type %s, want 1", len(list.Events), typ)
		}
		return list.Events[0].ID
	}
	wantStatus(t, "other media type", post(t, hook, ev, signed(ev, time.Now(), "text/plain")), 415, "unsupported_media_type")

	wantNormal(t, envelopeOf(t, sc, tg, first.Body["id"].(string)), "U061F7AUR/", "C0LAN2Q65/channel", "app_mention/")
	env := envelopeOf(t, sc, tg, eventOfType("block_actions"))
	if data, _ := env["data"].(map[string]any); env["type"] != "block_actions" || data["trigger_id"] == nil {
		t.Errorf("interactivity envelope %v", env)
	}
	wantNormal(t, env, "U0CA5/", "C0CA5/channel", "approve_refund/")
	env = envelopeOf(t, sc, tg, eventOfType("slash_command"))
	if data, _ := env["data"].(map[string]any); env["type"] != "slash_command" || data["text"] != "94070" {
		t.Errorf("slash command envelope %v", env)
	}
	tg.checkAuthentic()
}

func TestE2E_Provider_HubSpot(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), providersConfig(tg.URL()))
	hook := sc.public + "/hooks/hubspot"
	// HubSpot signs the URL it called: the source's public_url, with the
	// characters it decodes decoded.
	signed := func(body []byte, query string, at time.Time) map[string]string {
		ts := fmt.Sprint(at.UnixMilli())
		uri := hubspotPublic + strings.NewReplacer("%3A", ":", "%2C", ",").Replace(query)
		return map[string]string{"X-HubSpot-Request-Timestamp": ts, "X-HubSpot-Signature-v3": b64HMAC(hubspotSecret, "POST", uri, string(body), ts),
			"X-HubSpot-Signature-Version": "v3"}
	}
	occurred := time.Now().UnixMilli()
	event := func(id, attempt int) string { // a retry differs only in attemptNumber
		return fmt.Sprintf(`{"eventId":%d,"subscriptionId":2881778,"portalId":62515,"appId":1160452,"occurredAt":%d,"subscriptionType":"contact.creation","attemptNumber":%d,"objectId":%d,"changeFlag":"CREATED","changeSource":"CRM_UI","sourceId":"userId:45678"}`,
			id, occurred+int64(id), attempt, 65059681000+id)
	}
	batch1 := []byte("[" + event(1, 0) + "," + event(2, 0) + "]")
	r1 := post(t, hook, batch1, signed(batch1, "", time.Now()))
	wantStatus(t, "batch", r1, 202, "")
	ids1, _ := r1.Body["ids"].([]any)
	if r1.Body["status"] != "queued" || len(ids1) != 2 || len(r1.Body["duplicates"].([]any)) != 0 {
		t.Fatalf("batch: %v", r1.Body)
	}
	// HubSpot retries event 2 (attemptNumber 1) in a batch with a new one,
	// to a URL with a query string.
	batch2 := []byte("[" + event(3, 0) + "," + event(2, 1) + "]")
	r2 := post(t, hook+"?portal=62515&tags=a%3Ab%2Cc", batch2, signed(batch2, "?portal=62515&tags=a%3Ab%2Cc", time.Now()))
	wantStatus(t, "batch with a retried event", r2, 202, "")
	ids2, _ := r2.Body["ids"].([]any)
	dups2, _ := r2.Body["duplicates"].([]any)
	if r2.Body["status"] != "queued" || len(ids2) != 1 || len(dups2) != 1 || dups2[0] != ids1[1] {
		t.Fatalf("batch with a retried event: %v (first batch %v)", r2.Body, r1.Body)
	}
	r3 := post(t, hook, batch1, signed(batch1, "", time.Now()))
	wantStatus(t, "all duplicates", r3, 200, "")
	if r3.Body["status"] != "duplicate" || len(r3.Body["duplicates"].([]any)) != 2 {
		t.Fatalf("all duplicates: %v", r3.Body)
	}
	wantStatus(t, "tampered", post(t, hook, append(batch1[:len(batch1):len(batch1)], ' '), signed(batch1, "", time.Now())), 401, "invalid_signature")
	wantStatus(t, "signed for another URL", post(t, hook+"?x=1", batch1, signed(batch1, "", time.Now())), 401, "invalid_signature")
	wantStatus(t, "stale", post(t, hook, batch1, signed(batch1, "", time.Now().Add(-6*time.Minute))), 401, "stale_timestamp")
	notArray := []byte(`{"eventId":9}`)
	wantStatus(t, "not an array", post(t, hook, notArray, signed(notArray, "", time.Now())), 400, "invalid_json")
	empty := []byte(`[]`)
	wantStatus(t, "empty batch", post(t, hook, empty, signed(empty, "", time.Now())), 422, "invalid_event")

	env := envelopeOf(t, sc, tg, ids1[1].(string))
	if env["idempotency_key"] != "hubspot::62515:2881778:2" || env["type"] != "contact.creation" {
		t.Errorf("envelope %v", env)
	}
	if data, _ := env["data"].(map[string]any); data["eventId"] == nil || data["attemptNumber"] != nil {
		t.Errorf("data %v: want the event without attemptNumber", env["data"])
	}
	wantNormal(t, env, "45678/", "65059681002/contact", "creation/CRM_UI")
	if n := len(eventsOf(t, sc, "hubspot")); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
	tg.checkAuthentic()
}

func TestE2E_Provider_WooCommerce(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), providersConfig(tg.URL()))
	hook := sc.public + "/hooks/woo"

	// The ping WooCommerce sends when a webhook is saved: unsigned,
	// form-encoded, and it must get exactly 200.
	ping := post(t, hook, []byte("webhook_id=3"), map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
		"User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)"})
	if ping.Status != 200 || ping.Body["status"] != "ok" || len(ping.Body) != 1 {
		t.Fatalf("ping: %d %v", ping.Status, ping.Body)
	}
	if evs := eventsOf(t, sc, "woo"); len(evs) != 0 {
		t.Fatalf("the ping stored %d events", len(evs))
	}

	order := []byte(`{"id":727,"status":"processing","date_created_gmt":"2026-11-28T09:59:50","date_modified_gmt":"2026-11-28T09:59:51","customer_id":26,"billing":{"email":"john.doe@example.com"},"total":"39.00"}`)
	headers := func(body []byte, delivery string) map[string]string {
		return map[string]string{"X-WC-Webhook-Signature": b64HMAC(wooSecret, string(body)), "X-WC-Webhook-Topic": "order.created",
			"X-WC-Webhook-Resource": "order", "X-WC-Webhook-Event": "created", "X-WC-Webhook-ID": "3",
			"X-WC-Webhook-Delivery-ID": delivery, "X-WC-Webhook-Source": "https://shop.example.com/"}
	}
	valid := post(t, hook, order, headers(order, "9f2c6a1b0d5e4f8a7c3b2e1d0f9a8b7c"))
	wantStatus(t, "valid", valid, 202, "")
	// A re-send of the same order state carries another delivery id.
	dup := post(t, hook, order, headers(order, "0a1b2c3d4e5f60718293a4b5c6d7e8f9"))
	wantStatus(t, "re-send", dup, 200, "")
	if dup.Body["status"] != "duplicate" || dup.Body["id"] != valid.Body["id"] {
		t.Fatalf("re-send: %v, want the duplicate of %v", dup.Body, valid.Body)
	}
	// Another event in the same second (WooCommerce's delivery id is then
	// the same) is a new event.
	paid := []byte(strings.Replace(string(order), `"date_modified_gmt":"2026-11-28T09:59:51"`, `"date_modified_gmt":"2026-11-28T10:00:02"`, 1))
	other := post(t, hook, paid, headers(paid, "9f2c6a1b0d5e4f8a7c3b2e1d0f9a8b7c"))
	wantStatus(t, "a later change, same delivery id", other, 202, "")
	wantStatus(t, "tampered", post(t, hook, append(order[:len(order):len(order)], ' '), headers(order, "x")), 401, "invalid_signature")
	wantStatus(t, "unsigned json", post(t, hook, order, nil), 401, "invalid_signature")

	env := envelopeOf(t, sc, tg, valid.Body["id"].(string))
	if env["idempotency_key"] != "woo::3:order.created:727:2026-11-28T09:59:51" || env["occurred_at"] != "2026-11-28T09:59:51Z" {
		t.Errorf("envelope %v", env)
	}
	wantNormal(t, env, "26/john.doe@example.com", "727/order", "created/")
	tg.checkAuthentic()
}

// TestE2E_Sign_EveryKind sends a sample event of every kind with the
// binary's own sign command, to the binary serving a source of that kind.
func TestE2E_Sign_EveryKind(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), providersConfig(tg.URL()))
	for _, tc := range []struct {
		source, kind, secret string
		args                 []string
	}{
		{"stripe", "stripe", stripeSecret, nil},
		{"gh", "github", githubSecret, nil},
		{"shop", "shopify", shopifySecret, nil},
		{"slack", "slack", slackSecret, nil},
		{"hubspot", "hubspot", hubspotSecret, []string{"--public-url", hubspotPublic}},
		{"woo", "woocommerce", wooSecret, nil},
		{"std", "standard", standardSecret, nil},
		{"crm", "hmac", hmacSecret, []string{"--hmac-header", "X-Signature", "--hmac-prefix", "sha256=", "--hmac-template", "{timestamp}.{body}", "--hmac-timestamp-header", "X-Timestamp"}},
		{"site", "wordpress", standardSecret, []string{"--issuer", siteIssuer}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			cmd := binCmd(append([]string{"sign", "--kind", tc.kind, "--send", sc.public + "/hooks/" + tc.source}, tc.args...)...)
			cmd.Env = append(os.Environ(), envSignSecret+"="+tc.secret, envSignJWTSecret+"="+siteJWT)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "202 Accepted") {
				t.Fatalf("wprelay sign: %v\n%s", err, out)
			}
			for _, s := range []string{tc.secret, siteJWT} {
				if strings.Contains(string(out), s) {
					t.Fatal("the output shows a secret")
				}
			}
			var answer struct {
				ID  string   `json:"id"`
				IDs []string `json:"ids"`
			}
			if err := json.Unmarshal([]byte(strings.SplitN(string(out), "\n", 2)[1]), &answer); err != nil {
				t.Fatalf("answer: %v\n%s", err, out)
			}
			for _, id := range append(answer.IDs, answer.ID) {
				if id != "" {
					sc.waitEvent(id, "delivered", 10*time.Second)
				}
			}
		})
	}
	t.Run("woocommerce ping", func(t *testing.T) {
		out, err := binCmd("sign", "--kind", "woocommerce", "--ping", "--send", sc.public+"/hooks/woo").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "200 OK") || !strings.Contains(string(out), `{"status":"ok"}`) {
			t.Fatalf("ping: %v\n%s", err, out)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		cmd := binCmd("sign", "--kind", "shopify", "--send", sc.public+"/hooks/shop")
		cmd.Env = append(os.Environ(), envSignSecret+"=not-the-secret")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "401") || !strings.Contains(string(out), "invalid_signature") {
			t.Fatalf("wrong secret: %v\n%s", err, out)
		}
	})
	t.Run("curl", func(t *testing.T) {
		body := filepath.Join(t.TempDir(), "order.json")
		if err := os.WriteFile(body, []byte(`{"id":1001,"email":"a@example.com"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := binCmd("sign", "--kind", "shopify", "--file", body, "--curl", "--url", sc.public+"/hooks/shop")
		cmd.Env = append(os.Environ(), envSignSecret+"="+shopifySecret)
		script, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("sh", "-c", strings.TrimSpace(string(script))+" -w ' %{http_code}'").Output()
		if err != nil || !strings.HasSuffix(string(out), " 202") {
			t.Fatalf("%s\n→ %s %v", script, out, err)
		}
	})
	tg.checkAuthentic()
}

func TestE2E_Provider_WordPress_KeysReplayAndSchema(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), providersConfig(tg.URL()))
	hook := sc.public + "/hooks/site"
	v, err := provider.New(provider.Options{Kind: "wordpress", Issuer: siteIssuer, JWTSecret: siteJWT})
	if err != nil {
		t.Fatal(err)
	}
	key, err := v.Key(standardSecret)
	if err != nil {
		t.Fatal(err)
	}
	// signWP signs body as the plugin does (fresh JWT each time) under the
	// given webhook-id.
	signWP := func(id string, body []byte) map[string]string {
		r := &provider.Request{Method: "POST", Header: http.Header{"Webhook-Id": {id}}, Body: body, Now: time.Now()}
		if err := v.(provider.Signer).Sign(r, key, ""); err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for k := range r.Header {
			h[k] = r.Header.Get(k)
		}
		return h
	}
	body := func(id, title string) []byte {
		return []byte(fmt.Sprintf(`{"event_type":"post.published","object_ref":"post:42","idempotency_key":%q,"occurred_at":"2026-11-28T10:00:00Z","data":{"title":%q}}`, id, title))
	}
	id := "5f0c6f4e-7c4b-4f8e-9d1a-3b2f1e0d9c8b"
	first := signWP(id, body(id, "Hello"))
	r := post(t, hook, body(id, "Hello"), first)
	wantStatus(t, "valid", r, 202, "")
	wantStatus(t, "same key and body, new token", post(t, hook, body(id, "Hello"), signWP(id, body(id, "Hello"))), 200, "")
	wantStatus(t, "same key, other body", post(t, hook, body(id, "Changed"), signWP(id, body(id, "Changed"))), 409, "idempotency_conflict")
	wantStatus(t, "the first request replayed as is", post(t, hook, body(id, "Hello"), first), 401, "replayed")
	other := "0d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f6a"
	bad := []byte(fmt.Sprintf(`{"event_type":"Post Published","object_ref":"post:42","idempotency_key":%q,"occurred_at":"2026-11-28T10:00:00Z","data":{}}`, other))
	wantStatus(t, "schema", post(t, hook, bad, signWP(other, bad)), 422, "invalid_event")
	sc.waitEvent(r.Body["id"].(string), "delivered", 10*time.Second)
}
