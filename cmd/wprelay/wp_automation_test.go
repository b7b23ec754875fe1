//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// fakeAI is a summarizing API on loopback: it wants its API key as a
// bearer token, fails the first two requests of each delivery (503), then
// answers a summary.
type fakeAI struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []hookReq
	bad  []string
	seen map[string]int // by Idempotency-Key
}

func newFakeAI(t *testing.T) *fakeAI {
	t.Helper()
	ai := &fakeAI{seen: map[string]int{}}
	ai.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := hookReq{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()}
		ai.mu.Lock()
		defer ai.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+aiKey {
			ai.bad = append(ai.bad, "wrong or missing API key: "+r.Header.Get("Authorization"))
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var in struct {
			Model, Input, Title string
			Meta                struct{ Event, Post string }
		}
		if err := json.Unmarshal(body, &in); err != nil || in.Model != "fake-1" || in.Input == "" || in.Meta.Event == "" {
			ai.bad = append(ai.bad, "not the templated request: "+string(body))
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		ai.got = append(ai.got, req)
		key := r.Header.Get("Idempotency-Key")
		ai.seen[key]++
		if ai.seen[key] <= 2 {
			http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"title":   "Summary: " + in.Title,
			"summary": "<p>AI summary of post " + in.Meta.Post + ": <em>short and sweet</em>.</p>",
			"model":   "fake-1",
		})
	}))
	t.Cleanup(ai.srv.Close)
	return ai
}

// A published post goes through the sidecar to an AI service, with a key
// only the sidecar holds; the summary comes back to WordPress as a result,
// stored once and linked to the post, whose edit screen shows it, although
// the AI service failed twice first.
func TestWP_Automation_PostSummaryRoundTrip(t *testing.T) {
	site := sharedSite(t)
	ai := newFakeAI(t)
	t.Setenv("AI_API_KEY", aiKey)
	cfg := fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json, level: info}
sources:
  - {name: site, kind: wordpress, issuer: %[1]q, jwt_secret: %[2]q, secrets: [%[3]q]}
targets:
  - name: summarizer
    kind: http
    url: %[4]q
    allow_private: true
    auth: {bearer: "${AI_API_KEY}"}
    timeout: 5s
    max_backoff: 1500ms
    reply_to: results
    template: |
      {"model": "fake-1", "title": {{ quote .data.title }}, "input": {{ json .data.content }},
       "meta": {"event": {{ quote .id }}, "post": {{ quote .subject.id }}}}
  - {name: results, kind: wordpress, url: %[5]q, jwt_secret: %[6]q, signing_secret: %[7]q, timeout: 10s}
routes:
  - {name: summaries, source: site, types: ["post.published"], where: {data.post_type: post}, to: [summarizer]}
`, site.URL, siteJWTSecret, siteSigning, ai.srv.URL+"/v1/summarize", site.URL+"/wp-json/wprelay/v1/results", wpJWTSecret, wpSigning)
	sc := startWPSidecar(t, site, cfg)

	start := time.Now()
	postID, _ := publishPost(t, site, "Automation round trip")
	ref := fmt.Sprintf("post:%d", postID)
	results := func() [][]string {
		return site.Query(t, "SELECT p.ID, p.post_title, p.post_content, p.post_status FROM wp_posts p JOIN wp_postmeta m ON m.post_id = p.ID "+
			"WHERE p.post_type = 'wprelay_result' AND m.meta_key = '_wprelay_object_ref' AND m.meta_value = '"+ref+"'")
	}
	waitFor(t, 30*time.Second, "the summary to be stored in WordPress", func() bool { return len(results()) > 0 })
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond) // anything more that would arrive
	rows := results()
	if len(rows) != 1 {
		t.Fatalf("%d result posts for %s, want 1: %v", len(rows), ref, rows)
	}
	res := rows[0]
	if res[1] != "Summary: Automation round trip" || !strings.Contains(res[2], "<em>short and sweet</em>") || res[3] != "private" {
		t.Fatalf("result post: %v", res)
	}
	if link := site.QueryInt(t, fmt.Sprintf("SELECT meta_value FROM wp_postmeta WHERE meta_key = '_wprelay_result_id' AND post_id = %d", postID)); fmt.Sprint(link) != res[0] {
		t.Fatalf("the post links to result %d, want %s", link, res[0])
	}

	// The AI service: three attempts of one delivery, each with the key.
	ai.mu.Lock()
	attempts, bad := len(ai.got), ai.bad
	var first hookReq
	if attempts > 0 {
		first = ai.got[0]
	}
	ai.mu.Unlock()
	if len(bad) > 0 || attempts != 3 {
		t.Fatalf("the AI service got %d good requests; rejected %v", attempts, bad)
	}
	var sent struct {
		Meta struct{ Event, Post string }
	}
	_ = json.Unmarshal(first.Body, &sent)
	if sent.Meta.Post != fmt.Sprint(postID) {
		t.Fatalf("AI request: %s", first.Body)
	}

	// The sidecar's record: the original delivered after 3 attempts, its
	// result an event of its own, caused by it, delivered to WordPress.
	orig, _ := sc.detail(sent.Meta.Event)
	sum := orig.delivery("summarizer")
	if orig.Status != "delivered" || orig.Source != "site" || sum.Attempts != 3 || sum.ResultID == "" {
		t.Fatalf("original event: %+v", orig)
	}
	result, raw := sc.detail(sum.ResultID)
	if result.Source != "target:summarizer" || result.Type != "post.published.result" || result.CausationID != orig.ID ||
		result.Status != "delivered" || result.delivery("results").Attempts != 1 {
		t.Fatalf("result event: %s", raw)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_receipts WHERE route = 'results' AND event_id = '"+result.ID+"'"); n != 1 {
		t.Fatalf("%d receipts of the result in WordPress, want 1", n)
	}
	if got := site.Query(t, "SELECT meta_value FROM wp_postmeta WHERE meta_key = '_wprelay_causation_id' AND post_id = "+res[0]); len(got) != 1 || got[0][0] != orig.ID {
		t.Fatalf("result post causation: %v, want %s", got, orig.ID)
	}

	// The key never came from, nor went to, WordPress.
	var rawReq map[string]any
	sc.adminDo("GET", "/admin/v1/events/"+orig.ID+"/raw", "", &rawReq)
	rawJSON, _ := json.Marshal(rawReq)
	if len(rawJSON) < 50 || strings.Contains(string(rawJSON), aiKey) {
		t.Fatalf("WordPress's request to the sidecar: %s", rawJSON)
	}
	for _, q := range []string{
		"SELECT COUNT(*) FROM wp_options WHERE option_value LIKE '%" + aiKey + "%'",
		"SELECT COUNT(*) FROM wp_postmeta WHERE meta_value LIKE '%" + aiKey + "%'",
		"SELECT COUNT(*) FROM wp_posts WHERE post_content LIKE '%" + aiKey + "%'",
		"SELECT COUNT(*) FROM wp_wprelay_outbox WHERE payload LIKE '%" + aiKey + "%'",
		"SELECT COUNT(*) FROM wp_wprelay_receipts WHERE event LIKE '%" + aiKey + "%'",
	} {
		if n := site.QueryInt(t, q); n != 0 {
			t.Fatalf("WordPress holds the AI key: %s → %d", q, n)
		}
	}
	if strings.Contains(site.DebugLog(), aiKey) {
		t.Fatal("WordPress's debug.log holds the AI key")
	}

	// The post's edit screen shows the summary in a meta box.
	page := wpAdminGet(t, site, fmt.Sprintf("/wp-admin/post.php?post=%d&action=edit", postID))
	box := page[max(strings.Index(page, `id="wprelay-results"`), 0):]
	if !strings.Contains(page, `id="wprelay-results"`) || !strings.Contains(box, "Summary: Automation round trip") ||
		!strings.Contains(box, "<em>short and sweet</em>") || !strings.Contains(box, "post.published.result") {
		t.Fatalf("the edit screen has no results box with the summary:\n%s", tail(page, 30))
	}
	t.Logf("post %d → summary stored in %s (AI attempts: 503, 503, 200; result %s caused by %s)", postID, took.Round(10*time.Millisecond), result.ID, orig.ID)
}

// wpAdminGet logs in as the site's admin and returns the page at path.
func wpAdminGet(t *testing.T, site *wpstack.Site, path string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	u, _ := url.Parse(site.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "wordpress_test_cookie", Value: "WP Cookie check", Path: "/"}})
	resp, err := c.PostForm(site.URL+"/wp-login.php", url.Values{
		"log": {site.AdminUser}, "pwd": {site.AdminPass}, "wp-submit": {"Log In"},
		"redirect_to": {site.URL + path}, "testcookie": {"1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "wp-admin") {
		t.Fatalf("log in: %d\n%s", resp.StatusCode, tail(string(body), 20))
	}
	return string(body)
}
