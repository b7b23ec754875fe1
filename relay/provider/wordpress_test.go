package provider

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wprelay/wprelay/relay"
)

const (
	wpIssuer    = "https://example.com"
	wpJWTSecret = "site-jwt-secret-0123456789abcdef-0123456789"
	wpID        = "5f0c6f5e-8d1b-4c57-9d2a-7b1e1f3c9a10"
	wpJTI       = "2b0d7c0e-3a4f-4f1e-9b7a-0c5d6e7f8a9b"
)

var wpSigningSecret = standardSecretNew

var wpBody = []byte(`{"event_type":"post.published","object_ref":"post:123","idempotency_key":"` + wpID +
	`","occurred_at":"2026-11-28T10:00:00Z","data":{"title":"Hello","id":123}}`)

// The test keys are generated once per test binary.
var (
	wpRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	wpEdKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func publicPEM(tb testing.TB, pub any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func rsaPEM(tb testing.TB) string { return publicPEM(tb, &wpRSAKey().PublicKey) }
func edPEM(tb testing.TB) string  { return publicPEM(tb, wpEdKey().Public()) }

// wpClaims returns valid claims issued at now.
func wpClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": wpIssuer,
		"aud": "wprelay",
		"iat": now.Unix(),
		"exp": now.Add(300 * time.Second).Unix(),
		"jti": wpJTI,
	}
}

func mint(tb testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func hs256(tb testing.TB, claims jwt.MapClaims) string {
	return mint(tb, jwt.SigningMethodHS256, []byte(wpJWTSecret), claims)
}

// wpRequest returns a request carrying token and a Standard Webhooks
// signature of body made with wpSigningSecret at testNow.
func wpRequest(tb testing.TB, token string, body []byte) *Request {
	tb.Helper()
	h := standardHeader("webhook", wpID, testNow, signStandard(tb, wpID, testNow, body, wpSigningSecret))
	h.Set("Content-Type", "application/json")
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return &Request{Method: "POST", Header: h, Body: body, Now: testNow}
}

func wpOptions(o Options) Options {
	o.Kind = "wordpress"
	if o.Issuer == "" {
		o.Issuer = wpIssuer
	}
	return o
}

func wpVerifier(tb testing.TB, o Options) (Verifier, [][]byte) {
	tb.Helper()
	v := MustNew(tb, wpOptions(o))
	return v, [][]byte{MustKey(tb, v, wpSigningSecret)}
}

func TestWordPress_Verify_AcceptsValidTokens(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		token func(t *testing.T) string
	}{
		{"HS256", Options{JWTSecret: wpJWTSecret}, func(t *testing.T) string { return hs256(t, wpClaims(testNow)) }},
		{"RS256", Options{PublicKey: rsaPEM(t)}, func(t *testing.T) string {
			return mint(t, jwt.SigningMethodRS256, wpRSAKey(), wpClaims(testNow))
		}},
		{"EdDSA", Options{PublicKey: edPEM(t)}, func(t *testing.T) string {
			return mint(t, jwt.SigningMethodEdDSA, wpEdKey(), wpClaims(testNow))
		}},
		{"HS256 with both keys", Options{JWTSecret: wpJWTSecret, PublicKey: rsaPEM(t)}, func(t *testing.T) string { return hs256(t, wpClaims(testNow)) }},
		{"RS256 with both keys", Options{JWTSecret: wpJWTSecret, PublicKey: rsaPEM(t)}, func(t *testing.T) string {
			return mint(t, jwt.SigningMethodRS256, wpRSAKey(), wpClaims(testNow))
		}},
		{"PS256 when configured", Options{PublicKey: rsaPEM(t), Algorithms: []string{"PS256"}}, func(t *testing.T) string {
			return mint(t, jwt.SigningMethodPS256, wpRSAKey(), wpClaims(testNow))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, keys := wpVerifier(t, tc.opts)
			wantErr(t, v.Verify(wpRequest(t, tc.token(t), wpBody), keys), nil)
		})
	}
}

func TestWordPress_Verify_RejectsDisallowedAlgorithms(t *testing.T) {
	none := mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, wpClaims(testNow))
	hsClaims := strings.SplitN(hs256(t, wpClaims(testNow)), ".", 3)
	enc := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct {
		name  string
		opts  Options
		token string
	}{
		{"alg none, HS configured", Options{JWTSecret: wpJWTSecret}, none},
		{"alg none, RSA configured", Options{PublicKey: rsaPEM(t)}, none},
		{"alg none with an HS signature", Options{JWTSecret: wpJWTSecret}, enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + hsClaims[1] + "." + hsClaims[2]},
		{"alg NONE", Options{JWTSecret: wpJWTSecret}, enc([]byte(`{"alg":"NONE"}`)) + "." + hsClaims[1] + "."},
		{"no alg", Options{JWTSecret: wpJWTSecret}, enc([]byte(`{"typ":"JWT"}`)) + "." + hsClaims[1] + "." + hsClaims[2]},
		// The classic key confusion: an HS256 token whose secret is the
		// public key PEM, which an attacker knows.
		{"HS256 signed with the RSA public key PEM", Options{PublicKey: rsaPEM(t)},
			mint(t, jwt.SigningMethodHS256, []byte(rsaPEM(t)), wpClaims(testNow))},
		{"HS256 signed with the RSA public key PEM, both configured", Options{JWTSecret: wpJWTSecret, PublicKey: rsaPEM(t)},
			mint(t, jwt.SigningMethodHS256, []byte(rsaPEM(t)), wpClaims(testNow))},
		{"HS256 signed with the Ed25519 public key PEM", Options{PublicKey: edPEM(t)},
			mint(t, jwt.SigningMethodHS256, []byte(edPEM(t)), wpClaims(testNow))},
		{"RS256 when only HS256 is configured", Options{JWTSecret: wpJWTSecret},
			mint(t, jwt.SigningMethodRS256, wpRSAKey(), wpClaims(testNow))},
		{"HS512 when HS256 is configured", Options{JWTSecret: wpJWTSecret},
			mint(t, jwt.SigningMethodHS512, []byte(wpJWTSecret), wpClaims(testNow))},
		{"EdDSA when the key is RSA", Options{PublicKey: rsaPEM(t)},
			mint(t, jwt.SigningMethodEdDSA, wpEdKey(), wpClaims(testNow))},
		{"RS256 when narrowed to PS256", Options{PublicKey: rsaPEM(t), Algorithms: []string{"PS256"}},
			mint(t, jwt.SigningMethodRS256, wpRSAKey(), wpClaims(testNow))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, keys := wpVerifier(t, tc.opts)
			err := v.Verify(wpRequest(t, tc.token, wpBody), keys)
			wantErr(t, err, relay.ErrInvalidToken)
			noSecretIn(t, err, tc.token, wpJWTSecret)
		})
	}
}

func TestWordPress_Key_MatchesAlgorithmFamily(t *testing.T) {
	v, err := NewWordPress(wpOptions(Options{PublicKey: rsaPEM(t)}))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodEdDSA, jwt.SigningMethodES256, jwt.SigningMethodNone} {
		if k, err := v.key(&jwt.Token{Method: m}); err == nil {
			t.Errorf("key(%s) = %T, want an error: only an RSA key is configured", m.Alg(), k)
		}
	}
	k, err := v.key(&jwt.Token{Method: jwt.SigningMethodPS256})
	if pub, ok := k.(*rsa.PublicKey); err != nil || !ok || !pub.Equal(&wpRSAKey().PublicKey) {
		t.Errorf("key(PS256) = %T, %v; want the RSA key", k, err)
	}
}

func TestWordPress_Verify_RejectsForeignSignature(t *testing.T) {
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	for name, tc := range map[string]struct {
		opts  Options
		token string
	}{
		"HS256 other secret": {Options{JWTSecret: wpJWTSecret}, mint(t, jwt.SigningMethodHS256, []byte(wpJWTSecret+"x"), wpClaims(testNow))},
		"EdDSA other key":    {Options{PublicKey: publicPEM(t, other)}, mint(t, jwt.SigningMethodEdDSA, otherPriv, wpClaims(testNow))},
	} {
		t.Run(name, func(t *testing.T) {
			v, keys := wpVerifier(t, tc.opts)
			wantErr(t, v.Verify(wpRequest(t, tc.token, wpBody), keys), relay.ErrInvalidToken)
		})
	}
}

func TestWordPress_Verify_Claims(t *testing.T) {
	v, keys := wpVerifier(t, Options{JWTSecret: wpJWTSecret})
	edit := func(f func(c jwt.MapClaims)) jwt.MapClaims {
		c := wpClaims(testNow)
		f(c)
		return c
	}
	at := func(iat, exp time.Duration) func(c jwt.MapClaims) {
		return func(c jwt.MapClaims) {
			c["iat"] = testNow.Add(iat).Unix()
			c["exp"] = testNow.Add(exp).Unix()
		}
	}
	for _, tc := range []struct {
		name   string
		claims jwt.MapClaims
		want   error
	}{
		{"valid", wpClaims(testNow), nil},
		{"expired", edit(at(-400*time.Second, -31*time.Second)), relay.ErrInvalidToken},
		{"expired within leeway", edit(at(-300*time.Second, -29*time.Second)), nil},
		{"iat in the future beyond leeway", edit(at(31*time.Second, 60*time.Second)), relay.ErrInvalidToken},
		{"iat in the future within leeway", edit(at(29*time.Second, 60*time.Second)), nil},
		{"lifetime over 300s", edit(at(0, 301*time.Second)), relay.ErrInvalidToken},
		{"lifetime exactly 300s", edit(at(-10*time.Second, 290*time.Second)), nil},
		{"exp before iat", edit(at(0, -time.Second)), relay.ErrInvalidToken},
		{"nbf in the future", edit(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Minute).Unix() }), relay.ErrInvalidToken},
		{"nbf within leeway", edit(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(20 * time.Second).Unix() }), nil},
		{"wrong iss", edit(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), relay.ErrInvalidToken},
		{"iss prefix", edit(func(c jwt.MapClaims) { c["iss"] = wpIssuer + ".evil" }), relay.ErrInvalidToken},
		{"iss with trailing slash", edit(func(c jwt.MapClaims) { c["iss"] = wpIssuer + "/" }), nil},
		{"missing iss", edit(func(c jwt.MapClaims) { delete(c, "iss") }), relay.ErrInvalidToken},
		{"wrong aud", edit(func(c jwt.MapClaims) { c["aud"] = "https://example.com" }), relay.ErrInvalidToken},
		{"aud list with wprelay", edit(func(c jwt.MapClaims) { c["aud"] = []string{"other", "wprelay"} }), nil},
		{"aud list without wprelay", edit(func(c jwt.MapClaims) { c["aud"] = []string{"other", "WPRELAY"} }), relay.ErrInvalidToken},
		{"missing aud", edit(func(c jwt.MapClaims) { delete(c, "aud") }), relay.ErrInvalidToken},
		{"missing jti", edit(func(c jwt.MapClaims) { delete(c, "jti") }), relay.ErrInvalidToken},
		{"empty jti", edit(func(c jwt.MapClaims) { c["jti"] = "" }), relay.ErrInvalidToken},
		{"jti too long", edit(func(c jwt.MapClaims) { c["jti"] = strings.Repeat("j", 256) }), relay.ErrInvalidToken},
		{"missing exp", edit(func(c jwt.MapClaims) { delete(c, "exp") }), relay.ErrInvalidToken},
		{"missing iat", edit(func(c jwt.MapClaims) { delete(c, "iat") }), relay.ErrInvalidToken},
		{"exp not a number", edit(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), relay.ErrInvalidToken},
		// golang-jwt reads a numeric string as a date; RFC 7519 wants a number.
		{"exp a numeric string", edit(func(c jwt.MapClaims) { c["exp"] = fmt.Sprint(testNow.Add(60 * time.Second).Unix()) }), relay.ErrInvalidToken},
		{"iat a numeric string", edit(func(c jwt.MapClaims) { c["iat"] = fmt.Sprint(testNow.Unix()) }), relay.ErrInvalidToken},
		{"exp with a fraction", edit(func(c jwt.MapClaims) { c["exp"] = float64(testNow.Add(60*time.Second).Unix()) + 0.5 }), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := hs256(t, tc.claims)
			err := v.Verify(wpRequest(t, tok, wpBody), keys)
			wantErr(t, err, tc.want)
			noSecretIn(t, err, tok, wpJWTSecret)
		})
	}
}

func TestWordPress_Verify_RejectsMissingOrMalformedToken(t *testing.T) {
	v, keys := wpVerifier(t, Options{JWTSecret: wpJWTSecret})
	tok := hs256(t, wpClaims(testNow))
	for name, auth := range map[string]string{
		"missing":          "",
		"basic":            "Basic dXNlcjpwYXNz",
		"bearer only":      "Bearer",
		"bearer space":     "Bearer ",
		"two segments":     "Bearer " + tok[:strings.LastIndexByte(tok, '.')],
		"four segments":    "Bearer " + tok + ".x",
		"garbage":          "Bearer !!!.???.***",
		"padded signature": "Bearer " + tok + "=",
	} {
		t.Run(name, func(t *testing.T) {
			r := wpRequest(t, "", wpBody)
			if auth != "" {
				r.Header.Set("Authorization", auth)
			}
			err := v.Verify(r, keys)
			wantErr(t, err, relay.ErrInvalidToken)
			noSecretIn(t, err, tok)
		})
	}
	t.Run("lower-case scheme", func(t *testing.T) {
		r := wpRequest(t, "", wpBody)
		r.Header.Set("Authorization", "bearer "+tok)
		wantErr(t, v.Verify(r, keys), nil)
	})
}

func TestWordPress_Verify_ChecksStandardSignature(t *testing.T) {
	v, keys := wpVerifier(t, Options{JWTSecret: wpJWTSecret})
	tok := hs256(t, wpClaims(testNow))
	t.Run("other signing secret", func(t *testing.T) {
		r := wpRequest(t, tok, wpBody)
		r.Header.Set("webhook-signature", signStandard(t, wpID, testNow, wpBody, standardSecret))
		wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
	})
	t.Run("missing signature", func(t *testing.T) {
		r := wpRequest(t, tok, wpBody)
		r.Header.Del("webhook-signature")
		wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
	})
	t.Run("stale timestamp", func(t *testing.T) {
		old := testNow.Add(-6 * time.Minute)
		r := wpRequest(t, tok, wpBody)
		r.Header = standardHeader("webhook", wpID, old, signStandard(t, wpID, old, wpBody, wpSigningSecret))
		r.Header.Set("Authorization", "Bearer "+tok)
		wantErr(t, v.Verify(r, keys), relay.ErrStaleTimestamp)
	})
	t.Run("rotated signing secret", func(t *testing.T) {
		r := wpRequest(t, tok, wpBody)
		wantErr(t, v.Verify(r, [][]byte{MustKey(t, v, standardSecret), keys[0]}), nil)
	})
	t.Run("signing secret is whsec_ base64", func(t *testing.T) {
		if _, err := v.Key("plain-secret"); err == nil {
			t.Fatal("Key accepted a secret that is not whsec_<base64>")
		}
	})
}

func TestWordPress_Verify_RejectsTamperedBody(t *testing.T) {
	v, keys := wpVerifier(t, Options{JWTSecret: wpJWTSecret})
	r := wpRequest(t, hs256(t, wpClaims(testNow)), wpBody)
	for _, m := range mutations(wpBody) {
		r.Body = m
		wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
	}
}

func TestWordPress_Verify_IsSafeForConcurrentUse(t *testing.T) {
	v, keys := wpVerifier(t, Options{JWTSecret: wpJWTSecret, PublicKey: edPEM(t)})
	good := wpRequest(t, hs256(t, wpClaims(testNow)), wpBody)
	bad := wpRequest(t, mint(t, jwt.SigningMethodEdDSA, wpEdKey(), wpClaims(testNow.Add(-time.Hour))), wpBody)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			if i%2 == 0 {
				errs <- v.Verify(good, keys)
			} else if err := v.Verify(bad, keys); err == nil {
				errs <- fmt.Errorf("expired token accepted")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestWordPress_Parse(t *testing.T) {
	v, keys := wpVerifier(t, Options{JWTSecret: wpJWTSecret})
	claims := wpClaims(testNow)
	r := wpRequest(t, hs256(t, claims), wpBody)
	wantErr(t, v.Verify(r, keys), nil)
	p, err := v.Parse(r)
	wantErr(t, err, nil)
	if len(p.Items) != 1 {
		t.Fatalf("items = %d", len(p.Items))
	}
	it := p.Items[0]
	if it.ID != wpID || it.Type != "post.published" || !it.OccurredAt.Equal(testNow) || string(it.Body) != string(wpBody) || it.Discard {
		t.Fatalf("item = %+v", it)
	}
	if p.Nonce != wpJTI {
		t.Fatalf("Nonce = %q, want the jti", p.Nonce)
	}
	if want := testNow.Add(300*time.Second + 30*time.Second); !p.NonceExpires.Equal(want) {
		t.Fatalf("NonceExpires = %v, want exp + leeway = %v", p.NonceExpires, want)
	}
}

func TestWordPress_Parse_RejectsSchemaViolations(t *testing.T) {
	v, _ := wpVerifier(t, Options{JWTSecret: wpJWTSecret})
	tok := hs256(t, wpClaims(testNow))
	valid := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal(wpBody, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	set := func(k string, val any) []byte {
		m := valid()
		if val == nil {
			delete(m, k)
		} else {
			m[k] = val
		}
		b, _ := json.Marshal(m)
		return b
	}
	for _, tc := range []struct {
		name  string
		body  []byte
		want  error
		field string
	}{
		{"valid", wpBody, nil, ""},
		{"three-word type", set("event_type", "woocommerce.order.paid"), nil, ""},
		{"digits and underscores", set("event_type", "user_2.updated_at"), nil, ""},
		{"object_ref 191 chars", set("object_ref", strings.Repeat("é", 191)), nil, ""},
		{"occurred_at with offset and fraction", set("occurred_at", "2026-11-28T11:00:00.123+01:00"), nil, ""},
		{"empty data", set("data", map[string]any{}), nil, ""},
		{"not json", []byte("event_type=post.published"), relay.ErrInvalidJSON, ""},
		{"array", []byte(`[` + string(wpBody) + `]`), relay.ErrInvalidJSON, ""},
		{"missing event_type", set("event_type", nil), relay.ErrInvalidEvent, "event_type"},
		{"event_type one word", set("event_type", "published"), relay.ErrInvalidEvent, "event_type"},
		{"event_type four words", set("event_type", "a.b.c.d"), relay.ErrInvalidEvent, "event_type"},
		{"event_type upper case", set("event_type", "Post.published"), relay.ErrInvalidEvent, "event_type"},
		{"event_type empty word", set("event_type", "post..published"), relay.ErrInvalidEvent, "event_type"},
		{"event_type trailing dot", set("event_type", "post.published."), relay.ErrInvalidEvent, "event_type"},
		{"event_type dash", set("event_type", "post.re-published"), relay.ErrInvalidEvent, "event_type"},
		{"event_type newline", set("event_type", "post.published\n"), relay.ErrInvalidEvent, "event_type"},
		{"event_type not a string", set("event_type", 1), relay.ErrInvalidEvent, "event_type"},
		{"missing object_ref", set("object_ref", nil), relay.ErrInvalidEvent, "object_ref"},
		{"object_ref 192 chars", set("object_ref", strings.Repeat("a", 192)), relay.ErrInvalidEvent, "object_ref"},
		{"object_ref not a string", set("object_ref", 123), relay.ErrInvalidEvent, "object_ref"},
		{"missing occurred_at", set("occurred_at", nil), relay.ErrInvalidEvent, "occurred_at"},
		{"occurred_at not RFC 3339", set("occurred_at", "2026-11-28 10:00:00"), relay.ErrInvalidEvent, "occurred_at"},
		{"occurred_at unix", set("occurred_at", 1764324000), relay.ErrInvalidEvent, "occurred_at"},
		{"missing data", set("data", nil), relay.ErrInvalidEvent, "data"},
		{"data array", set("data", []any{1}), relay.ErrInvalidEvent, "data"},
		{"data string", set("data", "{}"), relay.ErrInvalidEvent, "data"},
		{"data null", []byte(strings.Replace(string(wpBody), `"data":{"title":"Hello","id":123}`, `"data":null`, 1)), relay.ErrInvalidEvent, "data"},
		{"missing idempotency_key", set("idempotency_key", nil), relay.ErrInvalidEvent, "idempotency_key"},
		{"idempotency_key differs", set("idempotency_key", "other"), relay.ErrInvalidEvent, "idempotency_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Parse is called on verified requests only: sign each body.
			p, err := v.Parse(wpRequest(t, tok, tc.body))
			wantErr(t, err, tc.want)
			if err != nil && tc.field != "" && !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want it to name %s", err, tc.field)
			}
			if err == nil && (len(p.Items) != 1 || p.Nonce == "") {
				t.Fatalf("parsed = %+v", p)
			}
		})
	}
}

func TestWordPress_New_ValidatesOptions(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(wpEdKey())
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	for _, tc := range []struct {
		name string
		opts Options
		want string // in the error
	}{
		{"no issuer", Options{JWTSecret: wpJWTSecret}, "issuer"},
		{"no key", Options{}, "jwt_secret or public_key"},
		{"short secret", Options{JWTSecret: "short"}, "jwt_secret"},
		{"not PEM", Options{PublicKey: "ssh-ed25519 AAAA"}, "public_key"},
		{"private key", Options{PublicKey: privPEM}, "private key"},
		{"small RSA key", Options{PublicKey: publicPEM(t, &small.PublicKey)}, "1024 bits"},
		{"alg none", Options{JWTSecret: wpJWTSecret, Algorithms: []string{"none"}}, "none"},
		{"unknown alg", Options{JWTSecret: wpJWTSecret, Algorithms: []string{"HS1"}}, "HS1"},
		{"RS256 without RSA key", Options{JWTSecret: wpJWTSecret, Algorithms: []string{"RS256"}}, "RS256"},
		{"EdDSA with RSA key", Options{PublicKey: rsaPEM(t), Algorithms: []string{"EdDSA"}}, "EdDSA"},
		{"HS256 without secret", Options{PublicKey: edPEM(t), Algorithms: []string{"HS256"}}, "HS256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Kind = "wordpress"
			if tc.name != "no issuer" {
				o.Issuer = wpIssuer
			}
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
			noSecretIn(t, err, o.JWTSecret)
		})
	}
}

func TestWordPress_New_AcceptsPKCS1AndCertificateKeys(t *testing.T) {
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&wpRSAKey().PublicKey)}))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, wpEdKey().Public(), wpEdKey())
	if err != nil {
		t.Fatal(err)
	}
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	for name, tc := range map[string]struct {
		pem string
		tok string
	}{
		"pkcs1":       {pkcs1, mint(t, jwt.SigningMethodRS256, wpRSAKey(), wpClaims(testNow))},
		"certificate": {cert, mint(t, jwt.SigningMethodEdDSA, wpEdKey(), wpClaims(testNow))},
	} {
		t.Run(name, func(t *testing.T) {
			v, keys := wpVerifier(t, Options{PublicKey: tc.pem})
			wantErr(t, v.Verify(wpRequest(t, tc.tok, wpBody), keys), nil)
		})
	}
}

func FuzzWordPressToken(f *testing.F) {
	valid := hs256(f, wpClaims(testNow))
	f.Add(valid)
	f.Add(mint(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, wpClaims(testNow)))
	f.Add(mint(f, jwt.SigningMethodHS256, []byte(wpJWTSecret), jwt.MapClaims{"iss": wpIssuer}))
	f.Add(mint(f, jwt.SigningMethodEdDSA, wpEdKey(), wpClaims(testNow)))
	// Signed, but with a crit header or a string exp: refused.
	crit := jwt.NewWithClaims(jwt.SigningMethodHS256, wpClaims(testNow))
	crit.Header["crit"] = []string{"exp"}
	if s, err := crit.SignedString([]byte(wpJWTSecret)); err == nil {
		f.Add(s)
	}
	stringExp := wpClaims(testNow)
	stringExp["exp"] = fmt.Sprint(testNow.Add(time.Minute).Unix())
	f.Add(hs256(f, stringExp))
	f.Add("e30.e30.")
	f.Add("..")
	f.Add("")
	v, keys := wpVerifier(f, Options{JWTSecret: wpJWTSecret, PublicKey: edPEM(f)})
	edValid := mint(f, jwt.SigningMethodEdDSA, wpEdKey(), wpClaims(testNow))
	r := wpRequest(f, "", wpBody)
	f.Fuzz(func(t *testing.T, tok string) {
		req := *r
		req.Header = r.Header.Clone()
		req.Header.Set("Authorization", "Bearer "+tok)
		err := v.Verify(&req, keys)
		if err == nil {
			// A forger cannot make a new token: only the ones we signed
			// (and Ed25519 signatures are not malleable) may pass.
			if s := strings.TrimSpace(tok); s != valid && s != edValid {
				t.Fatalf("accepted a token we did not sign: %q", tok)
			}
			if _, err := v.Parse(&req); err != nil {
				t.Fatalf("Parse after Verify: %v", err)
			}
			return
		}
		wantErr(t, err, relay.ErrInvalidToken)
		noSecretIn(t, err, wpJWTSecret)
		if len(tok) > 8 {
			noSecretIn(t, err, tok)
		}
	})
}

func FuzzVerifyWordPress(f *testing.F) {
	f.Add(wpBody, uint(0), byte(1))
	f.Add(body1K, uint(5), byte(0x02))
	f.Add([]byte{}, uint(0), byte(0))
	v, keys := wpVerifier(f, Options{JWTSecret: wpJWTSecret})
	tok := hs256(f, wpClaims(testNow))
	f.Fuzz(func(t *testing.T, body []byte, pos uint, x byte) {
		r := wpRequest(t, tok, body)
		if err := v.Verify(r, keys); err != nil {
			t.Fatalf("original body: %v", err)
		}
		_, _ = v.Parse(r)
		r.Body = mutate(body, pos, x)
		wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
	})
}

func BenchmarkVerify_WordPress(b *testing.B) {
	for _, bc := range []struct {
		name  string
		opts  Options
		token func() string
	}{
		{"HS256", Options{JWTSecret: wpJWTSecret}, func() string { return hs256(b, wpClaims(testNow)) }},
		{"RS256", Options{PublicKey: rsaPEM(b)}, func() string { return mint(b, jwt.SigningMethodRS256, wpRSAKey(), wpClaims(testNow)) }},
		{"EdDSA", Options{PublicKey: edPEM(b)}, func() string { return mint(b, jwt.SigningMethodEdDSA, wpEdKey(), wpClaims(testNow)) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v, keys := wpVerifier(b, bc.opts)
			r := wpRequest(b, bc.token(), body1K)
			b.ReportAllocs()
			b.SetBytes(int64(len(body1K)))
			for b.Loop() {
				if err := v.Verify(r, keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A token whose header lists critical extensions (crit) is refused: this
// receiver understands none, and golang-jwt ignores crit.
func TestWordPress_Verify_RefusesCrit(t *testing.T) {
	v, keys := wpVerifier(t, Options{JWTSecret: wpJWTSecret})
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, wpClaims(testNow))
	tok.Header["crit"] = []string{"exp"}
	s, err := tok.SignedString([]byte(wpJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	err = v.Verify(wpRequest(t, s, wpBody), keys)
	wantErr(t, err, relay.ErrInvalidToken)
	if err == nil || !strings.Contains(err.Error(), "crit") {
		t.Errorf("err = %v, want it to name crit", err)
	}
}
