package provider

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wprelay/wprelay/relay"
)

const standardID = "msg_p5jXN8AQM9LWM0D4loKWxJek"

var (
	// standardSecret is the secret of the Standard Webhooks reference tests,
	// a published test vector kept in testdata.
	standardSecret = referenceSecret()
	// standardSecretNew is a second secret: the key bytes 0, 1, … 31.
	standardSecretNew = "whsec_" + base64.StdEncoding.EncodeToString(func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}())
)

func referenceSecret() string {
	b, err := os.ReadFile("../../testdata/standard/reference.json")
	if err != nil {
		panic(err)
	}
	var v struct{ Secret string }
	if err := json.Unmarshal(b, &v); err != nil || v.Secret == "" {
		panic(fmt.Sprintf("testdata/standard/reference.json: %v", err))
	}
	return v.Secret
}

var standardBody = []byte(`{"type":"contact.created","timestamp":"2026-11-28T09:59:58Z","data":{"id":"c_1"}}`)

// signStandard returns a webhook-signature value for (id, ts, body) with
// one v1 entry per secret, computed independently of the code under test.
func signStandard(tb testing.TB, id string, ts time.Time, body []byte, secrets ...string) string {
	tb.Helper()
	var sigs []string
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil {
			tb.Fatal(err)
		}
		sigs = append(sigs, "v1,"+b64MAC(key, fmt.Sprintf("%s.%d.%s", id, ts.Unix(), body)))
	}
	return strings.Join(sigs, " ")
}

// standardHeader returns Standard Webhooks headers under the given prefix
// ("webhook" or "svix").
func standardHeader(prefix, id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(prefix+"-id", id)
	h.Set(prefix+"-timestamp", fmt.Sprint(ts.Unix()))
	h.Set(prefix+"-signature", sig)
	return h
}

func standardRequest(h http.Header, body []byte, now time.Time) *Request {
	return &Request{Method: "POST", Header: h, Body: body, Now: now}
}

func standardKeys(tb testing.TB, v Verifier, secrets ...string) [][]byte {
	tb.Helper()
	var keys [][]byte
	for _, s := range secrets {
		keys = append(keys, MustKey(tb, v, s))
	}
	return keys
}

func TestStandard_Key(t *testing.T) {
	v := MustNew(t, Options{Kind: "standard"})
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	for _, tc := range []struct {
		name, secret string
		want         []byte
		ok           bool
	}{
		{"padded", standardSecretNew, raw, true},
		{"unpadded", strings.TrimRight(standardSecretNew, "="), raw, true},
		{"reference", standardSecret, mustB64(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), true},
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", nil, false},
		{"stripe style", "whsec_not*base64!", nil, false},
		{"empty key", "whsec_", nil, false},
		{"empty", "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := v.Key(tc.secret)
			if (err == nil) != tc.ok || tc.ok && string(k) != string(tc.want) {
				t.Fatalf("Key = %x, %v; want %x, ok=%v", k, err, tc.want, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "whsec_") {
				t.Fatalf("err = %v, want it to describe the expected form", err)
			}
			if body := strings.TrimPrefix(tc.secret, "whsec_"); len(body) > 4 {
				noSecretIn(t, err, body)
			}
		})
	}
}

func mustB64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestStandard_Verify_AcceptsLibrarySignature(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook(standardSecret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(standardID, testNow, standardBody)
	if err != nil {
		t.Fatal(err)
	}
	v := MustNew(t, Options{Kind: "standard"})
	r := standardRequest(standardHeader("webhook", standardID, testNow, sig), standardBody, testNow)
	wantErr(t, v.Verify(r, standardKeys(t, v, standardSecret)), nil)
}

func TestStandard_Verify_SignatureAcceptedByLibrary(t *testing.T) {
	now := time.Now() // the library checks against the wall clock
	v := MustNew(t, Options{Kind: "standard"})
	keys := standardKeys(t, v, standardSecret)
	h := standardHeader("webhook", standardID, now, signStandard(t, standardID, now, standardBody, standardSecret))
	wantErr(t, v.Verify(standardRequest(h, standardBody, now), keys), nil)
	wh, err := standardwebhooks.NewWebhook(standardSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(standardBody, h); err != nil {
		t.Fatalf("library Verify: %v", err)
	}
	other, _ := standardwebhooks.NewWebhook(standardSecretNew)
	if err := other.Verify(standardBody, h); err == nil {
		t.Fatal("library accepted a signature made with another secret")
	}
}

func TestStandard_Verify_AcceptsSvixHeaders(t *testing.T) {
	v := MustNew(t, Options{Kind: "standard"})
	sig := signStandard(t, standardID, testNow, standardBody, standardSecret)
	r := standardRequest(standardHeader("svix", standardID, testNow, sig), standardBody, testNow)
	wantErr(t, v.Verify(r, standardKeys(t, v, standardSecret)), nil)
	p, err := v.Parse(r)
	wantErr(t, err, nil)
	if p.Items[0].ID != standardID {
		t.Fatalf("ID = %q, want the svix-id", p.Items[0].ID)
	}
}

func TestStandard_Verify_AcceptsAnyListedSignature(t *testing.T) {
	v := MustNew(t, Options{Kind: "standard"})
	keys := standardKeys(t, v, standardSecret)
	good := signStandard(t, standardID, testNow, standardBody, standardSecret)
	other := signStandard(t, standardID, testNow, standardBody, standardSecretNew)
	b64 := strings.TrimPrefix(good, "v1,")
	for name, sig := range map[string]string{
		"second of two":        other + " " + good,
		"first of two":         good + " " + other,
		"after other versions": "v1a,abc v2," + b64 + " " + good,
		"after garbage":        "v1,!!!! v1, " + good,
		"double space":         other + "  " + good,
		"unpadded":             strings.TrimRight(good, "="),
	} {
		t.Run(name, func(t *testing.T) {
			r := standardRequest(standardHeader("webhook", standardID, testNow, sig), standardBody, testNow)
			wantErr(t, v.Verify(r, keys), nil)
		})
	}
}

func TestStandard_Verify_AcceptsRotatedKeys(t *testing.T) {
	v := MustNew(t, Options{Kind: "standard"})
	keys := standardKeys(t, v, standardSecret, standardSecretNew)
	for _, s := range []string{standardSecret, standardSecretNew} {
		sig := signStandard(t, standardID, testNow, standardBody, s)
		wantErr(t, v.Verify(standardRequest(standardHeader("webhook", standardID, testNow, sig), standardBody, testNow), keys), nil)
	}
	sig := signStandard(t, standardID, testNow, standardBody, standardSecret)
	wantErr(t, v.Verify(standardRequest(standardHeader("webhook", standardID, testNow, sig), standardBody, testNow), keys[1:]), relay.ErrBadSignature)
}

func TestStandard_Verify_RejectsStaleTimestamp(t *testing.T) {
	v := MustNew(t, Options{Kind: "standard", Tolerance: time.Minute})
	keys := standardKeys(t, v, standardSecret)
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"inside", testNow.Add(-time.Minute), nil},
		{"too old", testNow.Add(-time.Minute - time.Second), relay.ErrStaleTimestamp},
		{"too new", testNow.Add(time.Minute + time.Second), relay.ErrStaleTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := signStandard(t, standardID, tc.at, standardBody, standardSecret)
			r := standardRequest(standardHeader("webhook", standardID, tc.at, sig), standardBody, testNow)
			wantErr(t, v.Verify(r, keys), tc.want)
		})
	}
}

func TestStandard_Verify_RejectsTamperedBody(t *testing.T) {
	v := MustNew(t, Options{Kind: "standard"})
	keys := standardKeys(t, v, standardSecret)
	h := standardHeader("webhook", standardID, testNow, signStandard(t, standardID, testNow, standardBody, standardSecret))
	for _, m := range mutations(standardBody) {
		wantErr(t, v.Verify(standardRequest(h, m, testNow), keys), relay.ErrBadSignature)
	}
}

func TestStandard_Verify_RejectsTamperedHeaders(t *testing.T) {
	v := MustNew(t, Options{Kind: "standard"})
	keys := standardKeys(t, v, standardSecret)
	sig := signStandard(t, standardID, testNow, standardBody, standardSecret)
	for name, edit := range map[string]func(http.Header){
		"id":                func(h http.Header) { h.Set("webhook-id", standardID+"x") },
		"timestamp":         func(h http.Header) { h.Set("webhook-timestamp", fmt.Sprint(testNow.Unix()+1)) },
		"missing id":        func(h http.Header) { h.Del("webhook-id") },
		"missing timestamp": func(h http.Header) { h.Del("webhook-timestamp") },
		"missing signature": func(h http.Header) { h.Del("webhook-signature") },
		"timestamp not int": func(h http.Header) { h.Set("webhook-timestamp", "1.5") },
		"only v2":           func(h http.Header) { h.Set("webhook-signature", strings.Replace(sig, "v1,", "v2,", 1)) },
		"v1 without comma":  func(h http.Header) { h.Set("webhook-signature", strings.Replace(sig, "v1,", "v1", 1)) },
		"hex not base64":    func(h http.Header) { h.Set("webhook-signature", "v1,"+strings.Repeat("ab", 32)) },
		"empty signature":   func(h http.Header) { h.Set("webhook-signature", "v1,") },
		"svix sig, other id": func(h http.Header) {
			h.Del("webhook-signature")
			h.Set("svix-signature", signStandard(t, "other", testNow, standardBody, standardSecret))
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := standardHeader("webhook", standardID, testNow, sig)
			edit(h)
			err := v.Verify(standardRequest(h, standardBody, testNow), keys)
			wantErr(t, err, relay.ErrBadSignature)
			noSecretIn(t, err, strings.TrimPrefix(standardSecret, "whsec_"), strings.TrimPrefix(sig, "v1,"))
		})
	}
}

func TestStandard_Parse(t *testing.T) {
	v := MustNew(t, Options{Kind: "standard"})
	for _, tc := range []struct {
		name, body string
		typ        string
		occurred   time.Time
		want       error
	}{
		{"body timestamp", string(standardBody), "contact.created", time.Date(2026, 11, 28, 9, 59, 58, 0, time.UTC), nil},
		{"offset timestamp", `{"type":"a.b","timestamp":"2026-11-28T11:00:00+01:00"}`, "a.b", testNow, nil},
		{"no body timestamp", `{"type":"a.b"}`, "a.b", testNow.Add(-time.Minute), nil},
		{"bad body timestamp", `{"type":"a.b","timestamp":"yesterday"}`, "a.b", testNow.Add(-time.Minute), nil},
		{"numeric body timestamp", `{"type":"a.b","timestamp":1}`, "a.b", testNow.Add(-time.Minute), nil},
		{"no type", `{}`, "", testNow.Add(-time.Minute), nil},
		{"type not a string", `{"type":["a"]}`, "", time.Time{}, relay.ErrInvalidEvent},
		{"not json", `<xml/>`, "", time.Time{}, relay.ErrInvalidJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := standardHeader("webhook", standardID, testNow.Add(-time.Minute), "v1,x")
			p, err := v.Parse(standardRequest(h, []byte(tc.body), testNow))
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			it := p.Items[0]
			if it.ID != standardID || it.Type != tc.typ || !it.OccurredAt.Equal(tc.occurred) || string(it.Body) != tc.body {
				t.Fatalf("item = %+v", it)
			}
		})
	}
}

func FuzzStandardHeader(f *testing.F) {
	ts := fmt.Sprint(testNow.Unix())
	good := signStandard(f, standardID, testNow, standardBody, standardSecret)
	f.Add(standardID, ts, good)
	f.Add(standardID, ts, "v1,abc "+good+" v2,xyz")
	f.Add(standardID, ts, strings.TrimRight(good, "="))
	f.Add("", "", "")
	f.Add("a.b", "1.2", "v1,,v1")
	f.Add(standardID, "99999999999999999999", good)
	v := MustNew(f, Options{Kind: "standard"})
	keys := standardKeys(f, v, standardSecret)
	key := keys[0]
	f.Fuzz(func(t *testing.T, id, tsv, sig string) {
		h := http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {tsv}, "Webhook-Signature": {sig}}
		err := v.Verify(standardRequest(h, standardBody, testNow), keys)
		if err == nil {
			// Only a list carrying the signature of this very
			// (id, timestamp, body) may verify.
			want := b64MAC(key, id+"."+tsv+"."+string(standardBody))
			if !strings.Contains(sig, "v1,"+strings.TrimRight(want, "=")) {
				t.Fatalf("accepted %q %q %q", id, tsv, sig)
			}
			return
		}
		if !strings.Contains(err.Error(), relay.ErrBadSignature.Error()) && !strings.Contains(err.Error(), relay.ErrStaleTimestamp.Error()) {
			t.Fatalf("err = %v", err)
		}
	})
}

func FuzzVerifyStandard(f *testing.F) {
	f.Add(standardBody, uint(0), byte(1))
	f.Add(body1K, uint(100), byte(0x40))
	f.Add([]byte{}, uint(0), byte(0))
	v := MustNew(f, Options{Kind: "standard"})
	keys := standardKeys(f, v, standardSecret)
	f.Fuzz(func(t *testing.T, body []byte, pos uint, x byte) {
		h := standardHeader("webhook", standardID, testNow, signStandard(t, standardID, testNow, body, standardSecret))
		if err := v.Verify(standardRequest(h, body, testNow), keys); err != nil {
			t.Fatalf("original body: %v", err)
		}
		_, _ = v.Parse(standardRequest(h, body, testNow))
		wantErr(t, v.Verify(standardRequest(h, mutate(body, pos, x), testNow), keys), relay.ErrBadSignature)
	})
}

func BenchmarkVerify_Standard(b *testing.B) {
	v := MustNew(b, Options{Kind: "standard"})
	keys := standardKeys(b, v, standardSecret)
	h := standardHeader("webhook", standardID, testNow, signStandard(b, standardID, testNow, body1K, standardSecret))
	r := standardRequest(h, body1K, testNow)
	b.ReportAllocs()
	b.SetBytes(int64(len(body1K)))
	for b.Loop() {
		if err := v.Verify(r, keys); err != nil {
			b.Fatal(err)
		}
	}
}
