//go:build integration

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wprelay/wprelay/relay/provider"
)

// hostileConfig has one source of each kind the corpus attacks.
func hostileConfig(targetURL string) string {
	return fmt.Sprintf(`
admin: {token: "${WPRELAY_E2E_ADMIN}"}
data_dir: ./data
log: {format: json, level: warn}
sources:
  - {name: gh, kind: github, secrets: [%q]}
  - {name: stripe, kind: stripe, secrets: [%q]}
  - {name: hubspot, kind: hubspot, public_url: %q, secrets: [%q]}
  - {name: slack, kind: slack, secrets: [%q]}
  - {name: site, kind: wordpress, issuer: %q, jwt_secret: %q, secrets: [%q]}
targets:
  - {name: wordpress, kind: wordpress, url: %q, jwt_secret: %q, signing_secret: %q, timeout: 2s}
routes:
  - {source: gh, to: [wordpress]}
  - {source: stripe, to: [wordpress]}
  - {source: hubspot, to: [wordpress]}
  - {source: slack, to: [wordpress]}
  - {source: site, to: [wordpress]}
`, githubSecret, stripeSecret, hubspotPublic, hubspotSecret, slackSecret, siteIssuer, siteJWT, standardSecret,
		targetURL, wpJWTSecret, wpSigning)
}

// hostile is one file of testdata/hostile.
type hostile struct {
	name         string
	status       int
	code         string
	sign, prime  string
	message      string // a part of the answer's message
	generate     string
	method, path string
	header       http.Header
	body         []byte
}

func readHostile(t *testing.T, path string) hostile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	meta, req, ok := strings.Cut(string(data), "\n---\n")
	if !ok {
		t.Fatalf("%s: no --- line", path)
	}
	h := hostile{name: filepath.Base(path), header: http.Header{}}
	for _, line := range strings.Split(meta, "\n") {
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "expect":
			f := strings.Fields(v)
			h.status, _ = strconv.Atoi(f[0])
			if len(f) > 1 {
				h.code = f[1]
			}
		case "sign":
			h.sign = v
		case "prime":
			h.prime = v
		case "message":
			h.message = v
		case "body":
			h.generate = v
		}
	}
	head, body, _ := strings.Cut(req, "\n\n")
	h.body = []byte(strings.TrimSuffix(body, "\n"))
	sc := bufio.NewScanner(strings.NewReader(head))
	sc.Scan()
	h.method, h.path, _ = strings.Cut(sc.Text(), " ")
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		h.header.Set(k, v)
	}
	if h.status == 0 || h.method == "" {
		t.Fatalf("%s: want expect: and a request line", path)
	}
	switch f := strings.Fields(h.generate); {
	case len(f) == 0:
	case f[0] == "deep":
		n, _ := strconv.Atoi(f[1])
		h.body = []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
	case f[0] == "hubspot-batch":
		n, _ := strconv.Atoi(f[1])
		h.body = hubspotBody(7_000_000, n)
	default:
		t.Fatalf("%s: unknown body: %s", path, h.generate)
	}
	return h
}

// signHostile signs h as its provider would, with the test's secrets.
func signHostile(t *testing.T, h *hostile) {
	t.Helper()
	kind, variant, _ := strings.Cut(h.sign, " ")
	body := string(h.body)
	switch kind {
	case "":
	case "github":
		h.header.Set("X-Hub-Signature-256", "sha256="+hexHMAC(githubSecret, body))
	case "stripe":
		h.header.Set("Stripe-Signature", signStripe(h.body, stripeSecret, time.Now()))
	case "hubspot":
		for k, v := range hubspotHeaders(h.body) {
			h.header.Set(k, v)
		}
	case "slack":
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		h.header.Set("X-Slack-Request-Timestamp", ts)
		h.header.Set("X-Slack-Signature", "v0="+hexHMAC(slackSecret, "v0:"+ts+":"+body))
	case "wordpress":
		v, err := provider.New(provider.Options{Kind: "wordpress", Issuer: siteIssuer, JWTSecret: siteJWT})
		if err != nil {
			t.Fatal(err)
		}
		key, err := v.Key(standardSecret)
		if err != nil {
			t.Fatal(err)
		}
		id := strings.SplitN(strings.SplitN(body, `"idempotency_key":"`, 2)[1], `"`, 2)[0]
		r := &provider.Request{Method: "POST", Header: http.Header{"Webhook-Id": {id}}, Body: h.body, Now: time.Now()}
		if err := v.(provider.Signer).Sign(r, key, ""); err != nil {
			t.Fatal(err)
		}
		for k := range r.Header {
			h.header.Set(k, r.Header.Get(k))
		}
		// The forged token: valid but for what the variant changes.
		now := time.Now()
		claims := jwt.MapClaims{"iss": siteIssuer, "aud": "wprelay", "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": "hostile-" + variant}
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		switch variant {
		case "crit":
			tok.Header["crit"] = []string{"exp"}
		case "exp-string":
			claims["exp"] = strconv.FormatInt(now.Add(2*time.Minute).Unix(), 10)
		default:
			t.Fatalf("%s: unknown wordpress variant %q", h.name, variant)
		}
		s, err := tok.SignedString([]byte(siteJWT))
		if err != nil {
			t.Fatal(err)
		}
		h.header.Set("Authorization", "Bearer "+s)
	default:
		t.Fatalf("%s: unknown sign: %s", h.name, h.sign)
	}
}

// send sends h and returns the status, the error code (or the status
// word of a success) and the message.
func (h *hostile) send(t *testing.T, base string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(h.method, base+h.path, bytes.NewReader(h.body))
	req.Header = h.header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var answer struct{ Error, Status, Message string }
	_ = json.Unmarshal(data, &answer)
	if answer.Error != "" {
		return resp.StatusCode, answer.Error, answer.Message
	}
	return resp.StatusCode, answer.Status, answer.Message
}

// storedEvents counts the events the sidecar holds.
func storedEvents(sc *sidecar) int {
	var st struct {
		Events map[string]int `json:"events"`
	}
	sc.adminDo("GET", "/admin/v1/stats", "", &st)
	n := 0
	for _, c := range st.Events {
		n += c
	}
	return n
}

// TestE2E_HostileCorpus replays testdata/hostile against the real binary:
// each request gets the status and error code its file names, and the
// store holds no more events after it than before.
func TestE2E_HostileCorpus(t *testing.T) {
	files, err := filepath.Glob("../../testdata/hostile/*.http")
	if err != nil || len(files) < 10 {
		t.Fatalf("corpus: %v, %d files", err, len(files))
	}
	tg := newTarget(t, nil)
	sc := startSidecar(t, t.TempDir(), hostileConfig(tg.URL()))
	for _, f := range files {
		h := readHostile(t, f)
		t.Run(h.name, func(t *testing.T) {
			if h.prime != "" {
				p := readHostile(t, filepath.Join(filepath.Dir(f), h.prime))
				signHostile(t, &p)
				if status, _, _ := p.send(t, sc.public); status != p.status {
					t.Fatalf("prime %s: %d, want %d", p.name, status, p.status)
				}
			}
			before := storedEvents(sc)
			signHostile(t, &h)
			status, code, msg := h.send(t, sc.public)
			if status != h.status || h.code != "" && code != h.code || !strings.Contains(msg, h.message) {
				t.Errorf("%s: %d %s %q, want %d %s %q", h.name, status, code, msg, h.status, h.code, h.message)
			}
			if after := storedEvents(sc); after != before {
				t.Errorf("%s: the store holds %d events after it, %d before", h.name, after, before)
			}
		})
	}
}
