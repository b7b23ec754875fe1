//go:build integration

package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

func TestE2E_Ingest_StatusTable(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), e2eConfig(tg.URL(), ""))
	url := sc.public + "/hooks/stripe"

	body := stripeEvent("evt_status_1", "invoice.created")
	valid := post(t, url, body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
	if valid.Status != 202 || valid.Body["status"] != "queued" || valid.Body["id"] == "" {
		t.Fatalf("valid: %d %v", valid.Status, valid.Body)
	}
	id := valid.Body["id"].(string)

	cases := []struct {
		name   string
		url    string
		body   []byte
		header map[string]string
		status int
		code   string
	}{
		{"duplicate (new signature, same event)", url, body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())}, 200, ""},
		{"duplicate signed with the rotated secret", url, body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret2, time.Now())}, 200, ""},
		{"tampered", url, append(stripeEvent("evt_status_2", "invoice.created"), ' '), map[string]string{"Stripe-Signature": signStripe(stripeEvent("evt_status_2", "invoice.created"), stripeSecret, time.Now())}, 401, "invalid_signature"},
		{"no signature", url, body, nil, 401, "invalid_signature"},
		{"wrong secret", url, body, map[string]string{"Stripe-Signature": signStripe(body, "whsec_wrong", time.Now())}, 401, "invalid_signature"},
		{"stale", url, stripeEvent("evt_status_3", "invoice.created"), map[string]string{"Stripe-Signature": signStripe(stripeEvent("evt_status_3", "invoice.created"), stripeSecret, time.Now().Add(-10*time.Minute))}, 401, "stale_timestamp"},
		{"oversized", url, []byte(`{"pad":"` + strings.Repeat("x", 5000) + `"}`), nil, 413, "payload_too_large"},
		{"wrong content type", url, body, map[string]string{"Content-Type": "text/plain", "Stripe-Signature": signStripe(body, stripeSecret, time.Now())}, 415, "unsupported_media_type"},
		{"unknown source", sc.public + "/hooks/nope", body, nil, 404, "unknown_source"},
		{"unknown tenant", url + "/initech", body, nil, 404, "unknown_source"},
		{"tenant in the path, other tenant's secret", url + "/globex", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())}, 401, "invalid_signature"},
		{"not JSON", url, []byte("not json"), map[string]string{"Stripe-Signature": signStripe([]byte("not json"), stripeSecret, time.Now())}, 400, "invalid_json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, c.url, c.body, c.header)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %v", r.Status, c.status, r.Body)
			}
			if r.RequestID == "" {
				t.Error("no X-Request-Id")
			}
			if c.code != "" && r.Body["error"] != c.code {
				t.Errorf("error %v, want %q (message %v)", r.Body["error"], c.code, r.Body["message"])
			}
			if c.code != "" && r.Body["message"] == "" {
				t.Error("no message")
			}
			if c.status == 200 && r.Body["id"] != id {
				t.Errorf("duplicate id %v, want the first id %s", r.Body["id"], id)
			}
		})
	}

	t.Run("method not allowed", func(t *testing.T) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "POST") || resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("GET: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	t.Run("request id echoed", func(t *testing.T) {
		r := post(t, sc.public+"/hooks/nope", nil, map[string]string{"X-Request-Id": "req-abc-123"})
		if r.RequestID != "req-abc-123" {
			t.Fatalf("X-Request-Id %q", r.RequestID)
		}
	})

	ev := sc.waitEvent(id, "delivered", 10*time.Second)
	if ev.Tenant != "acme" || ev.Type != "invoice.created" || len(ev.Deliveries) != 1 || ev.Deliveries[0].Attempts != 1 {
		t.Fatalf("event: %+v", ev)
	}
	tg.checkAuthentic()
	if got := tg.delivered()[id]; got != 1 {
		t.Fatalf("target got the event %d times, want 1", got)
	}
	// The envelope reached the target with the provider object as data
	// (a Stripe event's data member).
	for _, g := range tg.got {
		obj, _ := relay.Lookup(g.Envelope, "data.object.id")
		if g.EventID == id && (g.Envelope["idempotency_key"] != "stripe:acme:evt_status_1" || obj != "in_evt_status_1") {
			t.Errorf("envelope: %v", g.Envelope)
		}
	}
}

func TestE2E_GitHub_TenantlessAndPing(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), e2eConfig(tg.URL(), ""))
	sign := func(body []byte) string {
		m := hmac.New(sha256.New, []byte(githubSecret))
		m.Write(body)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	push := []byte(`{"ref":"refs/heads/main","repository":{"id":1,"full_name":"acme/site"}}`)
	r := post(t, sc.public+"/hooks/gh", push, map[string]string{"X-Hub-Signature-256": sign(push), "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"})
	if r.Status != 202 {
		t.Fatalf("push: %d %v", r.Status, r.Body)
	}
	ping := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	p := post(t, sc.public+"/hooks/gh", ping, map[string]string{"X-Hub-Signature-256": sign(ping), "X-GitHub-Event": "ping", "X-GitHub-Delivery": "d-2"})
	if p.Status != 202 {
		t.Fatalf("ping: %d %v", p.Status, p.Body)
	}
	sc.waitEvent(r.Body["id"].(string), "delivered", 10*time.Second)
	ev := sc.waitEvent(p.Body["id"].(string), "discarded", time.Second)
	if len(ev.Deliveries) != 0 {
		t.Fatalf("ping was routed: %+v", ev)
	}
}

func TestE2E_Delivery_RetriesThenDelivers(t *testing.T) {
	tg := newTarget(t, func(n int, _ string) answer {
		if n <= 2 {
			return answer{status: 503}
		}
		return answer{status: 200}
	})
	sc := startSidecar(t, t.TempDir(), e2eConfig(tg.URL(), ""))
	body := stripeEvent("evt_retry", "invoice.paid")
	r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
	if r.Status != 202 {
		t.Fatalf("%d %v", r.Status, r.Body)
	}
	id := r.Body["id"].(string)
	ev := sc.waitEvent(id, "delivered", 15*time.Second)
	d := ev.Deliveries[0]
	if d.Attempts != 3 || len(d.History) != 3 || d.History[0].Status != 503 || d.History[1].Status != 503 || d.History[2].Status != 200 {
		t.Fatalf("delivery: %+v", d)
	}
	if n := tg.attempts(id + ":wordpress"); n != 3 {
		t.Fatalf("target saw %d attempts, want 3", n)
	}
	tg.checkAuthentic()
}

func TestE2E_Delivery_400IsDeadThenReplayed(t *testing.T) {
	fixed := make(chan struct{})
	tg := newTarget(t, func(int, string) answer {
		select {
		case <-fixed:
			return answer{status: 200}
		default:
			return answer{status: 400}
		}
	})
	sc := startSidecar(t, t.TempDir(), e2eConfig(tg.URL(), ""))
	body := stripeEvent("evt_dead", "customer.created")
	r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
	id := r.Body["id"].(string)
	ev := sc.waitEvent(id, "failed", 10*time.Second)
	d := ev.Deliveries[0]
	if d.Status != "dead" || d.Attempts != 1 || !strings.Contains(d.LastError, "400") {
		t.Fatalf("delivery: %+v", d)
	}
	var dlq struct {
		Deliveries []struct {
			EventID string `json:"event_id"`
			Target  string `json:"target"`
			Reason  string `json:"reason"`
		} `json:"deliveries"`
	}
	if st := sc.adminDo("GET", "/admin/v1/dlq", "", &dlq); st != 200 || len(dlq.Deliveries) != 1 || dlq.Deliveries[0].EventID != id || !strings.Contains(dlq.Deliveries[0].Reason, "400") {
		t.Fatalf("dlq %d: %+v", st, dlq)
	}
	close(fixed)
	var rep map[string]int
	if st := sc.adminDo("POST", "/admin/v1/dlq/replay", `{"target":"wordpress"}`, &rep); st != 200 || rep["replayed"] != 1 {
		t.Fatalf("dlq replay %d: %v", st, rep)
	}
	ev = sc.waitEvent(id, "delivered", 10*time.Second)
	if ev.Deliveries[0].Attempts != 2 {
		t.Fatalf("attempts %d, want 2", ev.Deliveries[0].Attempts)
	}
	if st := sc.adminDo("GET", "/admin/v1/dlq", "", &dlq); st != 200 || len(dlq.Deliveries) != 0 {
		t.Fatalf("dlq after replay: %+v", dlq)
	}
	// A single-event replay sends again with the same Idempotency-Key.
	var one map[string]any
	if st := sc.adminDo("POST", "/admin/v1/events/"+id+"/replay?target=wordpress", "", &one); st != 202 {
		t.Fatalf("replay: %d %v", st, one)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tg.attempts(id+":wordpress") < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := tg.attempts(id + ":wordpress"); got != 3 {
		t.Fatalf("target saw %d attempts with key %s:wordpress, want 3", got, id)
	}
	tg.checkAuthentic()
}

func TestE2E_Delivery_HonoursRetryAfter(t *testing.T) {
	var first time.Time
	tg := newTarget(t, func(n int, _ string) answer {
		if n == 1 {
			first = time.Now()
			return answer{status: 429, header: map[string]string{"Retry-After": "2"}}
		}
		return answer{status: 200}
	})
	sc := startSidecar(t, t.TempDir(), e2eConfig(tg.URL(), ""))
	body := stripeEvent("evt_retry_after", "invoice.created")
	r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
	id := r.Body["id"].(string)
	ev := sc.waitEvent(id, "delivered", 15*time.Second)
	h := ev.Deliveries[0].History
	if len(h) != 2 || h[0].Status != 429 {
		t.Fatalf("history: %+v", h)
	}
	if gap := h[1].At.Sub(h[0].At); gap < 1900*time.Millisecond {
		t.Fatalf("second attempt %v after the 429 with Retry-After: 2", gap)
	}
	_ = first
}

func TestE2E_Admin_RequiresToken(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), e2eConfig(tg.URL(), ""))
	for _, tok := range []string{"", "Bearer wrong", "Basic " + adminToken, "Bearer " + adminToken + "x"} {
		req, _ := http.NewRequest("GET", sc.admin+"/admin/v1/events", nil)
		if tok != "" {
			req.Header.Set("Authorization", tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("Authorization %q: %d, want 401", tok, resp.StatusCode)
		}
	}
	var list struct {
		Events     []eventView `json:"events"`
		NextCursor string      `json:"next_cursor"`
	}
	if st := sc.adminDo("GET", "/admin/v1/events", "", &list); st != 200 || list.Events == nil {
		t.Fatalf("list: %d %+v", st, list)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(sc.admin + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, err, resp)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(sc.public + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("public /healthz: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestE2E_Admin_ListFiltersAndPages(t *testing.T) {
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), e2eConfig(tg.URL(), ""))
	var ids []string
	for i := range 7 {
		typ := "invoice.created"
		if i%2 == 1 {
			typ = "charge.succeeded" // no route: discarded
		}
		body := stripeEvent(fmt.Sprintf("evt_list_%d", i), typ)
		r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
		ids = append(ids, r.Body["id"].(string))
	}
	var seen []string
	cursor := ""
	for page := 0; page < 10; page++ {
		var list struct {
			Events     []eventView `json:"events"`
			NextCursor string      `json:"next_cursor"`
		}
		sc.adminDo("GET", "/admin/v1/events?source=stripe&limit=3&cursor="+cursor, "", &list)
		for _, e := range list.Events {
			seen = append(seen, e.ID)
		}
		if list.NextCursor == "" {
			break
		}
		cursor = list.NextCursor
	}
	if len(seen) != 7 || seen[0] != ids[6] || seen[6] != ids[0] {
		t.Fatalf("paged ids %v, want newest first of %v", seen, ids)
	}
	var discarded struct {
		Events []eventView `json:"events"`
	}
	sc.adminDo("GET", "/admin/v1/events?status=discarded", "", &discarded)
	if len(discarded.Events) != 3 {
		t.Fatalf("discarded: %d events, want 3", len(discarded.Events))
	}
}
