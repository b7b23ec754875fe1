package provider

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-github/v75/github"

	"github.com/wprelay/wprelay/relay"
)

// GitHub's documented test vector
// (docs.github.com, "Validating webhook deliveries").
const (
	githubDocSecret = "It's a Secret to Everybody"
	githubDocBody   = "Hello, World!"
	githubDocSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

const githubSecret = "gh-secret-0123456789"

var githubBody = []byte(`{"action":"opened","issue":{"number":1},"repository":{"full_name":"wprelay/wprelay"}}`)

func githubRequest(sig, event, delivery string, body []byte) *Request {
	h := http.Header{}
	for k, v := range map[string]string{"X-Hub-Signature-256": sig, "X-GitHub-Event": event, "X-GitHub-Delivery": delivery} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return &Request{Method: "POST", Header: h, Body: body, Now: testNow}
}

func signGitHub(body []byte, secret string) string {
	return "sha256=" + hexMAC([]byte(secret), string(body))
}

func TestGitHub_Verify_AcceptsDocumentedVector(t *testing.T) {
	v := MustNew(t, Options{Kind: "github"})
	if got := signGitHub([]byte(githubDocBody), githubDocSecret); got != githubDocSig {
		t.Fatalf("test helper signs %s, want %s", got, githubDocSig)
	}
	keys := [][]byte{MustKey(t, v, githubDocSecret)}
	wantErr(t, v.Verify(githubRequest(githubDocSig, "push", "d1", []byte(githubDocBody)), keys), nil)
	upper := "sha256=" + strings.ToUpper(strings.TrimPrefix(githubDocSig, "sha256="))
	wantErr(t, v.Verify(githubRequest(upper, "push", "d1", []byte(githubDocBody)), keys), nil)
}

// go-github's ValidatePayload accepts what Sign makes and what the test
// helper makes, and rejects what ours rejects.
func TestGitHub_Verify_AgreesWithGoGitHub(t *testing.T) {
	v := MustNew(t, Options{Kind: "github"})
	keys := [][]byte{MustKey(t, v, githubSecret)}
	validate := func(sig string, body []byte) error {
		req := httptest.NewRequest("POST", "/hooks/gh", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(github.SHA256SignatureHeader, sig)
		_, err := github.ValidatePayload(req, []byte(githubSecret))
		return err
	}
	for _, body := range [][]byte{githubBody, body1K, []byte(githubDocBody)} {
		r := githubRequest("", "issues", "d1", body)
		if err := v.(Signer).Sign(r, keys[0], "issues.opened"); err != nil {
			t.Fatal(err)
		}
		sig := r.Header.Get("X-Hub-Signature-256")
		if err := validate(sig, body); err != nil {
			t.Fatalf("go-github rejects our signature: %v", err)
		}
		wantErr(t, v.Verify(r, keys), nil)
		if r.Header.Get("X-GitHub-Event") != "issues" || r.Header.Get("X-GitHub-Delivery") != "d1" {
			t.Fatalf("Sign set %v", r.Header)
		}
		for _, m := range mutations(body) {
			if validate(sig, m) == nil {
				t.Fatal("go-github accepts a tampered body")
			}
			wantErr(t, v.Verify(githubRequest(sig, "issues", "d1", m), keys), relay.ErrBadSignature)
		}
		other := signGitHub(body, "other-secret")
		if validate(other, body) == nil {
			t.Fatal("go-github accepts another secret's signature")
		}
		wantErr(t, v.Verify(githubRequest(other, "issues", "d1", body), keys), relay.ErrBadSignature)
	}
}

func TestGitHub_Verify_RejectsTamperedBody(t *testing.T) {
	v := MustNew(t, Options{Kind: "github"})
	keys := [][]byte{MustKey(t, v, githubDocSecret)}
	for _, m := range mutations([]byte(githubDocBody)) {
		wantErr(t, v.Verify(githubRequest(githubDocSig, "push", "d1", m), keys), relay.ErrBadSignature)
	}
}

func TestGitHub_Verify_AcceptsRotatedKeys(t *testing.T) {
	v := MustNew(t, Options{Kind: "github"})
	keys := [][]byte{MustKey(t, v, "old-secret"), MustKey(t, v, githubSecret)}
	for _, s := range []string{"old-secret", githubSecret} {
		wantErr(t, v.Verify(githubRequest(signGitHub(githubBody, s), "issues", "d1", githubBody), keys), nil)
	}
	wantErr(t, v.Verify(githubRequest(signGitHub(githubBody, "other"), "issues", "d1", githubBody), keys), relay.ErrBadSignature)
}

func TestGitHub_Verify_RejectsGarbledHeader(t *testing.T) {
	v := MustNew(t, Options{Kind: "github"})
	keys := [][]byte{MustKey(t, v, githubDocSecret)}
	hexSig := strings.TrimPrefix(githubDocSig, "sha256=")
	for name, h := range map[string]string{
		"missing":        "",
		"no prefix":      hexSig,
		"sha1 prefix":    "sha1=" + hexSig,
		"upper prefix":   "SHA256=" + hexSig,
		"short":          "sha256=" + hexSig[:63],
		"long":           githubDocSig + "00",
		"not hex":        "sha256=" + strings.Repeat("z", 64),
		"space after =":  "sha256= " + hexSig,
		"two signatures": githubDocSig + "," + githubDocSig,
	} {
		t.Run(name, func(t *testing.T) {
			err := v.Verify(githubRequest(h, "push", "d1", []byte(githubDocBody)), keys)
			wantErr(t, err, relay.ErrBadSignature)
			noSecretIn(t, err, githubDocSecret, hexSig)
		})
	}
}

func TestGitHub_Parse(t *testing.T) {
	v := MustNew(t, Options{Kind: "github"})
	for _, tc := range []struct {
		name, event, body string
		typ               string
		discard           bool
		want              error
	}{
		{"action", "issues", `{"action":"opened"}`, "issues.opened", false, nil},
		{"no action", "push", `{"ref":"refs/heads/main"}`, "push", false, nil},
		{"action not a string", "push", `{"action":{"x":1}}`, "push", false, nil},
		{"empty action", "push", `{"action":""}`, "push", false, nil},
		{"ping", "ping", `{"zen":"Design for failure.","hook_id":1}`, "ping", true, nil},
		{"no event header", "", `{"action":"opened"}`, "", false, relay.ErrInvalidEvent},
		{"not json", "push", `payload=%7B%7D`, "", false, relay.ErrInvalidJSON},
		{"array", "push", `[]`, "", false, relay.ErrInvalidJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Parse(githubRequest("", tc.event, "72d3162e-cc78-11e3-81ab-4c9367dc0958", []byte(tc.body)))
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			it := p.Items[0]
			if len(p.Items) != 1 || it.ID != "72d3162e-cc78-11e3-81ab-4c9367dc0958" || it.Type != tc.typ || it.Discard != tc.discard || !it.OccurredAt.IsZero() {
				t.Fatalf("items = %+v", p.Items)
			}
		})
	}
}

func TestGitHub_Parse_NoDeliveryHeaderGivesEmptyID(t *testing.T) {
	v := MustNew(t, Options{Kind: "github"})
	p, err := v.Parse(githubRequest("", "push", "", githubBody))
	wantErr(t, err, nil)
	if p.Items[0].ID != "" {
		t.Fatalf("ID = %q, want empty", p.Items[0].ID)
	}
}

func FuzzVerifyGitHub(f *testing.F) {
	f.Add([]byte(githubDocBody), uint(0), byte(1))
	f.Add(githubBody, uint(7), byte(0x20))
	f.Add(body1K, uint(1023), byte(0xff))
	f.Add([]byte{}, uint(0), byte(0))
	v := MustNew(f, Options{Kind: "github"})
	keys := [][]byte{MustKey(f, v, githubSecret)}
	f.Fuzz(func(t *testing.T, body []byte, pos uint, x byte) {
		h := signGitHub(body, githubSecret)
		if err := v.Verify(githubRequest(h, "push", "d", body), keys); err != nil {
			t.Fatalf("original body: %v", err)
		}
		_, _ = v.Parse(githubRequest(h, "push", "d", body))
		wantErr(t, v.Verify(githubRequest(h, "push", "d", mutate(body, pos, x)), keys), relay.ErrBadSignature)
	})
}

func BenchmarkVerify_GitHub(b *testing.B) {
	v := MustNew(b, Options{Kind: "github"})
	keys := [][]byte{MustKey(b, v, githubSecret)}
	r := githubRequest(signGitHub(body1K, githubSecret), "push", "d", body1K)
	b.ReportAllocs()
	b.SetBytes(int64(len(body1K)))
	for b.Loop() {
		if err := v.Verify(r, keys); err != nil {
			b.Fatal(err)
		}
	}
}
