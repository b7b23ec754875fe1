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
