package ingress

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/provider"
)

// wantNothingStored fails when the store holds an event.
func wantNothingStored(t *testing.T, db interface {
	Stats(ctx context.Context) (relay.Stats, error)
}) {
	t.Helper()
	s, err := db.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range s.Events {
		n += c
	}
	if n != 0 {
		t.Errorf("store holds %d events, want none", n)
	}
}

func TestIngress_RefusesRepeatedNamesAndDeepJSON(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"repeated name", `{"id":"a","id":"b"}`, 400, "invalid_json"},
		{"repeated name, nested", `{"pull_request":{"head":{"sha":"1","sha":"2"}}}`, 400, "invalid_json"},
		{"repeated name, escaped", `{"action":"opened","\u0061ction":"closed"}`, 400, "invalid_json"},
		{"9,999 levels", strings.Repeat("[", 9999) + strings.Repeat("]", 9999), 400, "too_deep"},
		{"129 levels", `{"a":` + strings.Repeat("[", 128) + strings.Repeat("]", 128) + `}`, 400, "too_deep"},
		{"128 levels", `{"a":` + strings.Repeat("[", 127) + strings.Repeat("]", 127) + `}`, 202, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, db := mustIngress(t, githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}}))
			w, body := serve(in, githubRequest("s", tc.body, "d1", ""))
			if w.Code != tc.status || tc.code != "" && body["error"] != tc.code {
				t.Fatalf("%d %v, want %d %s", w.Code, body, tc.status, tc.code)
			}
			if tc.code != "" {
				wantNothingStored(t, db)
			}
		})
	}
}

func hubspotBatch(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"eventId":%d,"subscriptionType":"contact.creation","portalId":1,"objectId":%d,"occurredAt":1700000000000}`, i+1, i+1)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestIngress_BatchOverMaxBatch(t *testing.T) {
	const url = "https://relay.example/hooks/hs"
	v, err := provider.New(provider.Options{Kind: "hubspot", PublicURL: url})
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{Name: "hs", Kind: "hubspot", Verifier: v, PublicURL: url, Tenants: []Tenant{{Keys: [][]byte{[]byte("s")}}}}
	in, db := mustIngress(t, src)
	in.MaxBatch = 3
	send := func(body string) (int, map[string]any) {
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		m := hmac.New(sha256.New, []byte("s"))
		m.Write([]byte("POST" + url + body + ts))
		r := httptest.NewRequest("POST", "/hooks/hs", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-HubSpot-Signature-v3", base64.StdEncoding.EncodeToString(m.Sum(nil)))
		r.Header.Set("X-HubSpot-Request-Timestamp", ts)
		w, answer := serve(in, r)
		return w.Code, answer
	}
	code, body := send(hubspotBatch(4))
	if code != 413 || body["error"] != "payload_too_large" || !strings.Contains(body["message"].(string), "limits.max_batch") ||
		!strings.Contains(body["message"].(string), "at most 3") {
		t.Fatalf("4 events, max 3: %d %v; want 413 payload_too_large naming the limit", code, body)
	}
	wantNothingStored(t, db)
	if code, body := send(hubspotBatch(3)); code != 202 || len(body["ids"].([]any)) != 3 {
		t.Fatalf("3 events, max 3: %d %v", code, body)
	}
}

// A GitHub request captured and re-sent under a new X-GitHub-Delivery
// (which the signature does not cover) is a duplicate of the first: the
// body's hash is a dedupe key too. It was accepted and delivered again.
func TestIngress_ResentBodyUnderNewIDIsDuplicate(t *testing.T) {
	in, db := mustIngress(t, githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}}))
	w, first := serve(in, githubRequest("s", `{"action":"opened","number":7}`, "d1", ""))
	if w.Code != 202 {
		t.Fatalf("first: %d %v", w.Code, first)
	}
	w, again := serve(in, githubRequest("s", `{"action":"opened","number":7}`, "d2", ""))
	if w.Code != 200 || again["status"] != "duplicate" || again["id"] != first["id"] {
		t.Fatalf("re-sent under a new id: %d %v, want 200 duplicate of %v", w.Code, again, first["id"])
	}
	w, other := serve(in, githubRequest("s", `{"action":"opened","number":8}`, "d3", ""))
	if w.Code != 202 || other["id"] == first["id"] {
		t.Fatalf("another body: %d %v", w.Code, other)
	}
	s, err := db.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Events[relay.EventDiscarded] + s.Events[relay.EventQueued]; n != 2 {
		t.Errorf("store holds %d events, want 2", n)
	}
}

// An explicit id "sha256:<hex>" cannot take the key an id-less body gets.
func TestIdempotencyKey_ExplicitHashIDCannotMeetBodyKey(t *testing.T) {
	body := []byte(`{"a":1}`)
	bodyKey := relay.IdempotencyKey("hm", "t", "", body)
	sum := strings.TrimPrefix(bodyKey, "hm:t:")
	if got := relay.IdempotencyKey("hm", "t", sum, []byte(`{"other":2}`)); got == bodyKey {
		t.Errorf("explicit id %q got the body's key %q", sum, got)
	}
	if a, b := relay.IdempotencyKey("hm", "t", "=x", nil), relay.IdempotencyKey("hm", "t", "x", nil); a == b {
		t.Errorf("ids =x and x share the key %q", a)
	}
	if got := relay.IdempotencyKey("hm", "t", "evt_1", nil); got != "hm:t:evt_1" {
		t.Errorf("plain id key = %q, want hm:t:evt_1", got)
	}
}
