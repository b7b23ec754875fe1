package main

// Helpers of the admin API and CLI tests: the whole daemon in-process
// (MustRunMain) with a GitHub and a Stripe source routed to two scripted
// targets, signed webhooks, admin API calls, and the CLI run in-process.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/config"
)

const (
	cliAdminToken   = "cli-admin-token-5f4dcc3b5aa765d61d83"
	cliGitHubSecret = "cli-github-secret-0cc175b9c0f1b6a8"
	cliStripeSecret = "whsec_cli_stripe_92eb5ffee6ae2fec"
)

// scriptedTarget is an HTTP target that answers with Status (200 unless a
// test changes it) and records the Idempotency-Key of every request.
type scriptedTarget struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	header map[string]string
	keys   []string
}

func newScriptedTarget(t testing.TB) *scriptedTarget {
	t.Helper()
	st := &scriptedTarget{status: 200}
	st.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		st.mu.Lock()
		st.keys = append(st.keys, r.Header.Get("Idempotency-Key"))
		status, header := st.status, st.header
		st.mu.Unlock()
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"ok":%t}`, status < 300)
	}))
	t.Cleanup(st.srv.Close)
	return st
}

// set changes the answer of the next requests.
func (st *scriptedTarget) set(status int, header map[string]string) {
	st.mu.Lock()
	st.status, st.header = status, header
	st.mu.Unlock()
}

// got returns the Idempotency-Keys received, in order.
func (st *scriptedTarget) got() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]string(nil), st.keys...)
}

// adminEnv is a sidecar in-process with two sources (gh: github; stripe:
// tenants acme and globex) and two targets: gh push → crm; stripe
// invoice.* → crm and wp.
type adminEnv struct {
	t         testing.TB
	m         *Main
	public    string
	admin     string
	crm, wp   *scriptedTarget
	tokenFile string
}

type envOption func(*config.Config)

func newAdminEnv(t testing.TB, opts ...envOption) *adminEnv {
	t.Helper()
	e := &adminEnv{t: t, crm: newScriptedTarget(t), wp: newScriptedTarget(t)}
	cfg := config.Default()
	cfg.Admin.Token = cliAdminToken
	cfg.Sources = []config.Source{
		{Name: "gh", Kind: "github", Secrets: []config.Secret{cliGitHubSecret}},
		{Name: "stripe", Kind: "stripe", Tenants: []config.Tenant{
			{Name: "acme", Secrets: []config.Secret{cliStripeSecret}},
			{Name: "globex", Secrets: []config.Secret{cliStripeSecret + "_globex"}},
		}},
	}
	cfg.Targets = []config.Target{
		{Name: "crm", Kind: "http", URL: e.crm.srv.URL, AllowPrivate: true, MaxAttempts: 3},
		{Name: "wp", Kind: "http", URL: e.wp.srv.URL, AllowPrivate: true, MaxAttempts: 3},
	}
	cfg.Routes = []config.Route{
		{Source: "gh", Types: []string{"push"}, To: []string{"crm"}},
		{Source: "stripe", Types: []string{"invoice.*"}, To: []string{"crm", "wp"}},
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.m = MustRunMain(t, cfg)
	e.public, e.admin = "http://"+e.m.PublicAddr(), "http://"+e.m.AdminAddr()
	e.tokenFile = filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(e.tokenFile, []byte(cliAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// github sends a signed GitHub webhook and returns the event id.
func (e *adminEnv) github(delivery, event, body string) string {
	e.t.Helper()
	mac := hmac.New(sha256.New, []byte(cliGitHubSecret))
	mac.Write([]byte(body))
	return e.hook("/hooks/gh", body, map[string]string{
		"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil)),
		"X-GitHub-Event":      event, "X-GitHub-Delivery": delivery,
	})
}

// stripe sends a signed Stripe event for tenant acme and returns its id.
func (e *adminEnv) stripe(id, typ string) string {
	e.t.Helper()
	body := fmt.Sprintf(`{"id":%q,"object":"event","type":%q,"created":1764324000,"data":{"object":{"id":"in_%s","object":"invoice","customer":"cus_1"}}}`, id, typ, id)
	ts := fmt.Sprint(time.Now().Unix())
	mac := hmac.New(sha256.New, []byte(cliStripeSecret))
	mac.Write([]byte(ts + "." + body))
	return e.hook("/hooks/stripe", body, map[string]string{"Stripe-Signature": "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))})
}

func (e *adminEnv) hook(path, body string, header map[string]string) string {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.public+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 202 || json.Unmarshal(data, &out) != nil || out.ID == "" {
		e.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, data)
	}
	return out.ID
}

// api calls the admin API with the token and decodes the answer into out
// (when not nil); it returns the status.
func (e *adminEnv) api(method, path, body string, out any) int {
	e.t.Helper()
	return e.apiToken(cliAdminToken, method, path, body, out)
}

func (e *adminEnv) apiToken(token, method, path, body string, out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.admin+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %d, not JSON: %v: %s", method, path, resp.StatusCode, err, data)
		}
	}
	return resp.StatusCode
}

func (e *adminEnv) event(id string) admin.EventView {
	e.t.Helper()
	var v admin.EventView
	if st := e.api("GET", "/admin/v1/events/"+id, "", &v); st != 200 {
		e.t.Fatalf("GET event %s: %d", id, st)
	}
	return v
}

// wait polls event id until cond holds.
func (e *adminEnv) wait(id string, what string, cond func(admin.EventView) bool) admin.EventView {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := e.event(id)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("event %s: timed out waiting for %s: %+v", id, what, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *adminEnv) waitStatus(id, status string) admin.EventView {
	e.t.Helper()
	return e.wait(id, "status "+status, func(v admin.EventView) bool { return v.Status == status })
}

// cli runs the wprelay command line in-process against this sidecar
// (--admin-url and --token-file appended) and returns stdout, stderr and
// the exit code.
func (e *adminEnv) cli(args ...string) (string, string, int) {
	e.t.Helper()
	return runCLI(append(args, "--admin-url", e.admin, "--token-file", e.tokenFile)...)
}

// runCLI runs the command line in-process as given.
func runCLI(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}
