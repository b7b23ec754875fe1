package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay/provider"
)

// Secrets and options the sign tests give each kind, and a body of its
// shape.
var signKinds = map[string]struct {
	args   []string
	secret string
	opts   provider.Options
	body   string
}{
	"stripe":  {nil, "whsec_sign_test_stripe", provider.Options{}, `{"id":"evt_1","type":"invoice.created","data":{"object":{"id":"in_1"}}}`},
	"github":  {[]string{"--type", "push"}, "gh-sign-test", provider.Options{}, `{"ref":"refs/heads/main","sender":{"login":"octocat"}}`},
	"shopify": {[]string{"--type", "orders/create"}, "shpss_sign_test", provider.Options{}, `{"id":820982911946154508}`},
	"slack":   {nil, "8f742231b10e8888abcd99yyyzzz85a5", provider.Options{}, "command=%2Fweather&text=94070&user_id=U1&trigger_id=1.2.3"},
	"hubspot": {[]string{"--public-url", "https://hooks.example.com/hooks/hubspot"}, "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
		provider.Options{PublicURL: "https://hooks.example.com/hooks/hubspot"}, `[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]`},
	"woocommerce": {[]string{"--type", "order.created"}, "wc&amp;secret", provider.Options{}, `{"id":727,"date_modified_gmt":"2026-11-28T09:59:51"}`},
	"standard":    {nil, signWhsec, provider.Options{}, `{"type":"contact.created","data":{"id":"c_1"}}`},
	"hmac": {[]string{"--hmac-header", "X-Signature", "--hmac-prefix", "sha256=", "--hmac-template", "{timestamp}.{body}", "--hmac-timestamp-header", "X-Timestamp"},
		"hmac-sign-test", provider.Options{HMAC: provider.HMACOptions{Header: "X-Signature", Prefix: "sha256=", Template: "{timestamp}.{body}", TimestampHeader: "X-Timestamp"}},
		`{"type":"a.b"}`},
	"wordpress": {[]string{"--issuer", "https://example.com", "--jwt-secret", "site-jwt-secret-0123456789abcdef-0123"}, signWhsec,
		provider.Options{Issuer: "https://example.com", JWTSecret: "site-jwt-secret-0123456789abcdef-0123"},
		`{"event_type":"post.published","object_ref":"post:1","idempotency_key":"k-1","occurred_at":"2026-11-28T10:00:00Z","data":{}}`},
}

// signWhsec is the standard and wordpress kinds' signing secret.
var signWhsec = testWhsec()

// checkSigned checks a request made from the sign command's output with
// the kind's verifier.
func checkSigned(kind, url string, h http.Header, body []byte) error {
	k := signKinds[kind]
	o := k.opts
	o.Kind = kind
	v, err := provider.New(o)
	if err != nil {
		return err
	}
	key, err := v.Key(k.secret)
	if err != nil {
		return err
	}
	r := &provider.Request{Method: "POST", URL: first(o.PublicURL, url), Header: h, Body: body, Now: time.Now()}
	if err := v.Verify(r, [][]byte{key}); err != nil {
		return fmt.Errorf("%s: the signed request does not verify: %w (headers %v)", kind, err, h)
	}
	if _, err := v.Parse(r); err != nil {
		return fmt.Errorf("%s: parse: %w", kind, err)
	}
	return nil
}

// verifySigned is checkSigned for the test goroutine.
func verifySigned(t *testing.T, kind, url string, h http.Header, body []byte) {
	t.Helper()
	if err := checkSigned(kind, url, h, body); err != nil {
		t.Fatal(err)
	}
}

// signedHandler answers 202 to requests that checkSigned accepts, and
// reports the others on t.
func signedHandler(t *testing.T, kind, path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != path {
			t.Errorf("path %s, want %s", r.URL.Path, path)
		}
		if err := checkSigned(kind, "http://"+r.Host+r.URL.Path, r.Header, body); err != nil {
			t.Error(err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"queued","id":"e1"}`)
	}
}

func TestSign_Help(t *testing.T) {
	var errb bytes.Buffer
	if code := run([]string{"sign", "--help"}, io.Discard, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{"Usage: wprelay sign", "Example:", envSignSecret, envSignJWTSecret, "--send", "--curl"} {
		if !strings.Contains(errb.String(), s) {
			t.Errorf("--help lacks %q", s)
		}
	}
	var out bytes.Buffer
	run([]string{"help"}, &out, io.Discard)
	if !strings.Contains(out.String(), "sign") {
		t.Error("the usage does not list sign")
	}
}

func TestSign_PrintsHeadersThatVerify(t *testing.T) {
	dir := t.TempDir()
	for kind, k := range signKinds {
		t.Run(kind, func(t *testing.T) {
			file := filepath.Join(dir, kind+".body")
			if err := os.WriteFile(file, []byte(k.body), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			args := append([]string{"sign", "--kind", kind, "--secret", k.secret, "--file", file}, k.args...)
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			h := http.Header{}
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				name, value, ok := strings.Cut(sc.Text(), ": ")
				if !ok {
					t.Fatalf("line %q is not Header: value", sc.Text())
				}
				h.Add(name, value)
			}
			verifySigned(t, kind, "http://127.0.0.1:8080/hooks/"+kind, h, []byte(k.body))
		})
	}
}

func TestSign_SendsEveryKindsSample(t *testing.T) {
	for kind, k := range signKinds {
		t.Run(kind, func(t *testing.T) {
			srv := httptest.NewServer(signedHandler(t, kind, "/hooks/"+kind+"/acme"))
			defer srv.Close()
			var out, errb bytes.Buffer
			args := append([]string{"sign", "--kind", kind, "--secret", k.secret, "--send", srv.URL + "/hooks/" + kind, "--tenant", "acme"}, k.args...)
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if !strings.Contains(out.String(), "202 Accepted") || !strings.Contains(out.String(), `"status":"queued"`) {
				t.Fatalf("output %q", out.String())
			}
		})
	}
}

func TestSign_SendReportsRejection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_signature","message":"no"}`)
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"sign", "--kind", "stripe", "--secret", "whsec_x", "--send", srv.URL}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(out.String(), "401") || !strings.Contains(out.String(), "invalid_signature") || !strings.Contains(errb.String(), "401") {
		t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
	}
}

func TestSign_SecretsFromTheEnvironment(t *testing.T) {
	k := signKinds["wordpress"]
	t.Setenv(envSignSecret, k.secret)
	t.Setenv(envSignJWTSecret, "site-jwt-secret-0123456789abcdef-0123")
	var got http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r.Header.Clone(), must(io.ReadAll(r.Body))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	var errb bytes.Buffer
	if code := run([]string{"sign", "--kind", "wordpress", "--issuer", "https://example.com", "--send", srv.URL}, io.Discard, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	verifySigned(t, "wordpress", srv.URL, got, body)
}

func TestSign_WooCommercePing(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r, must(io.ReadAll(r.Body))
		io.WriteString(w, `{"status":"ok"}`)
	}))
	defer srv.Close()
	var out bytes.Buffer
	if code := run([]string{"sign", "--kind", "woocommerce", "--ping", "--send", srv.URL}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if string(body) != "webhook_id=1" || got.Header.Get("X-WC-Webhook-Signature") != "" ||
		got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || !strings.Contains(out.String(), "200 OK") {
		t.Fatalf("ping %q %v; output %q", body, got.Header, out.String())
	}
}

// The --curl command is a working shell command: run it against a server.
func TestSign_CurlCommandRuns(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	k := signKinds["slack"]
	srv := httptest.NewServer(signedHandler(t, "slack", "/"))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "it's a body")
	if err := os.WriteFile(file, []byte("text=it's+%22quoted%22&command=%2Fx"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--file", file}, {"--file", "-"}} {
		var out bytes.Buffer
		stdin := os.Stdin
		if args[1] == "-" {
			r, w, _ := os.Pipe()
			io.WriteString(w, "text=it's+%22quoted%22&command=%2Fx")
			w.Close()
			os.Stdin = r
		}
		code := run(append([]string{"sign", "--kind", "slack", "--secret", k.secret, "--curl", "--url", srv.URL}, args...), &out, io.Discard)
		os.Stdin = stdin
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		cmd := exec.Command("sh", "-c", strings.TrimSpace(out.String())+" -o /dev/null -w '%{http_code}'")
		got, err := cmd.Output()
		if err != nil || string(got) != "202" {
			t.Fatalf("%s\n→ %q %v", out.String(), got, err)
		}
	}
}

func TestSign_UsageErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"no kind":          {"sign", "--secret", "s"},
		"unknown kind":     {"sign", "--kind", "nope", "--secret", "s"},
		"no secret":        {"sign", "--kind", "stripe"},
		"send and curl":    {"sign", "--kind", "stripe", "--secret", "s", "--send", "http://x", "--curl"},
		"ping elsewhere":   {"sign", "--kind", "stripe", "--ping"},
		"bad header":       {"sign", "--kind", "stripe", "--secret", "s", "--header", "nocolon"},
		"bad secret":       {"sign", "--kind", "standard", "--secret", "not-whsec"},
		"hubspot relative": {"sign", "--kind", "hubspot", "--secret", "s", "--public-url", "/hooks/h"},
		"wordpress no jwt": {"sign", "--kind", "wordpress", "--secret", signWhsec, "--issuer", "https://example.com"},
		"missing file":     {"sign", "--kind", "stripe", "--secret", "s", "--file", "/nonexistent/body.json"},
		"argument":         {"sign", "--kind", "stripe", "--secret", "s", "extra"},
	} {
		t.Run(name, func(t *testing.T) {
			var errb bytes.Buffer
			if code := run(args, io.Discard, &errb); code != 2 {
				t.Fatalf("exit %d, want 2: %s", code, errb.String())
			}
			if strings.Contains(errb.String(), strings.TrimPrefix(signWhsec, "whsec_")) {
				t.Fatalf("the error prints the secret: %s", errb.String())
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// --header fixes the id of a wordpress sample too: its idempotency_key
// follows the webhook-id, so the request verifies, parses with that id,
// and a second send is the same event.
func TestSign_HeaderFixesTheWordPressID(t *testing.T) {
	k := signKinds["wordpress"]
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := must(io.ReadAll(r.Body))
		if err := checkSigned("wordpress", "http://"+r.Host+r.URL.Path, r.Header, body); err != nil {
			t.Error(err)
		}
		var ev struct {
			Key string `json:"idempotency_key"`
		}
		_ = json.Unmarshal(body, &ev)
		ids = append(ids, r.Header.Get("webhook-id")+"="+ev.Key)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	for range 2 {
		args := append([]string{"sign", "--kind", "wordpress", "--secret", k.secret, "--header", "webhook-id: post-42-v1", "--send", srv.URL}, k.args...)
		if _, stderr, code := runCLI(args...); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	}
	if len(ids) != 2 || ids[0] != "post-42-v1=post-42-v1" || ids[1] != ids[0] {
		t.Fatalf("webhook-id=idempotency_key of the two sends: %v", ids)
	}
}
