package provider

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/provider")

// fixtureDir holds provider fixtures: NAME.txt is a request (headers, a
// blank line, the body) from the kind named by NAME's first word, without
// its signature headers; NAME.golden.json is what Verify and Parse make of
// it once TestGolden has signed it with the test secrets at testNow.
const fixtureDir = "../../testdata/provider"

// goldenHMAC configures the hmac fixtures like a Shopify source.
var goldenHMAC = HMACOptions{Header: "X-Shopify-Hmac-Sha256", Encoding: "base64", IDHeader: "X-Shopify-Webhook-Id", TypePath: "topic"}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s (%v)", fixtureDir, err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			kind, _, _ := strings.Cut(name, "-")
			r := readFixture(t, file)
			v, keys := signFixture(t, kind, r)
			got := map[string]any{}
			if err := v.Verify(r, keys); err != nil {
				got["verify_error"] = err.Error()
			} else if p, err := v.Parse(r); err != nil {
				got["parse_error"] = err.Error()
			} else {
				got["parsed"] = goldenParsed(p)
			}
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, '\n')
			golden := filepath.Join(fixtureDir, name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("%s differs:\n--- got\n%s--- want\n%s", golden, out, want)
			}
		})
	}
}

// goldenParsed is p with each item's body left out (it is the fixture's).
func goldenParsed(p *Parsed) any {
	type item struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		OccurredAt string `json:"occurred_at"`
		Discard    bool   `json:"discard"`
		BodyBytes  int    `json:"body_bytes"`
	}
	var items []item
	for _, it := range p.Items {
		at := ""
		if !it.OccurredAt.IsZero() {
			at = it.OccurredAt.Format("2006-01-02T15:04:05.999999999Z07:00")
		}
		items = append(items, item{it.ID, it.Type, at, it.Discard, len(it.Body)})
	}
	exp := ""
	if !p.NonceExpires.IsZero() {
		exp = p.NonceExpires.Format("2006-01-02T15:04:05Z07:00")
	}
	return map[string]any{"items": items, "nonce": p.Nonce, "nonce_expires": exp, "reply": p.Reply}
}

// readFixture reads a fixture's headers and body (without its final
// newline).
func readFixture(t *testing.T, file string) *Request {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(b))
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("%s: headers: %v", file, err)
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(br); err != nil {
		t.Fatal(err)
	}
	return &Request{Method: "POST", URL: "https://relay.example.com/hooks/" + filepath.Base(file),
		Header: http.Header(h), Body: bytes.TrimSuffix(body.Bytes(), []byte("\n")), Now: testNow}
}

// signFixture adds the signature headers of kind to r, made with the test
// secrets at testNow, and returns the kind's verifier and keys.
func signFixture(t *testing.T, kind string, r *Request) (Verifier, [][]byte) {
	t.Helper()
	ts := fmt.Sprint(testNow.Unix())
	switch kind {
	case "stripe":
		v := MustNew(t, Options{Kind: kind})
		r.Header.Set("Stripe-Signature", signStripe(testNow, r.Body, stripeSecret))
		return v, stripeKeys(t, v, stripeSecret)
	case "github":
		v := MustNew(t, Options{Kind: kind})
		r.Header.Set("X-Hub-Signature-256", signGitHub(r.Body, githubSecret))
		return v, [][]byte{MustKey(t, v, githubSecret)}
	case "standard", "wordpress":
		prefix, id := "webhook", r.Header.Get("webhook-id")
		if id == "" {
			prefix, id = "svix", r.Header.Get("svix-id")
		}
		r.Header.Set(prefix+"-timestamp", ts)
		r.Header.Set(prefix+"-signature", signStandard(t, id, testNow, r.Body, wpSigningSecret))
		if kind == "standard" {
			v := MustNew(t, Options{Kind: kind})
			return v, standardKeys(t, v, wpSigningSecret)
		}
		r.Header.Set("Authorization", "Bearer "+hs256(t, wpClaims(testNow)))
		return wpVerifier(t, Options{JWTSecret: wpJWTSecret})
	case "hmac":
		v := MustNew(t, Options{Kind: kind, HMAC: goldenHMAC})
		r.Header.Set(goldenHMAC.Header, b64MAC([]byte(hmacSecret), string(r.Body)))
		return v, [][]byte{MustKey(t, v, hmacSecret)}
	}
	t.Fatalf("fixture of unknown kind %q", kind)
	return nil, nil
}
