package provider

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

const wcSecret = "c0ns3cret&key=<w00>" // special characters, as wp_generate_password makes them

var wcBody = []byte(`{"id":727,"status":"processing","date_modified_gmt":"2026-11-28T09:59:51"}`)

// wcDocSig is WooCommerce's signature of wcBody: WC_Webhook::
// generate_signature is base64_encode( hash_hmac( 'sha256', $payload,
// wp_specialchars_decode( $secret, ENT_QUOTES ), true ) )
// (woocommerce/includes/class-wc-webhook.php); wcSecret has no entity, so
// the decode leaves it as is. Computed with PHP 8.2.
const wcDocSig = "tF0XsdJuuzkcvE2NBfioJ/ozqKGZvI1ygaRQMD0hfT4="

func wcRequest(sig, topic string, body []byte) *Request {
	h := http.Header{}
	for k, v := range map[string]string{"X-WC-Webhook-Signature": sig, "X-WC-Webhook-Topic": topic, "X-WC-Webhook-ID": "3",
		"X-WC-Webhook-Delivery-ID": "9f2c6a1b0d5e4f8a7c3b2e1d0f9a8b7c", "Content-Type": "application/json"} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return &Request{Method: "POST", Header: h, Body: body, Now: testNow}
}

func TestWooCommerce_Verify_AcceptsWooCommerceSignature(t *testing.T) {
	v := MustNew(t, Options{Kind: "woocommerce"})
	keys := [][]byte{MustKey(t, v, wcSecret)}
	wantErr(t, v.Verify(wcRequest(wcDocSig, "order.updated", wcBody), keys), nil)
	for _, m := range mutations(wcBody) {
		wantErr(t, v.Verify(wcRequest(wcDocSig, "order.updated", m), keys), relay.ErrBadSignature)
	}
	// The same expression, run by PHP now.
	sig := runPHP(t, `echo base64_encode(hash_hmac('sha256', $argv[1], $argv[2], true));`, string(wcBody), wcSecret)
	wantErr(t, v.Verify(wcRequest(sig, "order.updated", wcBody), keys), nil)
}

// WooCommerce keys the HMAC with wp_specialchars_decode( $secret,
// ENT_QUOTES ), so a secret holding an entity signs with the character.
func TestWooCommerce_Key_DecodesEntitiesAsWordPress(t *testing.T) {
	v := MustNew(t, Options{Kind: "woocommerce"})
	if k := string(MustKey(t, v, "a&amp;b&#039;c")); k != "a&b'c" {
		t.Fatalf("Key = %q", k)
	}
	r := wcRequest(b64MAC([]byte("a&b'c"), string(wcBody)), "order.updated", wcBody)
	wantErr(t, v.Verify(r, [][]byte{MustKey(t, v, "a&amp;b&#039;c")}), nil)
	if _, err := v.Key(""); err == nil {
		t.Fatal(`Key("") = nil error`)
	}
}

func TestWPSpecialcharsDecode(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                       "plain",
		"&lt;&gt;&amp;&quot;":         `<>&"`,
		"&#039;&#39;&#0039;&#x27;":    "''''",
		"&#X27;&#x0027;&#x22;&#x26;":  `''"&`,
		"&#34;&#034;&#38;&#60;&#062;": `""&<>`,
		"&apos;&LT;&Amp;&#x3C;&#65;":  "&apos;&LT;&Amp;&#x3C;&#65;", // not decoded by WordPress
		"&amp;lt;":                    "&lt;",                       // one pass
		"&#0038;lt;":                  "&lt;",
		"&&amp;;&#;&#x;&#39":          "&&;&#;&#x;&#39",
		"&":                           "&",
	} {
		if got := wpSpecialcharsDecode(in); got != want {
			t.Errorf("wpSpecialcharsDecode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWooCommerce_Greet(t *testing.T) {
	v := MustNew(t, Options{Kind: "woocommerce"}).(Greeter)
	ping := func(ct, body string, signed bool) *Request {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		if signed {
			h.Set("X-WC-Webhook-Signature", b64MAC([]byte(wcSecret), body))
		}
		return &Request{Method: "POST", Header: h, Body: []byte(body), Now: testNow}
	}
	for _, tc := range []struct {
		name, ct, body string
		signed, isPing bool
	}{
		{"form", "application/x-www-form-urlencoded; charset=UTF-8", "webhook_id=3", false, true},
		{"untyped", "", "webhook_id=12345", false, true},
		{"json typed", "application/json", "webhook_id=3", false, false},
		{"signed", "application/x-www-form-urlencoded", "webhook_id=3", true, false},
		{"not digits", "application/x-www-form-urlencoded", "webhook_id=3x", false, false},
		{"empty id", "application/x-www-form-urlencoded", "webhook_id=", false, false},
		{"more fields", "application/x-www-form-urlencoded", "webhook_id=3&x=1", false, false},
		{"trailing newline", "application/x-www-form-urlencoded", "webhook_id=3\n", false, false},
		{"json body", "application/json", `{"webhook_id":3}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply := v.Greet(ping(tc.ct, tc.body, tc.signed))
			if !tc.isPing {
				if reply != nil {
					t.Fatalf("Greet = %+v, want nil", reply)
				}
				return
			}
			if reply == nil || reply.Status != 200 || reply.Body.(map[string]string)["status"] != "ok" {
				t.Fatalf("Greet = %+v, want 200 {\"status\":\"ok\"}", reply)
			}
		})
	}
}

func TestWooCommerce_Parse(t *testing.T) {
	v := MustNew(t, Options{Kind: "woocommerce"})
	for _, tc := range []struct {
		name, topic, body string
		want              Item
		err               error
	}{
		{"order", "order.created", `{"id":727,"date_created_gmt":"2026-11-28T09:59:50","date_modified_gmt":"2026-11-28T09:59:51","customer_id":26,"billing":{"email":"john.doe@example.com"}}`, Item{
			ID: "3:order.created:727:2026-11-28T09:59:51", Type: "order.created", OccurredAt: time.Date(2026, 11, 28, 9, 59, 51, 0, time.UTC),
			Normal: relay.Normal{Actor: relay.Actor{ID: "26", Email: "john.doe@example.com"}, Subject: relay.Subject{ID: "727", Type: "order"}, Action: relay.Action{Type: "created"}},
		}, nil},
		{"guest order", "order.updated", `{"id":"728","date_created_gmt":"2026-11-28T09:00:00","customer_id":0,"billing":{"email":"guest@example.com"}}`, Item{
			ID: "3:order.updated:728:", Type: "order.updated", OccurredAt: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC),
			Normal: relay.Normal{Actor: relay.Actor{Email: "guest@example.com"}, Subject: relay.Subject{ID: "728", Type: "order"}, Action: relay.Action{Type: "updated"}},
		}, nil},
		{"deleted product", "product.deleted", `{"id":93}`, Item{
			ID: "3:product.deleted:93:", Type: "product.deleted",
			Normal: relay.Normal{Subject: relay.Subject{ID: "93", Type: "product"}, Action: relay.Action{Type: "deleted"}},
		}, nil},
		{"action topic: no id", "action.woocommerce_add_to_cart", `{"action":"woocommerce_add_to_cart","arg":"e3796ae838835da0b6f6ea37bcf8bcb7"}`, Item{
			Type: "action.woocommerce_add_to_cart", Normal: relay.Normal{Subject: relay.Subject{Type: "action"}, Action: relay.Action{Type: "woocommerce_add_to_cart"}},
		}, nil},
		{"odd types", "order.created", `{"id":727,"date_modified_gmt":5,"billing":"x","customer_id":"26"}`, Item{
			ID: "3:order.created:727:", Type: "order.created",
			Normal: relay.Normal{Actor: relay.Actor{ID: "26"}, Subject: relay.Subject{ID: "727", Type: "order"}, Action: relay.Action{Type: "created"}},
		}, nil},
		{"no topic", "", `{"id":1}`, Item{}, relay.ErrInvalidEvent},
		{"ping body", "order.created", `webhook_id=3`, Item{}, relay.ErrInvalidJSON},
		{"array", "order.created", `[]`, Item{}, relay.ErrInvalidJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Parse(wcRequest("", tc.topic, []byte(tc.body)))
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			tc.want.Body = []byte(tc.body)
			wantItems(t, p, tc.want)
		})
	}
}

// The delivery id changes across re-sends and repeats across events; the
// idempotency id ignores it.
func TestWooCommerce_Parse_IgnoresDeliveryID(t *testing.T) {
	v := MustNew(t, Options{Kind: "woocommerce"})
	a, b := wcRequest("", "order.updated", wcBody), wcRequest("", "order.updated", wcBody)
	b.Header.Set("X-WC-Webhook-Delivery-ID", "00000000000000000000000000000000")
	pa, _ := v.Parse(a)
	pb, _ := v.Parse(b)
	if pa.Items[0].ID != pb.Items[0].ID {
		t.Fatalf("ids %q and %q differ with the delivery id", pa.Items[0].ID, pb.Items[0].ID)
	}
	other := wcRequest("", "order.updated", []byte(`{"id":727,"date_modified_gmt":"2026-11-28T10:00:07"}`))
	if po, _ := v.Parse(other); po.Items[0].ID == pa.Items[0].ID {
		t.Fatal("a later modification has the same id")
	}
}

// FuzzWooCommercePing checks that Greet answers exactly the unsigned
// "webhook_id=<digits>" ping and nothing else, and never panics.
func FuzzWooCommercePing(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", "webhook_id=3", false)
	f.Add("", "webhook_id=18446744073709551615", false)
	f.Add("application/json", "webhook_id=3", false)
	f.Add("application/x-www-form-urlencoded", "webhook_id=3", true)
	f.Add("multipart/form-data; boundary=x", "webhook_id=", false)
	v := MustNew(f, Options{Kind: "woocommerce"}).(Greeter)
	f.Fuzz(func(t *testing.T, ct, body string, signed bool) {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		if signed {
			h.Set("X-WC-Webhook-Signature", "x")
		}
		reply := v.Greet(&Request{Header: h, Body: []byte(body)})
		id, isPing := "", false
		if rest, ok := strings.CutPrefix(body, "webhook_id="); ok && !signed && (ct == "" || isForm(h)) {
			id = rest
			_, isPing = parseUnix(id)
		}
		if (reply != nil) != isPing {
			t.Fatalf("Greet(%q, %q, signed=%v) = %v", ct, body, signed, reply)
		}
	})
}

func FuzzVerifyWooCommerce(f *testing.F) {
	f.Add(wcBody, uint(0), byte(1))
	f.Add(body1K, uint(33), byte(0xfe))
	f.Add([]byte("webhook_id=3"), uint(0), byte(0))
	v := MustNew(f, Options{Kind: "woocommerce"})
	keys := [][]byte{MustKey(f, v, wcSecret)}
	f.Fuzz(func(t *testing.T, body []byte, pos uint, x byte) {
		r := wcRequest(b64MAC([]byte(wcSecret), string(body)), "order.created", body)
		if err := v.Verify(r, keys); err != nil {
			t.Fatalf("original body: %v", err)
		}
		_, _ = v.Parse(r) // must not panic
		r.Body = mutate(body, pos, x)
		wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
	})
}

func BenchmarkVerify_WooCommerce(b *testing.B) {
	v := MustNew(b, Options{Kind: "woocommerce"})
	keys := [][]byte{MustKey(b, v, wcSecret)}
	r := wcRequest(b64MAC([]byte(wcSecret), string(body1K)), "order.created", body1K)
	b.ReportAllocs()
	b.SetBytes(int64(len(body1K)))
	for b.Loop() {
		if err := v.Verify(r, keys); err != nil {
			b.Fatal(err)
		}
	}
}
