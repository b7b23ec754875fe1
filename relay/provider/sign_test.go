package provider

import (
	"net/http"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// signCase is one kind set up for signing: its options, a secret and a
// body of the provider's shape.
type signCase struct {
	opts   Options
	secret string
	typ    string
	body   string
}

func signCases() map[string]signCase {
	return map[string]signCase{
		"stripe":      {Options{Kind: "stripe"}, stripeSecret, "", string(stripeBody)},
		"github":      {Options{Kind: "github"}, githubSecret, "issues.opened", string(githubBody)},
		"shopify":     {Options{Kind: "shopify"}, shopifySecret, "orders/create", string(shopifyBody)},
		"slack":       {Options{Kind: "slack"}, slackSecret, "", string(slackBody)},
		"standard":    {Options{Kind: "standard"}, standardSecret, "", string(standardBody)},
		"hubspot":     {Options{Kind: "hubspot", PublicURL: hubspotURL}, hubspotSecret, "", hubspotDocBody},
		"woocommerce": {Options{Kind: "woocommerce"}, wcSecret, "order.created", string(wcBody)},
		"hmac": {Options{Kind: "hmac", HMAC: HMACOptions{Header: "X-Signature", Prefix: "sha256=", Template: "{timestamp}.{nonce}.{body}",
			TimestampHeader: "X-Timestamp", NonceHeader: "X-Nonce", IDHeader: "X-Id", TypePath: "type"}}, hmacSecret, "", `{"type":"a.b"}`},
		"wordpress": {wpOptions(Options{JWTSecret: wpJWTSecret}), wpSigningSecret, "", string(wpBody)},
	}
}

// Every kind signs what it verifies: Sign's headers verify and parse, and
// the same headers with a tampered body do not.
func TestSign_RoundTripsEveryKind(t *testing.T) {
	cases := signCases()
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			tc, ok := cases[kind]
			if !ok {
				t.Fatalf("no sign case for kind %q", kind)
			}
			v := MustNew(t, tc.opts)
			s, ok := v.(Signer)
			if !ok {
				t.Fatalf("kind %s does not implement Signer", kind)
			}
			key := MustKey(t, v, tc.secret)
			r := &Request{Method: "POST", URL: hubspotURL, Header: http.Header{}, Body: []byte(tc.body), Now: testNow}
			if err := s.Sign(r, key, tc.typ); err != nil {
				t.Fatal(err)
			}
			wantErr(t, v.Verify(r, [][]byte{key}), nil)
			p, err := v.Parse(r)
			wantErr(t, err, nil)
			if len(p.Items) == 0 {
				t.Fatalf("parsed %+v", p)
			}
			r.Body = append([]byte(tc.body), ' ')
			wantErr(t, v.Verify(r, [][]byte{key}), relay.ErrBadSignature)
		})
	}
}

func TestSign_KeepsIDsTheCallerSet(t *testing.T) {
	v := MustNew(t, Options{Kind: "shopify"})
	r := &Request{Header: http.Header{"X-Shopify-Webhook-Id": {"w-1"}}, Body: shopifyBody, Now: testNow}
	if err := v.(Signer).Sign(r, []byte(shopifySecret), "orders/create"); err != nil {
		t.Fatal(err)
	}
	if r.Header.Get("X-Shopify-Webhook-Id") != "w-1" || r.Header.Get("X-Shopify-Event-Id") == "" ||
		r.Header.Get("X-Shopify-Triggered-At") != testNow.Format(time.RFC3339Nano) {
		t.Fatalf("headers %v", r.Header)
	}
}

func TestSign_RequiresTheEventTypeWhereAHeaderCarriesIt(t *testing.T) {
	for _, kind := range []string{"github", "shopify", "woocommerce"} {
		v := MustNew(t, Options{Kind: kind})
		err := v.(Signer).Sign(&Request{Header: http.Header{}, Body: []byte(`{}`), Now: testNow}, []byte("k"), "")
		if err == nil {
			t.Errorf("%s: Sign without a type = nil error", kind)
		}
	}
}

func TestSign_WordPressUsesTheIdempotencyKey(t *testing.T) {
	v, keys := wpVerifier(t, Options{JWTSecret: wpJWTSecret})
	r := &Request{Header: http.Header{}, Body: wpBody, Now: testNow}
	if err := v.(Signer).Sign(r, keys[0], ""); err != nil {
		t.Fatal(err)
	}
	if r.Header.Get("webhook-id") != wpID {
		t.Fatalf("webhook-id = %q, want the body's idempotency_key", r.Header.Get("webhook-id"))
	}
	p, err := v.Parse(r)
	wantErr(t, err, nil)
	if p.Nonce == "" || p.NonceExpires.Sub(testNow) != 330*time.Second {
		t.Fatalf("nonce %q expires %v", p.Nonce, p.NonceExpires)
	}
	noKey, _ := wpVerifier(t, Options{PublicKey: edPEM(t)})
	if err := noKey.(Signer).Sign(&Request{Header: http.Header{}, Body: wpBody, Now: testNow}, keys[0], ""); err == nil {
		t.Fatal("Sign without a jwt_secret = nil error")
	}
}
