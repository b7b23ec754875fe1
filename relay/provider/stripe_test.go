package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/wprelay/wprelay/relay"
)

const (
	stripeSecret    = "whsec_test_0123456789abcdef"
	stripeSecretOld = "whsec_test_old_fedcba9876543210"
)

var stripeBody = []byte(`{"id":"evt_1Nq","object":"event","api_version":"2025-01-27.acacia","created":1764324000,"type":"invoice.created","data":{"object":{"id":"in_1"}}}`)

// signStripe returns a Stripe-Signature value for body at t with one v1
// entry per secret, computed independently of the code under test.
func signStripe(t time.Time, body []byte, secrets ...string) string {
	ts := fmt.Sprint(t.Unix())
	h := "t=" + ts
	for _, s := range secrets {
		h += ",v1=" + hexMAC([]byte(s), ts+"."+string(body))
	}
	return h
}

func stripeRequest(sig string, body []byte, now time.Time) *Request {
	h := http.Header{}
	if sig != "" {
		h.Set("Stripe-Signature", sig)
	}
	return &Request{Method: "POST", Header: h, Body: body, Now: now}
}

func stripeKeys(tb testing.TB, v Verifier, secrets ...string) [][]byte {
	tb.Helper()
	var keys [][]byte
	for _, s := range secrets {
		keys = append(keys, MustKey(tb, v, s))
	}
	return keys
}

func TestStripe_Key_IsTheLiteralSecret(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe"})
	if k := MustKey(t, v, stripeSecret); string(k) != stripeSecret {
		t.Fatalf("Key = %q, want the secret's bytes", k)
	}
	if _, err := v.Key(""); err == nil {
		t.Fatal("Key(\"\") = nil error, want one")
	}
}

func TestStripe_Verify_AcceptsStripeGoSignature(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe"})
	p := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: stripeBody, Secret: stripeSecret, Timestamp: testNow})
	err := v.Verify(stripeRequest(p.Header, stripeBody, testNow), stripeKeys(t, v, stripeSecret))
	wantErr(t, err, nil)
}

func TestStripe_Verify_SignatureAcceptedByStripeGo(t *testing.T) {
	now := time.Now() // stripe-go checks against the wall clock
	h := signStripe(now, stripeBody, stripeSecret)
	if err := webhook.ValidatePayloadWithTolerance(stripeBody, h, stripeSecret, 5*time.Minute); err != nil {
		t.Fatalf("stripe-go ValidatePayload: %v", err)
	}
	ev, err := webhook.ConstructEventWithOptions(stripeBody, h, stripeSecret, webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		t.Fatalf("stripe-go ConstructEvent: %v", err)
	}
	if ev.ID != "evt_1Nq" {
		t.Fatalf("event id = %q", ev.ID)
	}
	// And ours agrees with itself on the same header.
	v := MustNew(t, Options{Kind: "stripe"})
	wantErr(t, v.Verify(stripeRequest(h, stripeBody, now), stripeKeys(t, v, stripeSecret)), nil)
	// stripe-go rejects it with another secret, as we do.
	if err := webhook.ValidatePayload(stripeBody, h, stripeSecretOld); err == nil {
		t.Fatal("stripe-go accepted a signature made with another secret")
	}
}

func TestStripe_Verify_AcceptsAnyV1Entry(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe"})
	ts := fmt.Sprint(testNow.Unix())
	good := hexMAC([]byte(stripeSecret), ts+"."+string(stripeBody))
	bad := hexMAC([]byte("other"), ts+"."+string(stripeBody))
	for _, h := range []string{
		"t=" + ts + ",v1=" + bad + ",v1=" + good,
		"t=" + ts + ",v1=" + good + ",v1=" + bad,
		"t=" + ts + ",v1=zz,v1=" + good,
		"v0=" + bad + ",v1=" + good + ",t=" + ts,
		"t=" + ts + ",v1=" + good + ",scheme=x",
		"t=" + ts + ", v1=" + good,
	} {
		t.Run(h, func(t *testing.T) {
			wantErr(t, v.Verify(stripeRequest(h, stripeBody, testNow), stripeKeys(t, v, stripeSecret)), nil)
		})
	}
}

func TestStripe_Verify_AcceptsRotatedKeys(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe"})
	keys := stripeKeys(t, v, stripeSecretOld, stripeSecret)
	for name, h := range map[string]string{
		"signed with new":    signStripe(testNow, stripeBody, stripeSecret),
		"signed with old":    signStripe(testNow, stripeBody, stripeSecretOld),
		"signed with both":   signStripe(testNow, stripeBody, stripeSecretOld, stripeSecret),
		"both, other order":  signStripe(testNow, stripeBody, stripeSecret, stripeSecretOld),
		"stripe-go, new key": webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: stripeBody, Secret: stripeSecret, Timestamp: testNow}).Header,
	} {
		t.Run(name, func(t *testing.T) {
			wantErr(t, v.Verify(stripeRequest(h, stripeBody, testNow), keys), nil)
		})
	}
	t.Run("old key retired", func(t *testing.T) {
		h := signStripe(testNow, stripeBody, stripeSecretOld)
		wantErr(t, v.Verify(stripeRequest(h, stripeBody, testNow), stripeKeys(t, v, stripeSecret)), relay.ErrBadSignature)
	})
}

func TestStripe_Verify_RejectsStaleTimestamp(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe", Tolerance: 5 * time.Minute})
	keys := stripeKeys(t, v, stripeSecret)
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"just inside, past", testNow.Add(-5 * time.Minute), nil},
		{"just inside, future", testNow.Add(5 * time.Minute), nil},
		{"too old", testNow.Add(-5*time.Minute - time.Second), relay.ErrStaleTimestamp},
		{"too new", testNow.Add(5*time.Minute + time.Second), relay.ErrStaleTimestamp},
		{"epoch", time.Unix(0, 0), relay.ErrStaleTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: stripeBody, Secret: stripeSecret, Timestamp: tc.at})
			wantErr(t, v.Verify(stripeRequest(p.Header, stripeBody, testNow), keys), tc.want)
		})
	}
}

func TestStripe_Verify_RejectsTamperedBody(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe"})
	keys := stripeKeys(t, v, stripeSecret)
	h := signStripe(testNow, stripeBody, stripeSecret)
	for _, m := range mutations(stripeBody) {
		err := v.Verify(stripeRequest(h, m, testNow), keys)
		wantErr(t, err, relay.ErrBadSignature)
	}
}

func TestStripe_Verify_RejectsTamperedTimestamp(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe"})
	h := signStripe(testNow, stripeBody, stripeSecret)
	h = strings.Replace(h, fmt.Sprint(testNow.Unix()), fmt.Sprint(testNow.Unix()+1), 1)
	wantErr(t, v.Verify(stripeRequest(h, stripeBody, testNow), stripeKeys(t, v, stripeSecret)), relay.ErrBadSignature)
}

func TestStripe_Verify_RejectsGarbledHeader(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe"})
	keys := stripeKeys(t, v, stripeSecret)
	ts := fmt.Sprint(testNow.Unix())
	good := hexMAC([]byte(stripeSecret), ts+"."+string(stripeBody))
	for name, h := range map[string]string{
		"missing":           "",
		"no timestamp":      "v1=" + good,
		"no v1":             "t=" + ts + ",v0=" + good,
		"only v0 matches":   "t=" + ts + ",v1=" + strings.Repeat("0", 64) + ",v0=" + good,
		"timestamp not int": "t=abc,v1=" + good,
		"signed +timestamp": "t=+" + ts + ",v1=" + hexMAC([]byte(stripeSecret), "+"+ts+"."+string(stripeBody)),
		"two timestamps":    "t=" + ts + ",t=" + ts + ",v1=" + good,
		"pair without =":    "t=" + ts + ",v1" + good,
		"v1 too short":      "t=" + ts + ",v1=" + good[:62],
		"v1 upper-case key": "t=" + ts + ",V1=" + good,
		"only commas":       ",,,",
	} {
		t.Run(name, func(t *testing.T) {
			err := v.Verify(stripeRequest(h, stripeBody, testNow), keys)
			wantErr(t, err, relay.ErrBadSignature)
			noSecretIn(t, err, stripeSecret, good)
		})
	}
}

func TestStripe_Verify_RejectsNoKeys(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe"})
	h := signStripe(testNow, stripeBody, stripeSecret)
	wantErr(t, v.Verify(stripeRequest(h, stripeBody, testNow), nil), relay.ErrBadSignature)
}

func TestStripe_Parse(t *testing.T) {
	v := MustNew(t, Options{Kind: "stripe"})
	for _, tc := range []struct {
		name     string
		body     string
		id, typ  string
		occurred time.Time
		want     error
	}{
		{"event", string(stripeBody), "evt_1Nq", "invoice.created", time.Unix(1764324000, 0).UTC(), nil},
		{"no created", `{"id":"evt_2","type":"charge.succeeded"}`, "evt_2", "charge.succeeded", time.Time{}, nil},
		{"no id", `{"type":"charge.succeeded"}`, "", "charge.succeeded", time.Time{}, nil},
		{"array", `[{"id":"evt_1"}]`, "", "", time.Time{}, relay.ErrInvalidJSON},
		{"not json", `id=evt_1`, "", "", time.Time{}, relay.ErrInvalidJSON},
		{"truncated", `{"id":"evt_1"`, "", "", time.Time{}, relay.ErrInvalidJSON},
		{"id not a string", `{"id":1,"type":"x"}`, "", "", time.Time{}, relay.ErrInvalidEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Parse(stripeRequest("", []byte(tc.body), testNow))
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			if len(p.Items) != 1 {
				t.Fatalf("items = %d, want 1", len(p.Items))
			}
			it := p.Items[0]
			if it.ID != tc.id || it.Type != tc.typ || !it.OccurredAt.Equal(tc.occurred) || string(it.Body) != tc.body || it.Discard {
				t.Fatalf("item = %+v", it)
			}
			if p.Nonce != "" || p.Reply != nil {
				t.Fatalf("parsed = %+v, want no nonce and no reply", p)
			}
		})
	}
}

func FuzzStripeHeader(f *testing.F) {
	ts := fmt.Sprint(testNow.Unix())
	good := hexMAC([]byte(stripeSecret), ts+"."+string(stripeBody))
	f.Add(signStripe(testNow, stripeBody, stripeSecret))
	f.Add("t=" + ts + ",v1=" + good + ",v1=" + good + ",v0=abc")
	f.Add("t=" + ts + ",v1=" + good[:63] + "g")
	f.Add("t=,v1=")
	f.Add("=,=,t=1")
	f.Add("t=99999999999999999999,v1=" + good)
	v := MustNew(f, Options{Kind: "stripe"})
	keys := stripeKeys(f, v, stripeSecret)
	f.Fuzz(func(t *testing.T, h string) {
		err := v.Verify(stripeRequest(h, stripeBody, testNow), keys)
		if err == nil {
			// Only a header carrying a v1 signature of this very body
			// and its own timestamp may verify.
			tsv, _, _ := parseStripeHeader(h)
			if !strings.Contains(strings.ToLower(h), "v1="+hexMAC([]byte(stripeSecret), tsv+"."+string(stripeBody))) {
				t.Fatalf("accepted header %q without a valid v1", h)
			}
			return
		}
		if !strings.Contains(err.Error(), relay.ErrBadSignature.Error()) && !strings.Contains(err.Error(), relay.ErrStaleTimestamp.Error()) {
			t.Fatalf("err = %v, want bad signature or stale timestamp", err)
		}
	})
}

func FuzzVerifyStripe(f *testing.F) {
	f.Add(stripeBody, uint(0), byte(1))
	f.Add(body1K, uint(512), byte(0x80))
	f.Add([]byte{}, uint(0), byte(0))
	f.Add([]byte("not json"), uint(3), byte(' '))
	v := MustNew(f, Options{Kind: "stripe"})
	keys := stripeKeys(f, v, stripeSecretOld, stripeSecret)
	f.Fuzz(func(t *testing.T, body []byte, pos uint, x byte) {
		h := signStripe(testNow, body, stripeSecret)
		if err := v.Verify(stripeRequest(h, body, testNow), keys); err != nil {
			t.Fatalf("original body: %v", err)
		}
		_, _ = v.Parse(stripeRequest(h, body, testNow)) // must not panic
		m := mutate(body, pos, x)
		wantErr(t, v.Verify(stripeRequest(h, m, testNow), keys), relay.ErrBadSignature)
	})
}

// stripeReference is what Parse reads, decoded with encoding/json into maps
// (exact keys, the last of repeated keys wins): the walker must agree.
func stripeReference(body []byte) (it Item, err error) {
	var top map[string]json.RawMessage
	if !isObject(body) || json.Unmarshal(body, &top) != nil {
		return it, relay.ErrInvalidJSON
	}
	str := func(raw json.RawMessage, name string) (string, error) {
		var s *string
		if raw != nil && json.Unmarshal(raw, &s) != nil {
			return "", fmt.Errorf("%w: %s", relay.ErrInvalidEvent, name)
		}
		if s == nil {
			return "", nil
		}
		return *s, nil
	}
	if it.ID, err = str(top["id"], "id"); err != nil {
		return it, err
	}
	if it.Type, err = str(top["type"], "type"); err != nil {
		return it, err
	}
	if raw := top["created"]; raw != nil {
		var c *int64
		if json.Unmarshal(raw, &c) != nil {
			return it, relay.ErrInvalidEvent
		}
		if c != nil {
			it.OccurredAt = time.Unix(*c, 0).UTC()
		}
	}
	obj := func(raw json.RawMessage) map[string]json.RawMessage {
		var m map[string]json.RawMessage
		if isObject(raw) {
			_ = json.Unmarshal(raw, &m)
		}
		return m
	}
	text := func(raw json.RawMessage) string { s, _ := jsonString(raw); return s }
	o := obj(obj(top["data"])["object"])
	it.Subject = relay.Subject{ID: idText(o["id"]), Type: text(o["object"])}
	it.Action = relay.Action{Type: lastSegment(it.Type, "."), Reason: first(text(o["billing_reason"]), text(obj(o["cancellation_details"])["reason"]))}
	if it.Subject.Type == "customer" {
		it.Actor = relay.Actor{ID: idText(o["id"]), Email: text(o["email"])}
	} else {
		it.Actor = relay.Actor{ID: refID(o["customer"]), Email: first(text(o["customer_email"]), text(obj(o["customer_details"])["email"]))}
	}
	return it, nil
}

func FuzzStripeParse(f *testing.F) {
	f.Add(stripeBody)
	f.Add([]byte(`{"id":"a","id":"b","type":"x.y","created":null,"data":{"object":{"object":"customer","id":7,"email":"e@x"}}}`))
	f.Add([]byte(`{"id":null,"type":"t","created":1.5}`))
	f.Add([]byte(`{"data":{"object":{"customer":{"id":"cus_1"},"customer_details":{"email":"\u00e9@x"},"cancellation_details":{"reason":"r"}}}}`))
	f.Add([]byte(`{"\u0069d":"escaped key","type":"a\"b"}`))
	s := MustNew(f, Options{Kind: "stripe"})
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := s.Parse(&Request{Body: body})
		want, werr := stripeReference(body)
		if (err == nil) != (werr == nil) || err != nil && !errors.Is(err, relay.ErrInvalidJSON) != !errors.Is(werr, relay.ErrInvalidJSON) {
			t.Fatalf("Parse err = %v, reference err = %v", err, werr)
		}
		if err != nil {
			return
		}
		got := p.Items[0]
		if got.ID != want.ID || got.Type != want.Type || !got.OccurredAt.Equal(want.OccurredAt) || got.Normal != want.Normal {
			t.Fatalf("Parse = %+v\nreference %+v", got, want)
		}
	})
}

func BenchmarkVerify_Stripe(b *testing.B) {
	v := MustNew(b, Options{Kind: "stripe"})
	keys := stripeKeys(b, v, stripeSecret)
	r := stripeRequest(signStripe(testNow, body1K, stripeSecret), body1K, testNow)
	b.ReportAllocs()
	b.SetBytes(int64(len(body1K)))
	for b.Loop() {
		if err := v.Verify(r, keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse_Stripe(b *testing.B) {
	body := []byte(`{"id":"evt_1","object":"event","api_version":"2024-06-20","created":1795859998,"type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","customer_email":"a@example.com","billing_reason":"subscription_cycle","pad":"` + strings.Repeat("x", 800) + `"}},"livemode":false}`)
	s, err := NewStripe(Options{Kind: "stripe"})
	if err != nil {
		b.Fatal(err)
	}
	r := &Request{Body: body}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Parse(r); err != nil {
			b.Fatal(err)
		}
	}
}
