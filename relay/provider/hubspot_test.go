package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

const (
	hubspotSecret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy" // the client secret of HubSpot's examples
	hubspotURL    = "https://hooks.example.com/hooks/hubspot"
)

// HubSpot's documented example (developers.hubspot.com, "Validating
// requests"): the v1 example's body, client secret and (v2) URI. The docs
// give no v3 vector; hubspotDocV3 is the v3 signature of that request at
// hubspotDocTS (the example's occurredAt) as HubSpot's own PHP library
// computes it (hubspot-api-php, lib/Utils/Signature.php: base64_encode(
// hash_hmac('sha256', $method.$uri.$body.$timestamp, $secret, true))), run
// with PHP 8.2, and as `openssl dgst -sha256 -hmac ... -binary | base64`
// prints it. TestHubSpot_DocumentedBody checks the body against the v1
// hash the docs print.
const (
	hubspotDocBody = `[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]`
	hubspotDocV1   = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
	hubspotDocURI  = "https://www.example.com/webhook_uri"
	hubspotDocTS   = "1564113600000"
	hubspotDocV3   = "DxmVAjFNa2xfF3YgQjdZP6TNcok9k1oaH7UXombPtvw="
)

// signHubSpot returns an X-HubSpot-Signature-v3 for the request at t,
// computed independently of the code under test over uri as given.
func signHubSpot(method, uri string, body []byte, t time.Time, secret string) string {
	return b64MAC([]byte(secret), fmt.Sprintf("%s%s%s%d", method, uri, body, t.UnixMilli()))
}

func hubspotRequest(uri, sig string, ts string, body []byte, now time.Time) *Request {
	h := http.Header{}
	for k, v := range map[string]string{"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": ts, "Content-Type": "application/json"} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return &Request{Method: "POST", URL: uri, Header: h, Body: body, Now: now}
}

func signedHubSpot(uri string, body []byte, at time.Time, secret string) *Request {
	return hubspotRequest(uri, signHubSpot("POST", uri, body, at, secret), fmt.Sprint(at.UnixMilli()), body, at)
}

func TestHubSpot_DocumentedBody(t *testing.T) {
	sum := fmt.Sprintf("%x", sha256Sum([]byte(hubspotSecret+hubspotDocBody)))
	if sum != hubspotDocV1 {
		t.Fatalf("the example body's v1 hash is %s, the docs print %s", sum, hubspotDocV1)
	}
}

func TestHubSpot_Verify_AcceptsDocumentedExample(t *testing.T) {
	v := MustNew(t, Options{Kind: "hubspot", PublicURL: hubspotDocURI})
	keys := [][]byte{MustKey(t, v, hubspotSecret)}
	at := time.UnixMilli(1564113600000)
	if got := signHubSpot("POST", hubspotDocURI, []byte(hubspotDocBody), at, hubspotSecret); got != hubspotDocV3 {
		t.Fatalf("test helper signs %s, want %s", got, hubspotDocV3)
	}
	r := hubspotRequest(hubspotDocURI, hubspotDocV3, hubspotDocTS, []byte(hubspotDocBody), at.Add(4*time.Minute))
	wantErr(t, v.Verify(r, keys), nil)
	r.URL = "" // the verifier's public_url
	wantErr(t, v.Verify(r, keys), nil)
	r.Now = at.Add(5*time.Minute + time.Millisecond)
	wantErr(t, v.Verify(r, keys), relay.ErrStaleTimestamp)
	r.Now = at.Add(-5*time.Minute - time.Millisecond)
	wantErr(t, v.Verify(r, keys), relay.ErrStaleTimestamp)
	for _, m := range mutations([]byte(hubspotDocBody)) {
		wantErr(t, v.Verify(hubspotRequest(hubspotDocURI, hubspotDocV3, hubspotDocTS, m, at), keys), relay.ErrBadSignature)
	}
}

func TestHubSpot_Verify_MatchesPHPLibrary(t *testing.T) {
	// hubspot-api-php's Signature::getHashedSignature('v3', ...) expression.
	uri := hubspotURL + "?portal=62515"
	ts := fmt.Sprint(testNow.UnixMilli())
	sig := runPHP(t, `echo base64_encode(hash_hmac('sha256', $argv[1].$argv[2].$argv[3].$argv[4], $argv[5], true));`,
		"POST", uri, hubspotDocBody, ts, hubspotSecret)
	v := MustNew(t, Options{Kind: "hubspot", PublicURL: hubspotURL})
	wantErr(t, v.Verify(hubspotRequest(uri, sig, ts, []byte(hubspotDocBody), testNow), [][]byte{MustKey(t, v, hubspotSecret)}), nil)
}

func TestHubSpot_Verify_RejectsWhatIsNotSigned(t *testing.T) {
	v := MustNew(t, Options{Kind: "hubspot", PublicURL: hubspotURL})
	keys := [][]byte{MustKey(t, v, hubspotSecret)}
	body := []byte(hubspotDocBody)
	good := signedHubSpot(hubspotURL, body, testNow, hubspotSecret)
	wantErr(t, v.Verify(good, keys), nil)
	for name, r := range map[string]*Request{
		"other URL":       signedHubSpot("https://evil.example.com/hooks/hubspot", body, testNow, hubspotSecret),
		"other method":    hubspotRequest(hubspotURL, signHubSpot("PUT", hubspotURL, body, testNow, hubspotSecret), fmt.Sprint(testNow.UnixMilli()), body, testNow),
		"other timestamp": hubspotRequest(hubspotURL, good.Header.Get("X-HubSpot-Signature-v3"), fmt.Sprint(testNow.UnixMilli()+1), body, testNow),
		"other secret":    signedHubSpot(hubspotURL, body, testNow, "zzz"),
		"no signature":    hubspotRequest(hubspotURL, "", fmt.Sprint(testNow.UnixMilli()), body, testNow),
		"no timestamp":    hubspotRequest(hubspotURL, good.Header.Get("X-HubSpot-Signature-v3"), "", body, testNow),
		"seconds":         hubspotRequest(hubspotURL, good.Header.Get("X-HubSpot-Signature-v3"), fmt.Sprint(testNow.Unix()), body, testNow),
		"hex signature":   hubspotRequest(hubspotURL, hexMAC([]byte(hubspotSecret), "x"), fmt.Sprint(testNow.UnixMilli()), body, testNow),
	} {
		t.Run(name, func(t *testing.T) {
			r.URL = hubspotURL
			err := v.Verify(r, keys)
			wantErr(t, err, relay.ErrBadSignature)
			noSecretIn(t, err, hubspotSecret)
		})
	}
}

// HubSpot decodes a fixed set of percent-escapes in the URI before signing
// (developers.hubspot.com, "Validating requests", v3: ":" "/" "?" "@" "!"
// "$" "'" "(" ")" "*" "," ";"), and no others.
func TestHubSpot_Verify_DecodesTheDocumentedEscapes(t *testing.T) {
	v := MustNew(t, Options{Kind: "hubspot", PublicURL: hubspotURL})
	keys := [][]byte{MustKey(t, v, hubspotSecret)}
	body := []byte(hubspotDocBody)
	raw := hubspotURL + "?filter=a%3Ab%2cc%40d&q=%21%24%27%28%29%2A%3B%2F%3f&space=%20&plus=%2B"
	signedAs := hubspotURL + "?filter=a:b,c@d&q=!$'()*;/?&space=%20&plus=%2B"
	r := hubspotRequest(raw, signHubSpot("POST", signedAs, body, testNow, hubspotSecret), fmt.Sprint(testNow.UnixMilli()), body, testNow)
	wantErr(t, v.Verify(r, keys), nil)
	r.Header.Set("X-HubSpot-Signature-v3", signHubSpot("POST", raw, body, testNow, hubspotSecret))
	wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
	if got := hubspotURI("%3a%3A%2"); got != "::%2" {
		t.Fatalf("hubspotURI of a truncated escape = %q", got)
	}
}

func TestHubSpot_New_RequiresPublicURL(t *testing.T) {
	for _, u := range []string{"", "/hooks/hubspot", "hooks.example.com/hooks/hubspot", "ftp://x/y", "https://"} {
		if _, err := New(Options{Kind: "hubspot", PublicURL: u}); err == nil || !strings.Contains(err.Error(), "public_url") {
			t.Errorf("public_url %q: err = %v, want one naming public_url", u, err)
		}
	}
}

func TestHubSpot_Parse(t *testing.T) {
	v := MustNew(t, Options{Kind: "hubspot", PublicURL: hubspotURL})
	body := `[
 {"eventId":100,"subscriptionId":7,"portalId":62515,"occurredAt":1795859985123,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM_UI","sourceId":"userId:45678"},
 {"attemptNumber":2,"eventId":101,"subscriptionId":8,"portalId":62515,"occurredAt":1795859990000,"subscriptionType":"object.propertyChange","objectTypeId":"0-3","objectId":9,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"API"},
 {"eventId":"102","subscriptionType":"object.creation","objectTypeId":"2-999","objectId":"55","attemptNumber":0},
 {"eventId":103,"subscriptionId":9,"portalId":1,"subscriptionType":"conversation.newMessage","objectId":4455,"messageId":"m1"},
 {}
]`
	p, err := v.Parse(&Request{Body: []byte(body)})
	wantErr(t, err, nil)
	wantItems(t, p,
		Item{ID: "62515:7:100", Type: "contact.creation", OccurredAt: time.UnixMilli(1795859985123).UTC(),
			Body:   []byte(`{"eventId":100,"subscriptionId":7,"portalId":62515,"occurredAt":1795859985123,"subscriptionType":"contact.creation","objectId":123,"changeSource":"CRM_UI","sourceId":"userId:45678"}`),
			Normal: relay.Normal{Actor: relay.Actor{ID: "45678"}, Subject: relay.Subject{ID: "123", Type: "contact"}, Action: relay.Action{Type: "creation", Reason: "CRM_UI"}}},
		Item{ID: "62515:8:101", Type: "object.propertyChange", OccurredAt: time.UnixMilli(1795859990000).UTC(),
			Body:   []byte(`{"eventId":101,"subscriptionId":8,"portalId":62515,"occurredAt":1795859990000,"subscriptionType":"object.propertyChange","objectTypeId":"0-3","objectId":9,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"API"}`),
			Normal: relay.Normal{Subject: relay.Subject{ID: "9", Type: "deal"}, Action: relay.Action{Type: "propertyChange", Reason: "API"}}},
		Item{ID: "102", Type: "object.creation",
			Body:   []byte(`{"eventId":"102","subscriptionType":"object.creation","objectTypeId":"2-999","objectId":"55"}`),
			Normal: relay.Normal{Subject: relay.Subject{ID: "55", Type: "2-999"}, Action: relay.Action{Type: "creation"}}},
		Item{ID: "1:9:103", Type: "conversation.newMessage",
			Body:   []byte(`{"eventId":103,"subscriptionId":9,"portalId":1,"subscriptionType":"conversation.newMessage","objectId":4455,"messageId":"m1"}`),
			Normal: relay.Normal{Subject: relay.Subject{ID: "4455", Type: "conversation"}, Action: relay.Action{Type: "newMessage"}}},
		Item{Body: []byte(`{}`)},
	)
}

func TestHubSpot_Parse_RejectsWhatIsNotABatch(t *testing.T) {
	v := MustNew(t, Options{Kind: "hubspot", PublicURL: hubspotURL})
	for body, want := range map[string]error{
		`{"eventId":1}`:    relay.ErrInvalidJSON,
		`[{"eventId":1}`:   relay.ErrInvalidJSON,
		`[{"eventId":1}]x`: relay.ErrInvalidJSON,
		``:                 relay.ErrInvalidJSON,
		`[1,2]`:            relay.ErrInvalidEvent,
		`[{"a":1},null]`:   relay.ErrInvalidEvent,
	} {
		_, err := v.Parse(&Request{Body: []byte(body)})
		wantErr(t, err, want)
	}
	p, err := v.Parse(&Request{Body: []byte(" [ ] ")})
	wantErr(t, err, nil)
	if len(p.Items) != 0 {
		t.Fatalf("items = %+v, want none (the ingress answers 422)", p.Items)
	}
}

func TestWithoutMember(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":1,"attemptNumber":0,"b":2}`, `{"a":1,"b":2}`},
		{`{"attemptNumber":0,"b":2}`, `{"b":2}`},
		{`{"a":1,"attemptNumber":0}`, `{"a":1}`},
		{`{"attemptNumber":0}`, `{}`},
		{`{ "attemptNumber" : 0 , "b" : {"attemptNumber":1} }`, `{ "b" : {"attemptNumber":1} }`},
		{`{"attemptNumber":0,"attemptNumber":1,"c":3}`, `{"c":3}`},
		{`{"a":1,"attemptNumber":0,"attemptNumber":1}`, `{"a":1}`},
		{`{"a":"attemptNumber"}`, `{"a":"attemptNumber"}`},
		{`{"a\u0074temptNumber":5,"b":1}`, `{"b":1}`},
		{`[{"attemptNumber":0}]`, `[{"attemptNumber":0}]`},
		{`{"attemptNumber":`, `{"attemptNumber":`},
	} {
		if got := string(withoutMember([]byte(tc.in), "attemptNumber")); got != tc.want {
			t.Errorf("withoutMember(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzHubSpotBatch feeds arbitrary bodies to Parse: it never panics, never
// returns an item whose body is not a JSON object without attemptNumber,
// and a batch it accepts holds as many items as the array has elements.
func FuzzHubSpotBatch(f *testing.F) {
	f.Add([]byte(hubspotDocBody))
	f.Add([]byte(`[{"attemptNumber":1,"eventId":1},{"eventId":2,"attemptNumber":0}]`))
	f.Add([]byte(`[{"attemptNumber":0,"attemptNumber":1}]`))
	f.Add([]byte(`[{"eventId":1e400,"occurredAt":-1,"objectId":{"x":[1]}}]`))
	f.Add([]byte(`[[],{}]`))
	f.Add([]byte(` [ { } ] `))
	v := MustNew(f, Options{Kind: "hubspot", PublicURL: hubspotURL})
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := v.Parse(&Request{Body: body})
		if err != nil {
			return
		}
		var elems []json.RawMessage
		if json.Unmarshal(body, &elems) != nil || len(elems) != len(p.Items) {
			t.Fatalf("accepted %q as %d items", body, len(p.Items))
		}
		for i, it := range p.Items {
			var got, want map[string]json.RawMessage
			if json.Unmarshal(it.Body, &got) != nil {
				t.Fatalf("item body %q is not a JSON object", it.Body)
			}
			if _, ok := got["attemptNumber"]; ok {
				t.Fatalf("item body %q keeps attemptNumber", it.Body)
			}
			// Every other member is kept, byte for byte.
			_ = json.Unmarshal(elems[i], &want)
			delete(want, "attemptNumber")
			if len(got) != len(want) {
				t.Fatalf("element %s became %s", elems[i], it.Body)
			}
			for k, v := range want {
				if !bytes.Equal(got[k], v) {
					t.Fatalf("element %s became %s", elems[i], it.Body)
				}
			}
		}
	})
}

func FuzzVerifyHubSpot(f *testing.F) {
	f.Add([]byte(hubspotDocBody), "?a=b", uint(0), byte(1))
	f.Add(body1K, "", uint(100), byte(0x10))
	f.Add([]byte{}, "?x=%3A%2f", uint(0), byte(0))
	v := MustNew(f, Options{Kind: "hubspot", PublicURL: hubspotURL})
	keys := [][]byte{MustKey(f, v, hubspotSecret)}
	f.Fuzz(func(t *testing.T, body []byte, query string, pos uint, x byte) {
		uri := hubspotURL + query
		r := hubspotRequest(uri, signHubSpot("POST", hubspotURI(uri), body, testNow, hubspotSecret), fmt.Sprint(testNow.UnixMilli()), body, testNow)
		if err := v.Verify(r, keys); err != nil {
			t.Fatalf("original body: %v", err)
		}
		_, _ = v.Parse(r) // must not panic
		r.Body = mutate(body, pos, x)
		wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
	})
}

func BenchmarkVerify_HubSpot(b *testing.B) {
	v := MustNew(b, Options{Kind: "hubspot", PublicURL: hubspotURL})
	keys := [][]byte{MustKey(b, v, hubspotSecret)}
	r := signedHubSpot(hubspotURL, body1K, testNow, hubspotSecret)
	b.ReportAllocs()
	b.SetBytes(int64(len(body1K)))
	for b.Loop() {
		if err := v.Verify(r, keys); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse_HubSpotBatch parses a batch of 100 events (HubSpot sends
// up to 100 per request).
func BenchmarkParse_HubSpotBatch(b *testing.B) {
	v := MustNew(b, Options{Kind: "hubspot", PublicURL: hubspotURL})
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range 100 {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"eventId":%d,"subscriptionId":2881778,"portalId":62515,"appId":1160452,"occurredAt":1795859985123,"subscriptionType":"contact.creation","attemptNumber":%d,"objectId":%d,"changeFlag":"CREATED","changeSource":"CRM_UI","sourceId":"userId:45678"}`, 1796433012+i, i%2, 65059681032+i)
	}
	buf.WriteByte(']')
	r := &Request{Body: buf.Bytes()}
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if p, err := v.Parse(r); err != nil || len(p.Items) != 100 {
			b.Fatal(err)
		}
	}
}
