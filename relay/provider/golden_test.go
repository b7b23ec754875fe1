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

	"github.com/wprelay/wprelay/relay"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/provider and testdata/envelopes")

// fixtureDir holds provider fixtures: NAME.txt is a request (headers, a
// blank line, the body) from the kind named by NAME's first word, without
// its signature headers; NAME.golden.json is what Greet, Verify and Parse
// make of it once TestGolden has signed it with the test secrets at
// testNow. envelopeDir/NAME.golden.json holds the envelopes that targets
// would receive for it, built as the ingress builds them, with the event id
// fixed and received_at = testNow.
const (
	fixtureDir  = "../../testdata/provider"
	envelopeDir = "../../testdata/envelopes"
)

// goldenEventID stands for the UUIDv7 the ingress gives each event.
const goldenEventID = "00000000-0000-7000-8000-000000000000"

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
			parsed, envelopes := runFixture(t, kind, readFixture(t, file))
			checkGolden(t, filepath.Join(fixtureDir, name+".golden.json"), parsed)
			checkGolden(t, filepath.Join(envelopeDir, name+".golden.json"), envelopes)
		})
	}
}

// runFixture greets, signs, verifies and parses r as a source of kind
// would, and returns what it made of r and the envelopes of its events.
func runFixture(t *testing.T, kind string, r *Request) (parsed, envelopes map[string]any) {
	v, keys, sign := signFixture(t, kind, r)
	parsed, envelopes = map[string]any{}, map[string]any{}
	if g, ok := v.(Greeter); ok {
		if reply := g.Greet(r); reply != nil {
			parsed["greet"] = reply
			envelopes["reply"] = reply
			return parsed, envelopes
		}
	}
	sign()
	if err := v.Verify(r, keys); err != nil {
		parsed["verify_error"] = err.Error()
		envelopes["error"] = err.Error()
		return parsed, envelopes
	}
	p, err := v.Parse(r)
	if err != nil {
		parsed["parse_error"] = err.Error()
		envelopes["error"] = err.Error()
		return parsed, envelopes
	}
	parsed["parsed"] = goldenParsed(p)
	if p.Reply != nil {
		envelopes["reply"] = p.Reply
		return parsed, envelopes
	}
	var envs []relay.Envelope
	for _, it := range p.Items {
		envs = append(envs, goldenEnvelope(kind, it))
	}
	envelopes["envelopes"] = envs
	return parsed, envelopes
}

// goldenEnvelope builds the envelope of it as ingress does (relay.NewEvent),
// with the volatile fields fixed.
func goldenEnvelope(kind string, it Item) relay.Envelope {
	ev, err := relay.NewEvent(relay.Draft{
		ID: goldenEventID, Source: kind, Type: it.Type,
		IdempotencyKey: relay.IdempotencyKey(kind, "", it.ID, it.Body),
		ReceivedAt:     testNow, OccurredAt: it.OccurredAt, Normal: it.Normal, Data: it.EnvelopeData(),
	}, nil, testNow, nil)
	var env relay.Envelope
	if err == nil {
		err = json.Unmarshal(ev.Envelope, &env)
	}
	if err != nil {
		panic(fmt.Sprintf("golden envelope of %s %s: %v", kind, it.Type, err))
	}
	return env
}

// checkGolden compares v, as indented JSON, with the golden file, or
// rewrites the file under -update.
func checkGolden(t *testing.T, golden string, v any) {
	t.Helper()
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
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
}

// goldenParsed is p with each item's body left out (it is the fixture's,
// or the element of a batch).
func goldenParsed(p *Parsed) any {
	type item struct {
		ID         string        `json:"id"`
		Type       string        `json:"type"`
		OccurredAt string        `json:"occurred_at"`
		Discard    bool          `json:"discard"`
		BodyBytes  int           `json:"body_bytes"`
		Actor      relay.Actor   `json:"actor"`
		Subject    relay.Subject `json:"subject"`
		Action     relay.Action  `json:"action"`
	}
	var items []item
	for _, it := range p.Items {
		at := ""
		if !it.OccurredAt.IsZero() {
			at = it.OccurredAt.Format("2006-01-02T15:04:05.999999999Z07:00")
		}
		items = append(items, item{it.ID, it.Type, at, it.Discard, len(it.Body), it.Actor, it.Subject, it.Action})
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

// signFixture returns the verifier of kind, its keys, and sign, which adds
// the signature headers of kind to r, made independently of the code under
// test with the test secrets at testNow. Signing is left to the caller so
// that unsigned pings reach Greet as the provider sends them.
func signFixture(t *testing.T, kind string, r *Request) (v Verifier, keys [][]byte, sign func()) {
	t.Helper()
	ts := fmt.Sprint(testNow.Unix())
	switch kind {
	case "stripe":
		v = MustNew(t, Options{Kind: kind})
		sign = func() { r.Header.Set("Stripe-Signature", signStripe(testNow, r.Body, stripeSecret)) }
		return v, stripeKeys(t, v, stripeSecret), sign
	case "github":
		v = MustNew(t, Options{Kind: kind})
		sign = func() { r.Header.Set("X-Hub-Signature-256", signGitHub(r.Body, githubSecret)) }
		return v, [][]byte{MustKey(t, v, githubSecret)}, sign
	case "standard", "wordpress":
		prefix, id := "webhook", r.Header.Get("webhook-id")
		if id == "" {
			prefix, id = "svix", r.Header.Get("svix-id")
		}
		sign = func() {
			r.Header.Set(prefix+"-timestamp", ts)
			r.Header.Set(prefix+"-signature", signStandard(t, id, testNow, r.Body, wpSigningSecret))
			if kind == "wordpress" {
				r.Header.Set("Authorization", "Bearer "+hs256(t, wpClaims(testNow)))
			}
		}
		if kind == "standard" {
			v = MustNew(t, Options{Kind: kind})
			return v, standardKeys(t, v, wpSigningSecret), sign
		}
		v, keys = wpVerifier(t, Options{JWTSecret: wpJWTSecret})
		return v, keys, sign
	case "hmac":
		v = MustNew(t, Options{Kind: kind, HMAC: goldenHMAC})
		sign = func() { r.Header.Set(goldenHMAC.Header, b64MAC([]byte(hmacSecret), string(r.Body))) }
		return v, [][]byte{MustKey(t, v, hmacSecret)}, sign
	case "shopify":
		v = MustNew(t, Options{Kind: kind})
		sign = func() { r.Header.Set("X-Shopify-Hmac-SHA256", b64MAC([]byte(shopifySecret), string(r.Body))) }
		return v, [][]byte{MustKey(t, v, shopifySecret)}, sign
	case "slack":
		v = MustNew(t, Options{Kind: kind})
		sign = func() {
			r.Header.Set("X-Slack-Request-Timestamp", ts)
			r.Header.Set("X-Slack-Signature", signSlack(testNow, r.Body, slackSecret))
		}
		return v, [][]byte{MustKey(t, v, slackSecret)}, sign
	case "hubspot":
		v = MustNew(t, Options{Kind: kind, PublicURL: hubspotURL})
		r.URL = hubspotURL
		sign = func() {
			r.Header.Set("X-HubSpot-Request-Timestamp", fmt.Sprint(testNow.UnixMilli()))
			r.Header.Set("X-HubSpot-Signature-v3", signHubSpot("POST", hubspotURL, r.Body, testNow, hubspotSecret))
		}
		return v, [][]byte{MustKey(t, v, hubspotSecret)}, sign
	case "woocommerce":
		v = MustNew(t, Options{Kind: kind})
		sign = func() { r.Header.Set("X-WC-Webhook-Signature", b64MAC([]byte(wcSecret), string(r.Body))) }
		return v, [][]byte{MustKey(t, v, wcSecret)}, sign
	}
	t.Fatalf("fixture of unknown kind %q", kind)
	return nil, nil, nil
}
