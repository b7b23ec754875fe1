//go:build integration

package main

// The end-to-end harness: the real binary, built once, started as a
// subprocess on loopback with a real config file and data dir; a target
// server that verifies what it receives with other people's code
// (golang-jwt, the standard-webhooks library).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v82/webhook"
)

var binPath string

// afterAll are run by TestMain once every test has run (e.g. to stop a
// WordPress site that several tests share).
var afterAll []func()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wprelay-e2e-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "wprelay")
	if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build wprelay: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	for _, f := range afterAll {
		f()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// Secrets the tests use; every test greps the sidecar's log for them.
const (
	stripeSecret  = "whsec_e2e_stripe_secret_5d41402abc4b2a76"
	stripeSecret2 = "whsec_e2e_stripe_rotated_7d793037a0760186"
	githubSecret  = "e2e-github-secret-8f14e45fceea167a"
	adminToken    = "e2e-admin-token-c9f0f895fb98ab91"
	wpJWTSecret   = "e2e-wp-jwt-secret-45c48cce2e2d7fbd"
)

var wpSigning = testWhsec()

var allSecrets = []string{stripeSecret, stripeSecret2, githubSecret, adminToken, wpJWTSecret, wpSigning}

// syncBuffer collects a subprocess's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type sidecar struct {
	t       testing.TB
	dir     string // holds wprelay.yaml and data/
	public  string // base URL of the public listener
	admin   string // base URL of the admin listener
	cmd     *exec.Cmd
	logs    *syncBuffer
	stopped bool
	exited  chan struct{} // closed when the process has exited
	exitErr error         // its Wait error, once exited is closed
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startSidecar writes cfg to dir/wprelay.yaml and starts the binary on
// fresh loopback ports; it returns once /readyz answers 200.
func startSidecar(t testing.TB, dir, cfg string) *sidecar {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "wprelay.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{t: t, dir: dir, logs: &syncBuffer{}}
	s.start()
	t.Cleanup(func() {
		s.stop()
		logs := s.logs.String()
		for _, secret := range allSecrets {
			if strings.Contains(logs, secret) {
				t.Errorf("the sidecar's log contains the secret %q", secret[:12]+"…")
			}
		}
		if t.Failed() {
			t.Logf("sidecar log:\n%s", tail(logs, 60))
		}
	})
	return s
}

func (s *sidecar) start() {
	s.t.Helper()
	// Free ports are picked, then given to the binary: another test may
	// take one in between. Pick again when that happened.
	for try := 1; ; try++ {
		mark := len(s.logs.String())
		if s.tryStartAt(freeAddr(s.t), freeAddr(s.t)) {
			return
		}
		if try == 5 || !strings.Contains(s.logs.String()[mark:], "address already in use") {
			s.t.Fatalf("sidecar not ready:\n%s", s.logs.String())
		}
	}
}

// startAt starts the binary with its public and admin listeners on the
// given addresses (a restart on the same ports, or another loopback host).
func (s *sidecar) startAt(pub, adm string) {
	s.t.Helper()
	if !s.tryStartAt(pub, adm) {
		s.t.Fatalf("sidecar not ready:\n%s", s.logs.String())
	}
}

// tryStartAt starts the binary and waits until /readyz answers 200; it
// reports false when the process exited first or did not get ready in 15 s.
func (s *sidecar) tryStartAt(pub, adm string) bool {
	s.t.Helper()
	s.public, s.admin = "http://"+pub, "http://"+adm
	s.cmd = exec.Command(binPath, "serve", "--config", filepath.Join(s.dir, "wprelay.yaml"), "--listen", pub, "--admin-listen", adm)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.Env = append(os.Environ(), "WPRELAY_E2E_ADMIN="+adminToken)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.stopped = false
	exited, cmd := make(chan struct{}), s.cmd
	s.exited = exited
	go func() {
		err := cmd.Wait()
		s.exitErr = err
		close(exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		select {
		case <-exited:
			s.stopped = true
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = s.cmd.Process.Kill()
	<-exited
	s.stopped = true
	return false
}

// kill9 sends SIGKILL and waits for the process to die.
func (s *sidecar) kill9() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.stopped = true
}

// stop sends SIGTERM and waits for a clean exit.
func (s *sidecar) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if s.exitErr != nil {
			s.t.Errorf("sidecar exited with %v after SIGTERM", s.exitErr)
		}
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Errorf("sidecar did not stop within 20 s of SIGTERM")
	}
}

// adminGet fetches an admin API path into v and returns the status.
func (s *sidecar) adminDo(method, path string, body string, v any) int {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.admin+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

type eventView struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Type       string `json:"type"`
	Source     string `json:"source"`
	Tenant     string `json:"tenant"`
	Deliveries []struct {
		Target     string `json:"target"`
		Status     string `json:"status"`
		Attempts   int    `json:"attempts"`
		LastStatus int    `json:"last_status"`
		LastError  string `json:"last_error"`
		NextAt     time.Time
		History    []struct {
			At     time.Time `json:"at"`
			Status int       `json:"status"`
			Error  string    `json:"error"`
		} `json:"history"`
	} `json:"deliveries"`
}

// waitEvent polls the admin API until the event's status is want.
func (s *sidecar) waitEvent(id, want string, within time.Duration) eventView {
	s.t.Helper()
	var ev eventView
	deadline := time.Now().Add(within)
	for {
		ev = eventView{}
		s.adminDo("GET", "/admin/v1/events/"+id, "", &ev)
		if ev.Status == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ev.Status != want {
		s.t.Fatalf("event %s status %q after %s, want %q: %+v", id, ev.Status, within, want, ev)
	}
	return ev
}

// answer is a scripted reply of the target.
type answer struct {
	status int
	header map[string]string
	delay  time.Duration
}

// received is one request the target accepted as authentic.
type received struct {
	At             time.Time
	IdempotencyKey string
	EventID        string
	Type           string
	Envelope       map[string]any
}

// target is a webhook receiver on loopback that verifies the JWT and the
// Standard Webhooks signature of every request with other implementations.
type target struct {
	t      testing.TB
	srv    *httptest.Server
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	got    []received
	bad    []string                       // requests that failed verification
	script func(n int, key string) answer // n counts requests per key, from 1
	seen   map[string]int
}

func newTarget(t testing.TB, script func(n int, key string) answer) *target {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(wpSigning)
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{t: t, wh: wh, script: script, seen: map[string]int{}}
	if tg.script == nil {
		tg.script = func(int, string) answer { return answer{status: 200} }
	}
	tg.srv = httptest.NewServer(http.HandlerFunc(tg.serve))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) URL() string { return tg.srv.URL + "/wp-json/wprelay/v1/events" }

func (tg *target) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	fail := func(msg string) {
		tg.mu.Lock()
		tg.bad = append(tg.bad, msg)
		tg.mu.Unlock()
		http.Error(w, msg, http.StatusUnauthorized)
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		fail("no bearer token")
		return
	}
	claims := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return []byte(wpJWTSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("wprelay"), jwt.WithAudience(tg.srv.URL),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil {
		fail("jwt: " + err.Error())
		return
	}
	if claims.ID == "" || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 300*time.Second {
		fail("jwt: no jti or ttl over 300 s")
		return
	}
	if err := tg.wh.Verify(body, r.Header); err != nil {
		fail("signature: " + err.Error())
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" || key != r.Header.Get("webhook-id") {
		fail("Idempotency-Key missing or not the webhook-id")
		return
	}
	var env map[string]any
	if err := json.Unmarshal(body, &env); err != nil {
		fail("envelope: " + err.Error())
		return
	}
	tg.mu.Lock()
	tg.seen[key]++
	n := tg.seen[key]
	a := tg.script(n, key)
	if a.status >= 200 && a.status < 300 {
		id, _ := env["id"].(string)
		typ, _ := env["type"].(string)
		tg.got = append(tg.got, received{At: time.Now(), IdempotencyKey: key, EventID: id, Type: typ, Envelope: env})
	}
	tg.mu.Unlock()
	if a.delay > 0 {
		time.Sleep(a.delay)
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
}

// delivered returns how many authentic 2xx deliveries each event id got.
func (tg *target) delivered() map[string]int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	out := map[string]int{}
	for _, g := range tg.got {
		out[g.EventID]++
	}
	return out
}

func (tg *target) attempts(key string) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.seen[key]
}

func (tg *target) checkAuthentic() {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.bad) > 0 {
		tg.t.Errorf("the target rejected %d requests, first: %s", len(tg.bad), tg.bad[0])
	}
}

// e2eConfig is the YAML every e2e test starts from: a stripe source with two
// tenants (one with two secrets: rotation), a github source, and the target.
func e2eConfig(targetURL string, extra string) string {
	return fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json, level: info}
limits: {max_body: 4096}
sources:
  - name: stripe
    kind: stripe
    tolerance: 5m
    tenants:
      - {name: acme, secrets: [%q, %q]}
      - {name: globex, secrets: ["whsec_globex_only"]}
  - {name: gh, kind: github, secrets: [%q]}
targets:
  - name: wordpress
    kind: wordpress
    url: %q
    jwt_secret: %q
    signing_secret: %q
    timeout: 2s
    max_attempts: 4
    concurrency: 8
routes:
  - {source: stripe, types: ["invoice.*", "customer.*"], to: [wordpress]}
  - {source: gh, types: ["*"], to: [wordpress]}
%s`, stripeSecret, stripeSecret2, githubSecret, targetURL, wpJWTSecret, wpSigning, extra)
}

// stripeEvent returns a Stripe-shaped event body.
func stripeEvent(id, typ string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2024-06-20","created":%d,"type":%q,`+
		`"data":{"object":{"id":"in_%s","object":"invoice","amount_due":2000,"currency":"usd"}},"livemode":false}`,
		id, time.Now().Unix(), typ, id))
}

// signStripe signs body as Stripe does, with stripe-go.
func signStripe(body []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
}

type reply struct {
	Status    int
	Body      map[string]any
	Header    http.Header
	RequestID string
}

// post sends a webhook and decodes the JSON answer.
func post(t testing.TB, url string, body []byte, header map[string]string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Header: resp.Header, RequestID: resp.Header.Get("X-Request-Id")}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &r.Body); err != nil {
			t.Fatalf("answer is not JSON (%d): %s", resp.StatusCode, data)
		}
	}
	return r
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
