package provider

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

const hmacSecret = "generic-secret-42"

var hmacBody = []byte(`{"event":{"id":"ev_9","kind":"order.paid","seq":12345678901234567890},"items":[{"sku":"a"},{"sku":"b"}]}`)

// hmacCase is one configuration of the hmac kind with the signed string it
// implies, built by hand (not by the code under test).
type hmacCase struct {
	name   string
	opts   HMACOptions
	header http.Header // extra headers (timestamp, nonce, id)
	signed string
	sig    func(key []byte, msg string) string // header value
}

func hmacCases() []hmacCase {
	ts := fmt.Sprint(testNow.Unix())
	tsMS := fmt.Sprint(testNow.UnixMilli())
	hx := func(k []byte, m string) string { return hexMAC(k, m) }
	b64 := func(k []byte, m string) string { return b64MAC(k, m) }
	return []hmacCase{
		{"body hex default", HMACOptions{Header: "X-Signature"}, nil, string(hmacBody), hx},
		{"body hex prefix", HMACOptions{Header: "X-Signature", Prefix: "sha256=", Encoding: "hex"}, nil, string(hmacBody),
			func(k []byte, m string) string { return "sha256=" + hexMAC(k, m) }},
		{"body base64", HMACOptions{Header: "X-Shopify-Hmac-Sha256", Encoding: "base64"}, nil, string(hmacBody), b64},
		{"body base64 unpadded", HMACOptions{Header: "X-Sig", Encoding: "base64"}, nil, string(hmacBody),
			func(k []byte, m string) string { return strings.TrimRight(b64MAC(k, m), "=") }},
		{"timestamp.body", HMACOptions{Header: "X-Sig", Template: "{timestamp}.{body}", TimestampHeader: "X-Timestamp"},
			http.Header{"X-Timestamp": {ts}}, ts + "." + string(hmacBody), hx},
		{"timestamp ms", HMACOptions{Header: "X-Sig", Template: "{timestamp}.{body}", TimestampHeader: "X-Timestamp"},
			http.Header{"X-Timestamp": {tsMS}}, tsMS + "." + string(hmacBody), hx},
		{"timestamp.nonce.body base64", HMACOptions{Header: "X-Sig", Encoding: "base64", Template: "{timestamp}.{nonce}.{body}",
			TimestampHeader: "X-Timestamp", NonceHeader: "X-Nonce"},
			http.Header{"X-Timestamp": {ts}, "X-Nonce": {"n-1"}}, ts + ".n-1." + string(hmacBody), b64},
		{"slack style", HMACOptions{Header: "X-Slack-Signature", Prefix: "v0=", Template: "v0:{timestamp}:{body}",
			TimestampHeader: "X-Slack-Request-Timestamp"},
			http.Header{"X-Slack-Request-Timestamp": {ts}}, "v0:" + ts + ":" + string(hmacBody),
			func(k []byte, m string) string { return "v0=" + hexMAC(k, m) }},
		{"literal braces kept", HMACOptions{Header: "X-Sig", Template: "{ {body} }"}, nil, "{ " + string(hmacBody) + " }", hx},
		{"lower-case header option", HMACOptions{Header: "x-sig"}, nil, string(hmacBody), hx},
	}
}

func hmacRequest(tc hmacCase, sig string, body []byte) *Request {
	h := http.Header{}
	for k, v := range tc.header {
		h[http.CanonicalHeaderKey(k)] = v
	}
	if sig != "" {
		h.Set(tc.opts.Header, sig)
	}
	return &Request{Method: "POST", Header: h, Body: body, Now: testNow}
}

func TestHMAC_Verify_Templates(t *testing.T) {
	for _, tc := range hmacCases() {
		t.Run(tc.name, func(t *testing.T) {
			v := MustNew(t, Options{Kind: "hmac", HMAC: tc.opts})
			key := MustKey(t, v, hmacSecret)
			sig := tc.sig(key, tc.signed)
			wantErr(t, v.Verify(hmacRequest(tc, sig, hmacBody), [][]byte{[]byte("other"), key}), nil)
			wantErr(t, v.Verify(hmacRequest(tc, tc.sig([]byte("other"), tc.signed), hmacBody), [][]byte{key}), relay.ErrBadSignature)
		})
	}
}

func TestHMAC_Verify_RejectsTamperedBody(t *testing.T) {
	for _, tc := range hmacCases() {
		t.Run(tc.name, func(t *testing.T) {
			v := MustNew(t, Options{Kind: "hmac", HMAC: tc.opts})
			key := MustKey(t, v, hmacSecret)
			sig := tc.sig(key, tc.signed)
			for _, m := range mutations(hmacBody) {
				wantErr(t, v.Verify(hmacRequest(tc, sig, m), [][]byte{key}), relay.ErrBadSignature)
			}
		})
	}
}

func TestHMAC_Verify_RejectsTamperedTimestampAndNonce(t *testing.T) {
	tc := hmacCases()[6] // timestamp.nonce.body
	v := MustNew(t, Options{Kind: "hmac", HMAC: tc.opts})
	key := MustKey(t, v, hmacSecret)
	sig := tc.sig(key, tc.signed)
	for name, edit := range map[string]func(http.Header){
		"timestamp":         func(h http.Header) { h.Set("X-Timestamp", fmt.Sprint(testNow.Unix()-1)) },
		"nonce":             func(h http.Header) { h.Set("X-Nonce", "n-2") },
		"missing timestamp": func(h http.Header) { h.Del("X-Timestamp") },
		"missing nonce":     func(h http.Header) { h.Del("X-Nonce") },
		"timestamp not int": func(h http.Header) { h.Set("X-Timestamp", "soon") },
	} {
		t.Run(name, func(t *testing.T) {
			r := hmacRequest(tc, sig, hmacBody)
			edit(r.Header)
			err := v.Verify(r, [][]byte{key})
			wantErr(t, err, relay.ErrBadSignature)
			noSecretIn(t, err, hmacSecret, sig)
		})
	}
}

func TestHMAC_Verify_RejectsStaleTimestamp(t *testing.T) {
	opts := HMACOptions{Header: "X-Sig", Template: "{timestamp}.{body}", TimestampHeader: "X-Timestamp"}
	v := MustNew(t, Options{Kind: "hmac", HMAC: opts, Tolerance: time.Minute})
	key := MustKey(t, v, hmacSecret)
	for _, tc := range []struct {
		name string
		ts   string
		want error
	}{
		{"seconds inside", fmt.Sprint(testNow.Add(-59 * time.Second).Unix()), nil},
		{"seconds old", fmt.Sprint(testNow.Add(-61 * time.Second).Unix()), relay.ErrStaleTimestamp},
		{"seconds future", fmt.Sprint(testNow.Add(61 * time.Second).Unix()), relay.ErrStaleTimestamp},
		{"millis inside", fmt.Sprint(testNow.Add(59 * time.Second).UnixMilli()), nil},
		{"millis old", fmt.Sprint(testNow.Add(-61 * time.Second).UnixMilli()), relay.ErrStaleTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Request{Header: http.Header{"X-Timestamp": {tc.ts}}, Body: hmacBody, Now: testNow}
			r.Header.Set("X-Sig", hexMAC(key, tc.ts+"."+string(hmacBody)))
			wantErr(t, v.Verify(r, [][]byte{key}), tc.want)
		})
	}
}

func TestHMAC_Verify_UnsignedTimestampStillChecked(t *testing.T) {
	opts := HMACOptions{Header: "X-Sig", TimestampHeader: "X-Timestamp"} // template {body}
	v := MustNew(t, Options{Kind: "hmac", HMAC: opts})
	key := MustKey(t, v, hmacSecret)
	r := &Request{Header: http.Header{"X-Timestamp": {"1000"}, "X-Sig": {hexMAC(key, string(hmacBody))}}, Body: hmacBody, Now: testNow}
	wantErr(t, v.Verify(r, [][]byte{key}), relay.ErrStaleTimestamp)
}

func TestHMAC_Verify_RejectsGarbledHeader(t *testing.T) {
	opts := HMACOptions{Header: "X-Sig", Prefix: "sha256="}
	v := MustNew(t, Options{Kind: "hmac", HMAC: opts})
	key := MustKey(t, v, hmacSecret)
	good := hexMAC(key, string(hmacBody))
	for name, h := range map[string]string{
		"missing":      "",
		"no prefix":    good,
		"other prefix": "sha1=" + good,
		"short":        "sha256=" + good[:60],
		"base64":       "sha256=" + b64MAC(key, string(hmacBody)),
	} {
		t.Run(name, func(t *testing.T) {
			r := &Request{Header: http.Header{}, Body: hmacBody, Now: testNow}
			if h != "" {
				r.Header.Set("X-Sig", h)
			}
			err := v.Verify(r, [][]byte{key})
			wantErr(t, err, relay.ErrBadSignature)
			noSecretIn(t, err, hmacSecret, good)
		})
	}
}

func TestHMAC_New_ValidatesOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   HMACOptions
		option string // the error must name it
	}{
		{"missing header", HMACOptions{}, "hmac.header"},
		{"bad header name", HMACOptions{Header: "X Sig"}, "hmac.header"},
		{"unknown encoding", HMACOptions{Header: "X-Sig", Encoding: "base32"}, "hmac.encoding"},
		{"timestamp without header", HMACOptions{Header: "X-Sig", Template: "{timestamp}.{body}"}, "hmac.timestamp_header"},
		{"nonce without header", HMACOptions{Header: "X-Sig", Template: "{nonce}.{body}"}, "hmac.nonce_header"},
		{"unknown placeholder", HMACOptions{Header: "X-Sig", Template: "{ts}.{body}"}, "{ts}"},
		{"no body", HMACOptions{Header: "X-Sig", Template: "{timestamp}", TimestampHeader: "X-T"}, "{body}"},
		{"id header and path", HMACOptions{Header: "X-Sig", IDHeader: "X-Id", IDPath: "id"}, "hmac.id_path"},
		{"empty id path segment", HMACOptions{Header: "X-Sig", IDPath: "event..id"}, "hmac.id_path"},
		{"empty type path segment", HMACOptions{Header: "X-Sig", TypePath: ".type"}, "hmac.type_path"},
		{"bad timestamp header", HMACOptions{Header: "X-Sig", TimestampHeader: "X:T"}, "hmac.timestamp_header"},
		{"bad id header", HMACOptions{Header: "X-Sig", IDHeader: "X\nId"}, "hmac.id_header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Kind: "hmac", HMAC: tc.opts})
			if err == nil || !strings.Contains(err.Error(), tc.option) {
				t.Fatalf("err = %v, want an error naming %s", err, tc.option)
			}
		})
	}
}

func TestHMAC_Key_IsTheLiteralSecret(t *testing.T) {
	v := MustNew(t, Options{Kind: "hmac", HMAC: HMACOptions{Header: "X-Sig"}})
	if k := MustKey(t, v, "whsec_abc"); string(k) != "whsec_abc" {
		t.Fatalf("Key = %q", k)
	}
	if _, err := v.Key(""); err == nil {
		t.Fatal("Key(\"\") = nil error, want one")
	}
}

func TestHMAC_Parse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     HMACOptions
		header   http.Header
		body     string
		id, typ  string
		occurred time.Time
		want     error
	}{
		{"nothing configured", HMACOptions{}, nil, string(hmacBody), "", "", time.Time{}, nil},
		{"id header", HMACOptions{IDHeader: "X-Event-Id"}, http.Header{"X-Event-Id": {"h-1"}}, string(hmacBody), "h-1", "", time.Time{}, nil},
		{"id header absent", HMACOptions{IDHeader: "X-Event-Id"}, nil, string(hmacBody), "", "", time.Time{}, nil},
		{"id and type paths", HMACOptions{IDPath: "event.id", TypePath: "event.kind"}, nil, string(hmacBody), "ev_9", "order.paid", time.Time{}, nil},
		{"numeric id keeps its digits", HMACOptions{IDPath: "event.seq"}, nil, string(hmacBody), "12345678901234567890", "", time.Time{}, nil},
		{"array index", HMACOptions{IDPath: "items.1.sku"}, nil, string(hmacBody), "b", "", time.Time{}, nil},
		{"index out of range", HMACOptions{IDPath: "items.2.sku"}, nil, string(hmacBody), "", "", time.Time{}, nil},
		{"missing path", HMACOptions{IDPath: "event.nope", TypePath: "nope"}, nil, string(hmacBody), "", "", time.Time{}, nil},
		{"path into object", HMACOptions{TypePath: "event"}, nil, string(hmacBody), "", "", time.Time{}, nil},
		{"path through string", HMACOptions{TypePath: "event.kind.x"}, nil, string(hmacBody), "", "", time.Time{}, nil},
		{"array body", HMACOptions{IDPath: "id"}, nil, `[{"id":"x"}]`, "", "", time.Time{}, nil},
		{"timestamp header", HMACOptions{TimestampHeader: "X-Ts"}, http.Header{"X-Ts": {fmt.Sprint(testNow.UnixMilli())}}, `{}`, "", "", testNow, nil},
		{"not json", HMACOptions{}, nil, `a=b`, "", "", time.Time{}, relay.ErrInvalidJSON},
		{"empty", HMACOptions{}, nil, ``, "", "", time.Time{}, relay.ErrInvalidJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Header = "X-Sig"
			v := MustNew(t, Options{Kind: "hmac", HMAC: tc.opts})
			r := &Request{Header: http.Header{}, Body: []byte(tc.body), Now: testNow}
			for k, vals := range tc.header {
				r.Header[k] = vals
			}
			p, err := v.Parse(r)
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			it := p.Items[0]
			if it.ID != tc.id || it.Type != tc.typ || !it.OccurredAt.Equal(tc.occurred) || string(it.Body) != tc.body {
				t.Fatalf("item = %+v, want id %q type %q at %v", it, tc.id, tc.typ, tc.occurred)
			}
		})
	}
}

func FuzzVerifyHMAC(f *testing.F) {
	f.Add(hmacBody, uint(0), byte(1))
	f.Add(body1K, uint(2), byte(0x10))
	f.Add([]byte{}, uint(0), byte(0))
	opts := HMACOptions{Header: "X-Sig", Encoding: "base64", Template: "{timestamp}.{nonce}.{body}", TimestampHeader: "X-Ts", NonceHeader: "X-Nonce"}
	v := MustNew(f, Options{Kind: "hmac", HMAC: opts})
	key := MustKey(f, v, hmacSecret)
	ts := fmt.Sprint(testNow.Unix())
	req := func(sig string, body []byte) *Request {
		return &Request{Header: http.Header{"X-Sig": {sig}, "X-Ts": {ts}, "X-Nonce": {"n"}}, Body: body, Now: testNow}
	}
	f.Fuzz(func(t *testing.T, body []byte, pos uint, x byte) {
		sig := b64MAC(key, ts+".n."+string(body))
		if err := v.Verify(req(sig, body), [][]byte{key}); err != nil {
			t.Fatalf("original body: %v", err)
		}
		_, _ = v.Parse(req(sig, body))
		wantErr(t, v.Verify(req(sig, mutate(body, pos, x)), [][]byte{key}), relay.ErrBadSignature)
	})
}

func BenchmarkVerify_HMAC(b *testing.B) {
	opts := HMACOptions{Header: "X-Sig", Template: "{timestamp}.{body}", TimestampHeader: "X-Ts"}
	v := MustNew(b, Options{Kind: "hmac", HMAC: opts})
	key := MustKey(b, v, hmacSecret)
	ts := fmt.Sprint(testNow.Unix())
	r := &Request{Header: http.Header{"X-Sig": {hexMAC(key, ts+"."+string(body1K))}, "X-Ts": {ts}}, Body: body1K, Now: testNow}
	b.ReportAllocs()
	b.SetBytes(int64(len(body1K)))
	for b.Loop() {
		if err := v.Verify(r, [][]byte{key}); err != nil {
			b.Fatal(err)
		}
	}
}
