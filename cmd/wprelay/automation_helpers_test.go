//go:build integration

package main

// Helpers of the automation tests (automation_*_test.go): HTTP targets on
// loopback that record what they get, a Standard Webhooks sender, and the
// admin API's views of deliveries and targets.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Secrets of the automation tests; the sidecar's log must never show them.
const (
	aiKey   = "sk-e2e-ai-key-6512bd43d9caa6e02c99"
	teamKey = "e2e-team-key-c20ad4d76fe97759aa27"
)

func init() { allSecrets = append(allSecrets, aiKey, teamKey) }

// hookReq is one request a hook received.
type hookReq struct {
	Path   string
	Header http.Header
	Body   []byte
	Env    map[string]any // the body, when JSON
	At     time.Time
	Status int // the status the hook answered
}

// field returns the value at a dotted path of the JSON body ("" when
// missing or not a string or number).
func (r hookReq) field(path string) string {
	var v any = r.Env
	for _, seg := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[seg]
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	}
	return ""
}

// hook is an HTTP target on loopback. script answers the n-th request to
// a path (from 1); nil answers 200 {"ok":true}.
type hook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []hookReq
	n      map[string]int
	script func(path string, n int, r hookReq) (status int, body string, header map[string]string)
}

func newHook(t *testing.T, script func(path string, n int, r hookReq) (int, string, map[string]string)) *hook {
	t.Helper()
	h := &hook{n: map[string]int{}, script: script}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := hookReq{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()}
		_ = json.Unmarshal(body, &req.Env)
		h.mu.Lock()
		h.n[req.Path]++
		n := h.n[req.Path]
		h.got = append(h.got, req)
		idx := len(h.got) - 1
		h.mu.Unlock()
		status, answer, header := 200, `{"ok":true}`, map[string]string(nil)
		if h.script != nil {
			status, answer, header = h.script(req.Path, n, req)
		}
		h.mu.Lock()
		h.got[idx].Status = status
		h.mu.Unlock()
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// reqs returns the requests to path, in the order they came.
func (h *hook) reqs(path string) []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookReq
	for _, r := range h.got {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (h *hook) count(path string) int { return len(h.reqs(path)) }

// ok returns the requests to path that the hook answered 2xx, in the
// order they came.
func (h *hook) ok(path string) []hookReq {
	var out []hookReq
	for _, r := range h.reqs(path) {
		if r.Status >= 200 && r.Status < 300 {
			out = append(out, r)
		}
	}
	return out
}

// sendStandard signs body as a Standard Webhooks sender with secret and
// posts it to url; it returns the event id of a 202.
func sendStandard(t *testing.T, url, secret string, body []byte) string {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	id, now := "msg_"+uuid.NewString(), time.Now()
	sig, err := wh.Sign(id, now, body)
	if err != nil {
		t.Fatal(err)
	}
	r := post(t, url, body, map[string]string{"webhook-id": id, "webhook-timestamp": fmt.Sprint(now.Unix()), "webhook-signature": sig})
	if r.Status != 202 {
		t.Fatalf("send: %d %v", r.Status, r.Body)
	}
	return r.Body["id"].(string)
}

// deliveryView is a delivery as the admin API's event detail shows it,
// with the automation fields.
type deliveryView struct {
	Target     string          `json:"target"`
	Status     string          `json:"status"`
	Attempts   int             `json:"attempts"`
	Reason     string          `json:"reason"`
	LastError  string          `json:"last_error"`
	Mirror     bool            `json:"mirror"`
	OutOfOrder bool            `json:"out_of_order"`
	ResultID   string          `json:"result_id"`
	Request    *requestView    `json:"request"`
	Order      json.RawMessage `json:"order"`
}

type requestView struct {
	Method string              `json:"method"`
	URL    string              `json:"url"`
	Header map[string][]string `json:"header"`
	Body   json.RawMessage     `json:"body"`
	Error  string              `json:"error"`
}

type eventDetail struct {
	ID          string         `json:"id"`
	Source      string         `json:"source"`
	Tenant      string         `json:"tenant"`
	Type        string         `json:"type"`
	Status      string         `json:"status"`
	CausationID string         `json:"causation_id"`
	Deliveries  []deliveryView `json:"deliveries"`
}

// detail returns the admin API's view of an event and its raw JSON.
func (s *sidecar) detail(id string) (eventDetail, string) {
	s.t.Helper()
	var raw json.RawMessage
	if st := s.adminDo("GET", "/admin/v1/events/"+id, "", &raw); st != 200 {
		s.t.Fatalf("event %s: %d %s", id, st, raw)
	}
	var ev eventDetail
	if err := json.Unmarshal(raw, &ev); err != nil {
		s.t.Fatal(err)
	}
	return ev, string(raw)
}

func (e eventDetail) delivery(target string) deliveryView {
	for _, d := range e.Deliveries {
		if d.Target == target {
			return d
		}
	}
	return deliveryView{}
}

// waitDetail polls an event until cond holds.
func (s *sidecar) waitDetail(id string, within time.Duration, what string, cond func(eventDetail) bool) eventDetail {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ev, raw := s.detail(id)
		if cond(ev) {
			return ev
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s: %s", within, what, raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// targetStats returns the admin API's stats of one target.
func (s *sidecar) targetStats(name string) map[string]any {
	s.t.Helper()
	var stats map[string]any
	if st := s.adminDo("GET", "/admin/v1/stats", "", &stats); st != 200 {
		s.t.Fatalf("stats: %d %v", st, stats)
	}
	targets, _ := stats["targets"].(map[string]any)
	t, _ := targets[name].(map[string]any)
	if t == nil {
		s.t.Fatalf("stats has no target %s: %v", name, stats)
	}
	return t
}

// automationConfig is the sidecar's YAML with a Standard Webhooks source
// named crm, and the targets and routes given.
func automationConfig(targets, routes string) string {
	return fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json, level: info}
sources:
  - {name: crm, kind: standard, secrets: [%q]}
targets:
%s
routes:
%s
`, wpSigning, targets, routes)
}

// crmEvent is a Standard Webhooks body of type typ about subject (its
// data.id) that occurred at at. In the envelope, data is the body's data
// (a Standard Webhooks payload): data.id.
func crmEvent(typ, subject string, at time.Time, data map[string]any) []byte {
	if data == nil {
		data = map[string]any{}
	}
	data["id"] = subject
	b, _ := json.Marshal(map[string]any{"type": typ, "timestamp": at.UTC().Format(time.RFC3339), "data": data})
	return b
}
