package relay

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRedactor_Header(t *testing.T) {
	const key = "sk-live-header-key-42"
	r := NewRedactor([]string{"x-hook-digest"}, []string{key, "short"})
	h := http.Header{
		"Authorization": {"Bearer x"}, "Stripe-Signature": {"t=1,v1=ab"}, "X-Shopify-Hmac-Sha256": {"x"},
		"Cookie": {"a=b"}, "Webhook-Signature": {"v1,x"}, "X-Api-Key": {"k"}, "X-Auth-User": {"u"},
		"X-Hook-Digest": {"abcdef0123"}, "X-Echo": {"a", "key=" + key}, "Content-Type": {"application/json"},
		"X-Short": {"short"},
	}
	got := r.Header(h)
	for k, vs := range h {
		want := []string{Redacted}
		switch k {
		case "Content-Type", "X-Short":
			want = vs
		case "X-Echo":
			want = []string{"a", "key=" + Redacted}
		}
		if fmt.Sprint(got[k]) != fmt.Sprint(want) {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	if h["X-Echo"][1] != "key="+key {
		t.Errorf("the original header was changed: %q", h["X-Echo"])
	}
	if !(*Redactor)(nil).Secret("X-Hub-Signature-256") || (*Redactor)(nil).Secret("X-Hook-Digest") {
		t.Error("a nil Redactor applies the header names alone")
	}
}

// A secret that contains another is replaced whole, whatever the order
// the values were given in.
func TestRedactor_String_LongestFirst(t *testing.T) {
	const inner, outer = "secret1", "secret12345"
	for _, vals := range [][]string{{inner, outer}, {outer, inner}} {
		r := NewRedactor(nil, vals)
		if got := r.String("a secret12345 and a secret1."); got != "a REDACTED and a REDACTED." {
			t.Errorf("%q: %q", vals, got)
		}
	}
}

func TestRedactor_Handler(t *testing.T) {
	const key = "sk-live-log-key-9000"
	var buf bytes.Buffer
	r := NewRedactor(nil, []string{key})
	log := slog.New(r.Handler(slog.NewJSONHandler(&buf, nil))).With(slog.String("with", key))
	u, _ := url.Parse("https://crm.example/in?api_key=" + key)
	log.Info("message "+key,
		slog.String("s", "x"+key), slog.Any("url", u), slog.Any("error", errors.New("Post "+u.String()+": refused")),
		slog.Group("g", slog.String("inner", key)), slog.Int("n", 1))
	r.LeveledLogger(slog.New(slog.NewJSONHandler(&buf, nil))).Error("request failed", "error", &url.Error{Op: "Post", URL: u.String(), Err: errors.New("refused")}, "url", u.String())
	log.Info("only the message "+key, slog.Int("n", 2))
	out := buf.String()
	if strings.Contains(out, key) || strings.Count(out, Redacted) != 10 || !strings.Contains(out, `"n":1`) {
		t.Fatalf("log: %s", out)
	}
	if h := slog.NewJSONHandler(&buf, nil); NewRedactor(nil, nil).Handler(h) != h {
		t.Error("a Redactor with no values wraps the handler anyway")
	}
}

func TestTraceparent(t *testing.T) {
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, bad := range []string{"", "garbage", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"} {
		if ValidTraceparent(bad) || TraceID(bad) != "" {
			t.Errorf("%q is valid", bad)
		}
		if c := ChildTraceparent(bad); !ValidTraceparent(c) || c[3:35] == "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("child of %q = %q, want a new trace", bad, c)
		}
	}
	c := ChildTraceparent(parent)
	if !ValidTraceparent(c) || TraceID(c) != TraceID(parent) || c[36:52] == parent[36:52] || c[53:] != "01" {
		t.Errorf("child of %q = %q", parent, c)
	}
	if n := NewTraceparent(); !ValidTraceparent(n) || n == NewTraceparent() {
		t.Errorf("new: %q", n)
	}
}
