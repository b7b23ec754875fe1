//go:build integration

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A dry-run route sends nothing; each of its deliveries is recorded as
// skipped with the exact request it would have sent, credentials
// redacted, visible in the admin API.
func TestAutomation_DryRun_RecordsRequestSendsNothing(t *testing.T) {
	t.Setenv("AI_KEY", aiKey)
	t.Setenv("TEAM_KEY", teamKey)
	h := newHook(t, nil)
	sc := startSidecar(t, t.TempDir(), automationConfig(`
  - name: ai
    kind: http
    url: "`+h.srv.URL+`/v1/summarize"
    allow_private: true
    auth: {bearer: "${AI_KEY}"}
    headers: {X-Team-Key: "${TEAM_KEY}", X-Client: wprelay-e2e}
    template: '{"input": {{ json .data.note }}, "who": {{ quote .subject.id }}}'
  - {name: crm, kind: http, url: "`+h.srv.URL+`/crm", allow_private: true, auth: {hmac: {secret: "${TEAM_KEY}", header: X-Crm-Signature}}}`, `
  - {name: preview, source: crm, types: ["contact.*"], to: [ai], mirror_to: [crm], dry_run: true}`))
	id := sendStandard(t, sc.public+"/hooks/crm", wpSigning, crmEvent("contact.updated", "c_42", time.Now(), map[string]any{"note": "Call back <b>Tuesday</b>"}))

	ev, raw := sc.detail(id)
	if ev.Status != "delivered" || len(ev.Deliveries) != 2 {
		t.Fatalf("event: %s", raw)
	}
	d := ev.delivery("ai")
	if d.Status != "skipped" || d.Attempts != 0 || d.Request == nil {
		t.Fatalf("dry-run delivery: %+v", d)
	}
	req := d.Request
	hdr := func(k string) string {
		if v := req.Header[k]; len(v) == 1 {
			return v[0]
		}
		return ""
	}
	var body map[string]any
	_ = json.Unmarshal(req.Body, &body)
	if req.Method != "POST" || req.URL != h.srv.URL+"/v1/summarize" || body["input"] != "Call back <b>Tuesday</b>" || body["who"] != "c_42" {
		t.Fatalf("recorded request: %+v body %s", req, req.Body)
	}
	if hdr("Authorization") != "REDACTED" || hdr("X-Team-Key") != "REDACTED" || hdr("X-Client") != "wprelay-e2e" ||
		hdr("Content-Type") != "application/json" || hdr("Idempotency-Key") != id+":ai" {
		t.Fatalf("recorded headers: %v", req.Header)
	}
	if m := ev.delivery("crm"); !m.Mirror || m.Status != "skipped" || m.Request == nil ||
		m.Request.Header["X-Crm-Signature"][0] != "REDACTED" || m.Request.Header["X-Wprelay-Mirror"][0] != "true" {
		t.Fatalf("dry-run mirror delivery: %+v", m)
	}
	for _, secret := range []string{aiKey, teamKey} {
		if strings.Contains(raw, secret) {
			t.Fatalf("the admin API shows a secret: %s", raw)
		}
	}
	// Nothing was sent, not now and not later.
	time.Sleep(300 * time.Millisecond)
	if n := h.count("/v1/summarize") + h.count("/crm"); n != 0 {
		t.Fatalf("the targets got %d requests from a dry run", n)
	}
	t.Logf("recorded dry-run request: %s %s %v %s", req.Method, req.URL, req.Header, req.Body)
}

// A mirror copy that fails leaves the main delivery and the event's status
// alone; it is marked and has its own history.
func TestAutomation_Mirror_FailureIgnored(t *testing.T) {
	h := newHook(t, func(path string, n int, _ hookReq) (int, string, map[string]string) {
		if path == "/staging" {
			return 500, `{"error":"staging is broken"}`, nil
		}
		return 200, `{}`, nil
	})
	sc := startSidecar(t, t.TempDir(), automationConfig(`
  - {name: prod, kind: http, url: "`+h.srv.URL+`/prod", allow_private: true}
  - {name: staging, kind: http, url: "`+h.srv.URL+`/staging", allow_private: true, max_attempts: 2, max_backoff: 100ms}`, `
  - {source: crm, to: [prod], mirror_to: [staging]}`))
	id := sendStandard(t, sc.public+"/hooks/crm", wpSigning, crmEvent("order.paid", "o_1", time.Now(), nil))
	ev := sc.waitDetail(id, 15*time.Second, "the mirror copy to die", func(e eventDetail) bool {
		return e.delivery("staging").Status == "dead"
	})
	if ev.Status != "delivered" || ev.delivery("prod").Status != "succeeded" || !ev.delivery("staging").Mirror || ev.delivery("prod").Mirror {
		t.Fatalf("event %s: %+v", ev.Status, ev.Deliveries)
	}
	var list struct {
		Events []eventDetail `json:"events"`
	}
	sc.adminDo("GET", "/admin/v1/events?status=failed", "", &list)
	if len(list.Events) != 0 {
		t.Fatalf("failed events: %+v", list.Events)
	}
	if h.count("/prod") != 1 || h.count("/staging") != 2 || h.reqs("/staging")[0].Header.Get("X-Wprelay-Mirror") != "true" {
		t.Fatalf("requests: prod %d, staging %d", h.count("/prod"), h.count("/staging"))
	}
}
