package provider

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// testNow is the clock of most tests: 2026-11-28T10:00:00Z.
var testNow = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// body1K is a 1 KiB JSON object for benchmarks and fuzz seeds.
var body1K = func() []byte {
	b := []byte(`{"id":"evt_1","type":"invoice.created","created":1700000000,"data":{"pad":"`)
	b = append(b, bytes.Repeat([]byte("x"), 1024-len(b)-3)...)
	return append(b, `"}}`...)
}()

// MustNew returns the verifier for o, failing tb on error.
func MustNew(tb testing.TB, o Options) Verifier {
	tb.Helper()
	v, err := New(o)
	if err != nil {
		tb.Fatalf("New(%q): %v", o.Kind, err)
	}
	return v
}

// MustKey returns v.Key(secret), failing tb on error.
func MustKey(tb testing.TB, v Verifier, secret string) []byte {
	tb.Helper()
	k, err := v.Key(secret)
	if err != nil {
		tb.Fatalf("Key: %v", err)
	}
	return k
}

// hexMAC and b64MAC compute HMAC-SHA256 independently of the code under test.
func hexMAC(key []byte, msg string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return hex.EncodeToString(h.Sum(nil))
}

func b64MAC(key []byte, msg string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// wantErr fails t unless err wraps want (or is nil when want is nil).
func wantErr(t testing.TB, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("err = %v, want nil", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("err = %v, want %v", err, want)
	}
}

// noSecretIn fails t when err's message contains any of secrets.
func noSecretIn(t testing.TB, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error %q leaks a secret or signature", err)
		}
	}
}

// mutations returns bodies that differ from body in one way each.
func mutations(body []byte) [][]byte {
	var out [][]byte
	if len(body) > 0 {
		for _, i := range []int{0, len(body) / 2, len(body) - 1} {
			m := bytes.Clone(body)
			m[i] ^= 0x01
			out = append(out, m)
		}
		out = append(out, body[:len(body)-1])
	}
	out = append(out, append(bytes.Clone(body), ' '))
	return out
}

// mutate changes body at pos with x (a non-zero xor), or appends x when
// body is empty; the result always differs from body.
func mutate(body []byte, pos uint, x byte) []byte {
	if x == 0 {
		x = 1
	}
	if len(body) == 0 {
		return []byte{x}
	}
	m := bytes.Clone(body)
	m[pos%uint(len(m))] ^= x
	return m
}

func TestKinds_ListsEveryKind(t *testing.T) {
	got := strings.Join(Kinds(), ",")
	if want := "github,hmac,hubspot,shopify,slack,standard,stripe,woocommerce,wordpress"; got != want {
		t.Fatalf("Kinds() = %s, want %s", got, want)
	}
}

func TestNew_RejectsUnknownKind(t *testing.T) {
	if _, err := New(Options{Kind: "nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want an error naming the kind", err)
	}
}

func TestNew_ReturnsNilVerifierOnError(t *testing.T) {
	v, err := New(Options{Kind: "hmac"}) // no header
	if err == nil || v != nil {
		t.Fatalf("New = %v, %v; want nil verifier and an error", v, err)
	}
}

func TestNew_RejectsNegativeTolerance(t *testing.T) {
	for _, k := range []string{"stripe", "standard", "hmac", "wordpress", "slack", "hubspot"} {
		t.Run(k, func(t *testing.T) {
			o := Options{Kind: k, Tolerance: -time.Second, HMAC: HMACOptions{Header: "X-Sig"},
				Issuer: "https://example.com", JWTSecret: strings.Repeat("s", 32), PublicURL: "https://example.com/hooks/h"}
			if _, err := New(o); err == nil || !strings.Contains(err.Error(), "tolerance") {
				t.Fatalf("err = %v, want a tolerance error", err)
			}
		})
	}
}

func TestHeaderConstants_AreCanonical(t *testing.T) {
	for _, h := range []string{
		stripeSignatureHeader, githubSignatureHeader, githubDeliveryHeader, githubEventHeader,
		standardIDHeader, standardTimestampHeader, standardSignatureHeader,
		svixIDHeader, svixTimestampHeader, svixSignatureHeader, authorizationHeader,
		shopifyHMACHeader, shopifyTopicHeader, shopifyWebhookIDHeader, shopifyEventIDHeader, shopifyTriggeredHeader,
		slackSignatureHeader, slackTimestampHeader, contentTypeHeader, hubspotSignatureHeader, hubspotTimestampHeader,
		wcSignatureHeader, wcTopicHeader, wcResourceHeader, wcEventHeader, wcWebhookIDHeader, wcDeliveryIDHeader,
	} {
		if c := http.CanonicalHeaderKey(h); c != h {
			t.Errorf("%q is not canonical (%q)", h, c)
		}
	}
}

func TestParseUnix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1700000000", 1700000000, true},
		{"1700000000123", 1700000000123, true},
		{"999999999999999999", 999999999999999999, true},
		{"", 0, false},
		{"1000000000000000000", 0, false}, // 19 digits
		{"+1", 0, false},
		{"-1", 0, false},
		{" 1", 0, false},
		{"1.5", 0, false},
		{"0x10", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := parseUnix(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("parseUnix(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestDecodeMAC(t *testing.T) {
	want := sha256.Sum256([]byte("x"))
	hx := hex.EncodeToString(want[:])
	b64 := base64.StdEncoding.EncodeToString(want[:])
	for _, tc := range []struct {
		name string
		in   string
		b64  bool
		ok   bool
	}{
		{"hex lower", hx, false, true},
		{"hex upper", strings.ToUpper(hx), false, true},
		{"hex short", hx[:62], false, false},
		{"hex long", hx + "00", false, false},
		{"hex bad digit", "g" + hx[1:], false, false},
		{"base64 padded", b64, true, true},
		{"base64 raw", strings.TrimRight(b64, "="), true, true},
		{"base64 url alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(b64) + "AAAA", true, false},
		{"base64 short", b64[:40], true, false},
		{"base64 non-zero padding bits", nonCanonical(b64), true, false},
		{"base64 garbage", strings.Repeat("!", 44), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [macSize]byte
			var ok bool
			if tc.b64 {
				ok = decodeBase64MAC(&got, tc.in)
			} else {
				ok = decodeHexMAC(&got, tc.in)
			}
			if ok != tc.ok || ok && got != want {
				t.Fatalf("decode(%q) = %x, %v; want ok=%v", tc.in, got, ok, tc.ok)
			}
		})
	}
}

// nonCanonical returns b64 (the padded base64 of 32 bytes) with a padding
// bit of its last character set: lenient decoders read the same bytes.
func nonCanonical(b64 string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, b64[42])
	return b64[:42] + string(alphabet[i^1]) + b64[43:]
}

func TestDecodeObject(t *testing.T) {
	var v struct {
		ID string `json:"id"`
	}
	for _, tc := range []struct {
		body string
		want error
	}{
		{`{"id":"a"}`, nil},
		{"  \n{}", nil},
		{`[]`, relay.ErrInvalidJSON},
		{`null`, relay.ErrInvalidJSON},
		{`"x"`, relay.ErrInvalidJSON},
		{`{"id":`, relay.ErrInvalidJSON},
		{`{} {}`, relay.ErrInvalidJSON},
		{``, relay.ErrInvalidJSON},
		{`{"id":1}`, relay.ErrInvalidEvent},
	} {
		t.Run(tc.body, func(t *testing.T) {
			wantErr(t, decodeObject([]byte(tc.body), &v), tc.want)
		})
	}
}

func TestCheckTime_IsSymmetric(t *testing.T) {
	for _, tc := range []struct {
		off  time.Duration
		want error
	}{
		{0, nil},
		{5 * time.Minute, nil},
		{-5 * time.Minute, nil},
		{5*time.Minute + time.Second, relay.ErrStaleTimestamp},
		{-5*time.Minute - time.Second, relay.ErrStaleTimestamp},
	} {
		t.Run(tc.off.String(), func(t *testing.T) {
			wantErr(t, checkTime(testNow, testNow.Add(tc.off), 5*time.Minute), tc.want)
		})
	}
}

// sha256Sum is SHA-256 (HubSpot's v1 and v2 signatures are plain hashes).
func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
