package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/config"
)

// testdata/store/v0-envelopes.db was written by wprelay 2516388, the last
// version whose envelope's data was the provider's whole body: its serve
// command received `wprelay sign` samples (stripe, a pretty-printed Stripe
// invoice.updated, wordpress, standard, github) routed to an http target
// "crm" that was down, so every delivery is still retrying.

// bodyRecorder is an http target that keeps each body it receives, by
// Idempotency-Key.
type bodyRecorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies map[string][]byte
}

func newBodyRecorder(t testing.TB) *bodyRecorder {
	r := &bodyRecorder{bodies: map[string][]byte{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies[req.Header.Get("Idempotency-Key")] = b
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *bodyRecorder) wait(t testing.TB, n int) map[string][]byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		got := len(r.bodies)
		out := make(map[string][]byte, got)
		for k, v := range r.bodies {
			out[k] = v
		}
		r.mu.Unlock()
		if got >= n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the target got %d bodies, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// upgradeConfig runs on a copy of the earlier version's store, its target
// crm pointed at url.
func upgradeConfig(t *testing.T, url string) config.Config {
	t.Helper()
	dir := t.TempDir()
	db, err := os.ReadFile("../../testdata/store/v0-envelopes.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wprelay.db"), db, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Admin.Token = cliAdminToken
	cfg.Sources = []config.Source{{Name: "gh", Kind: "github", Secrets: []config.Secret{cliGitHubSecret}}}
	cfg.Targets = []config.Target{{Name: "crm", Kind: "http", URL: url, AllowPrivate: true,
		MaxAge: config.Duration(100 * 365 * 24 * time.Hour)}}
	return cfg
}

// dataOf returns the envelope's data, by event type.
func dataOf(t *testing.T, envs [][]byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, b := range envs {
		var env struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("envelope %s: %v", b, err)
		}
		out[env.Type] = env.Data
	}
	return out
}

// checkUpgradedData asserts that the data of the fixture's events has
// today's layout.
func checkUpgradedData(t *testing.T, what string, data map[string]map[string]any) {
	t.Helper()
	at := func(typ, path string) any {
		v, _ := relay.Lookup(data[typ], path)
		return v
	}
	for _, c := range []struct {
		typ, path string
		want      any
	}{
		{"invoice.created", "object.amount_due", float64(2000)},
		{"invoice.created", "object.currency", "usd"},
		{"invoice.updated", "object.amount_due", float64(4200)},
		{"invoice.updated", "previous_attributes.status", "draft"},
		{"post.published", "title", "Hello from wprelay sign"},
		{"contact.created", "email", "jane@example.com"},
		{"issues.opened", "issue.title", "Hello from wprelay sign"}, // the body, as before
	} {
		if got := at(c.typ, c.path); got != c.want {
			t.Errorf("%s: %s data.%s = %v, want %v (data %v)", what, c.typ, c.path, got, c.want, data[c.typ])
		}
	}
	for _, typ := range []string{"invoice.created", "invoice.updated", "post.published", "contact.created"} {
		if _, old := data[typ]["data"]; old {
			t.Errorf("%s: %s data still holds the provider's body: %v", what, typ, data[typ])
		}
	}
}

func TestUpgrade_EventsStoredByEarlierVersion(t *testing.T) {
	rec := newBodyRecorder(t)
	m := MustRunMain(t, upgradeConfig(t, rec.srv.URL))
	adm := "http://" + m.AdminAddr()

	// The deliveries left retrying are sent with today's envelope.
	bodies := rec.wait(t, 5)
	var sent [][]byte
	for _, b := range bodies {
		sent = append(sent, b)
	}
	checkUpgradedData(t, "delivered", dataOf(t, sent))

	// The admin API shows the same.
	var list struct {
		Events []admin.EventView `json:"events"`
	}
	if st := adminGet(t, adm, "/admin/v1/events?limit=50", &list); st != 200 || len(list.Events) != 5 {
		t.Fatalf("events: %d, %d events", st, len(list.Events))
	}
	var shown [][]byte
	for _, e := range list.Events {
		var v admin.EventView
		adminGet(t, adm, "/admin/v1/events/"+e.ID, &v)
		shown = append(shown, v.Envelope)
	}
	checkUpgradedData(t, "admin API", dataOf(t, shown))

	// Export, import into a fresh sidecar, export again: the same records,
	// in today's layout.
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.jsonl"), filepath.Join(dir, "second.jsonl")
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(cliAdminToken), 0o600)
	if out, errOut, code := runCLI("export", "--since", "0", "-o", first, "--admin-url", adm, "--token-file", tokenFile); code != 0 {
		t.Fatalf("export: exit %d\n%s%s", code, out, errOut)
	}
	recs := readExport(t, first)
	var exported [][]byte
	for _, r := range recs {
		exported = append(exported, r.Envelope)
	}
	checkUpgradedData(t, "export", dataOf(t, exported))

	cfg := config.Default()
	cfg.Admin.Token = cliAdminToken
	cfg.Sources = []config.Source{{Name: "gh", Kind: "github", Secrets: []config.Secret{cliGitHubSecret}}}
	fresh := MustRunMain(t, cfg)
	freshAdm := "http://" + fresh.AdminAddr()
	if out, errOut, code := runCLI("import", first, "--admin-url", freshAdm, "--token-file", tokenFile); code != 0 ||
		!strings.Contains(out, "imported 5 events") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := runCLI("export", "--since", "0", "-o", second, "--admin-url", freshAdm, "--token-file", tokenFile); code != 0 {
		t.Fatalf("second export: exit %d\n%s%s", code, out, errOut)
	}
	again := readExport(t, second)
	if len(again) != len(recs) {
		t.Fatalf("round trip: %d records, want %d", len(again), len(recs))
	}
	byID := map[string]admin.Record{}
	for _, r := range again {
		byID[r.ID] = r
	}
	for _, r := range recs {
		got, ok := byID[r.ID]
		if !ok || !jsonEqual(got.Envelope, r.Envelope) || r.Raw == nil || got.Raw == nil || *got.Raw.Body != *r.Raw.Body {
			t.Errorf("event %s did not round-trip:\n got %s\nwant %s", r.ID, got.Envelope, r.Envelope)
		}
	}
}

// adminGet GETs an admin API path with the CLI tests' token into v.
func adminGet(t *testing.T, base, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+cliAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}
