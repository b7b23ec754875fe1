package ingress

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/provider"
	"github.com/wprelay/wprelay/relay/relaytest"
)

func mustIngress(t *testing.T, sources ...*Source) (*Ingress, *relaytest.MemStore) {
	t.Helper()
	db := relaytest.NewMemStore()
	in := New(db, relay.NewRouter(nil), sources, slog.New(slog.DiscardHandler))
	return in, db
}

func githubSource(t *testing.T, name string, tenants ...Tenant) *Source {
	t.Helper()
	v, err := provider.New(provider.Options{Kind: "github"})
	if err != nil {
		t.Fatal(err)
	}
	return &Source{Name: name, Kind: "github", Verifier: v, Tenants: tenants}
}

func githubRequest(secret, body, delivery, remote string) *http.Request {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	r := httptest.NewRequest("POST", "/hooks/gh", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	r.Header.Set("X-GitHub-Event", "push")
	r.Header.Set("X-GitHub-Delivery", delivery)
	if remote != "" {
		r.RemoteAddr = remote
	}
	return r
}

func serve(in *Ingress, r *http.Request) (*httptest.ResponseRecorder, map[string]any) {
	w := httptest.NewRecorder()
	in.ServeHTTP(w, r)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w, body
}

func TestIngress_TenantFoundBySecret(t *testing.T) {
	in, db := mustIngress(t, githubSource(t, "gh",
		Tenant{Name: "alpha", Keys: [][]byte{[]byte("alpha-secret")}},
		Tenant{Name: "beta", Keys: [][]byte{[]byte("beta-old"), []byte("beta-new")}}))
	w, body := serve(in, githubRequest("beta-new", `{"a":1}`, "d1", ""))
	if w.Code != 202 {
		t.Fatalf("%d %v", w.Code, body)
	}
	ev, err := db.Event(t.Context(), body["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Tenant != "beta" || ev.IdempotencyKey != "gh:beta:d1" || ev.Status != relay.EventDiscarded {
		t.Fatalf("event %+v", ev)
	}
	raw, err := db.Raw(t.Context(), ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header["X-Hub-Signature-256"]; len(got) != 1 || got[0] != "REDACTED" {
		t.Errorf("signature header stored as %v", got)
	}
}

func TestIngress_RateLimitPerIP(t *testing.T) {
	in, _ := mustIngress(t, githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}}))
	in.Limits = &Limits{IPRate: 2}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	in.Now = func() time.Time { return now }
	codes := map[int]int{}
	var retryAfter string
	for i := range 5 {
		w, _ := serve(in, githubRequestUnique("s", "flood-"+string(rune('a'+i)), "192.0.2.1:5000"))
		codes[w.Code]++
		if w.Code == 429 {
			retryAfter = w.Header().Get("Retry-After")
		}
	}
	if codes[202] != 2 || codes[429] != 3 || retryAfter == "" {
		t.Fatalf("flood: %v Retry-After %q", codes, retryAfter)
	}
	// Another client of the same source is still served.
	if w, body := serve(in, githubRequestUnique("s", "other", "192.0.2.2:5000")); w.Code != 202 {
		t.Fatalf("other IP: %d %v", w.Code, body)
	}
	// A second later the first client has tokens again.
	now = now.Add(time.Second)
	if w, _ := serve(in, githubRequestUnique("s", "later", "192.0.2.1:5000")); w.Code != 202 {
		t.Fatalf("after a second: %d", w.Code)
	}
}

func TestIngress_RateLimitPerSource(t *testing.T) {
	in, _ := mustIngress(t, githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}}))
	in.Limits = &Limits{SourceRate: 1}
	in.Now = func() time.Time { return time.Unix(1_800_000_000, 0) }
	w1, _ := serve(in, githubRequestUnique("s", "1", "192.0.2.1:1"))
	w2, body := serve(in, githubRequestUnique("s", "2", "192.0.2.9:1"))
	if w1.Code != 202 || w2.Code != 429 || body["error"] != "rate_limited" {
		t.Fatalf("%d %d %v", w1.Code, w2.Code, body)
	}
}

func TestIngress_AllowIPsAndTrustedProxy(t *testing.T) {
	src := githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}})
	src.AllowIPs = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	in, _ := mustIngress(t, src)
	in.Limits = &Limits{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

	cases := []struct {
		name, remote, xff string
		want              int
	}{
		{"direct, allowed", "203.0.113.5:1", "", 202},
		{"direct, refused", "198.51.100.1:1", "", 403},
		{"untrusted peer cannot claim an address", "198.51.100.1:1", "203.0.113.5", 403},
		{"trusted proxy, allowed client", "127.0.0.1:1", "203.0.113.7", 202},
		{"trusted proxy, spoofed left entry ignored", "127.0.0.1:1", "203.0.113.7, 198.51.100.2", 403},
		{"trusted proxy, refused client", "127.0.0.1:1", "198.51.100.3", 403},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := githubRequestUnique("s", "ip-"+string(rune('a'+i)), c.remote)
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			w, body := serve(in, r)
			if w.Code != c.want {
				t.Fatalf("%d, want %d: %v", w.Code, c.want, body)
			}
			if c.want == 403 && body["error"] != "forbidden" {
				t.Fatalf("error %v", body["error"])
			}
		})
	}
}

// chunked has no Content-Length, so the limit must trip while reading.
type chunked struct{ n int }

func (c *chunked) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n)
	for i := range k {
		p[i] = 'x'
	}
	c.n -= k
	return k, nil
}

func TestIngress_OversizedWhileReading(t *testing.T) {
	src := githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}})
	src.MaxBody = 1000
	in, _ := mustIngress(t, src)
	r := httptest.NewRequest("POST", "/hooks/gh", &chunked{n: 1 << 20})
	r.ContentLength = -1
	r.Header.Set("Content-Type", "application/json")
	w, body := serve(in, r)
	if w.Code != 413 || body["error"] != "payload_too_large" {
		t.Fatalf("%d %v", w.Code, body)
	}
}

func TestIngress_QueueFull(t *testing.T) {
	in, _ := mustIngress(t, githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}}))
	in.MaxQueue = 0
	w, body := serve(in, githubRequestUnique("s", "q", ""))
	if w.Code != 503 || body["error"] != "unavailable" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %v %v", w.Code, body, w.Header())
	}
}

func TestRedact(t *testing.T) {
	h := http.Header{
		"Authorization": {"Bearer x"}, "Stripe-Signature": {"t=1,v1=ab"}, "X-Shopify-Hmac-Sha256": {"x"},
		"Cookie": {"a=b"}, "Webhook-Signature": {"v1,x"}, "X-Api-Key": {"k"}, "Content-Type": {"application/json"},
	}
	got := (*relay.Redactor)(nil).Header(h)
	for k := range h {
		want := "REDACTED"
		if k == "Content-Type" {
			want = "application/json"
		}
		if got[k][0] != want {
			t.Errorf("%s = %q, want %q", k, got[k][0], want)
		}
	}
}

func TestIngress_TraceparentContinuedOrStarted(t *testing.T) {
	in, db := mustIngress(t, githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}}))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := githubRequestUnique("s", "t1", "")
	r.Header.Set("Traceparent", parent)
	_, body := serve(in, r)
	ev, err := db.Event(t.Context(), body["id"].(string))
	if err != nil || ev.TraceParent != parent {
		t.Fatalf("continued: %q %v", ev.TraceParent, err)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"} {
		r := githubRequestUnique("s", "t-"+bad, "")
		if bad != "" {
			r.Header.Set("Traceparent", bad)
		}
		_, body := serve(in, r)
		ev, _ := db.Event(t.Context(), body["id"].(string))
		if !relay.ValidTraceparent(ev.TraceParent) || ev.TraceParent == bad {
			t.Errorf("traceparent %q stored as %q", bad, ev.TraceParent)
		}
	}
}

func TestIngress_ProviderKeyWithOtherBodyIsDuplicate(t *testing.T) {
	// Providers' redeliveries may differ (HubSpot attemptNumber, Stripe
	// pending_webhooks): a known provider key is a duplicate, never a 409.
	in, _ := mustIngress(t, githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}}))
	w1, b1 := serve(in, githubRequest("s", `{"attempt":1}`, "same-delivery", ""))
	w2, b2 := serve(in, githubRequest("s", `{"attempt":2}`, "same-delivery", ""))
	if w1.Code != 202 || w2.Code != 200 || b2["status"] != "duplicate" || b2["id"] != b1["id"] {
		t.Fatalf("%d %v / %d %v", w1.Code, b1, w2.Code, b2)
	}
}

func TestPublicURL_TenantInPath(t *testing.T) {
	src := &Source{PublicURL: "https://hooks.example.com/hooks/hubspot/"}
	r := httptest.NewRequest("POST", "/hooks/hubspot/acme?x=1", nil)
	if got := publicURL(src, r, "acme"); got != "https://hooks.example.com/hooks/hubspot/acme?x=1" {
		t.Fatalf("publicURL = %q", got)
	}
	if got := publicURL(src, r, ""); got != "https://hooks.example.com/hooks/hubspot/?x=1" {
		t.Fatalf("publicURL without tenant = %q", got)
	}
}

// The one-event answer is written by hand; its bytes are what encoding a
// map gave before (clients and the install guide's test read them).
func TestWriteStatusID_SameBytesAsJSON(t *testing.T) {
	for _, word := range []string{"queued", "duplicate"} {
		id := "01a222e1-152a-7e4a-a7bc-ac0c9c85f59a"
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		writeStatusID(got, http.StatusAccepted, word, id)
		writeJSON(want, http.StatusAccepted, map[string]string{"status": word, "id": id})
		if got.Body.String() != want.Body.String() || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Errorf("writeStatusID = %q (%s), want %q (%s)", got.Body, got.Header().Get("Content-Type"), want.Body, want.Header().Get("Content-Type"))
		}
	}
}

// githubRequestUnique is githubRequest with a body of its own: the same
// body under another delivery id is a duplicate.
func githubRequestUnique(secret, delivery, remote string) *http.Request {
	return githubRequest(secret, `{"delivery":"`+delivery+`"}`, delivery, remote)
}
