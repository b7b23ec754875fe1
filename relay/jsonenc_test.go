package relay

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func testEnvelope(s string, data []byte) Envelope {
	at := time.Date(2026, 11, 28, 15, 4, 5, 123456789, time.UTC)
	return Envelope{
		ID: "0193f1e2-aaaa-7bbb-8ccc-0123456789ab", Source: "stripe" + s, Tenant: s, Type: "invoice." + s,
		IdempotencyKey: "stripe::" + s, OccurredAt: at.Truncate(time.Second), ReceivedAt: at,
		Actor: Actor{ID: "cus_" + s, Email: s + "@example.com"}, Subject: Subject{ID: s, Type: "invoice"},
		Action: Action{Type: "created", Reason: s}, Data: data,
	}
}

// Encode writes exactly what json.Marshal writes, whatever the strings and
// however the data is laid out.
func TestEnvelope_Encode(t *testing.T) {
	strs := []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\r\x00\x1f\x7f",
		"unicode é ✓ 🎉", "line\u2028sep\u2029", "bad \xff utf8 \xe2\x80"}
	datas := []string{
		`{}`, `[]`, `{"a":1}`, "{\n  \"id\": \"evt_1\",\n  \"data\": {\n    \"object\": {\"html\": \"<b>&</b>\"}\n  }\n}",
		`{"s":"esc \" \\ \u003c \n","ls":"` + "\u2028\u2029" + `","n":[1, 2.5e3, -0, true, false, null]}`,
		" \t{\"padded\" : [ 1 , { } ] }\r\n ",
		`"just a string"`, `123`, `null`, `true`,
	}
	for _, s := range strs {
		for _, d := range datas {
			e := testEnvelope(s, []byte(d))
			want, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("json.Marshal(%q, %q): %v", s, d, err)
			}
			got, err := e.Encode()
			if err != nil {
				t.Fatalf("Encode(%q, %q): %v", s, d, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Encode(%q, %q)\n got %s\nwant %s", s, d, got, want)
			}
		}
	}
	e := testEnvelope("x", nil)
	e.CausationID = "0193f1e2-0000-7000-8000-000000000000"
	want, _ := json.Marshal(e)
	if got, err := e.Encode(); err != nil || !bytes.Equal(got, want) {
		t.Errorf("with causation and nil data: got %s, %v\nwant %s", got, err, want)
	}
}

// Broken data is never copied into an envelope as if it were JSON.
func TestEnvelope_Encode_BrokenData(t *testing.T) {
	for _, d := range []string{`{"a":1`, `{"a":"1}`, `{"a":1}}`, `{"a":1} {"b":2}`, `]`, `{"a":1} x`, ``, `nul`} {
		e := testEnvelope("x", []byte(d))
		if got, err := e.Encode(); err == nil {
			t.Errorf("Encode(data %q) = %s, want an error", d, got)
		}
	}
}

func FuzzEnvelopeEncode(f *testing.F) {
	f.Add("plain", []byte(`{"a":[1,2,{"b":"<&>"}]}`))
	f.Add("\u2028<x>", []byte(" [ \"\u2029\" , 1 ] "))
	f.Add("\xff", []byte(`{"k":"\u00e9\"\\"}`))
	f.Fuzz(func(t *testing.T, s string, data []byte) {
		e := testEnvelope(s, data)
		got, err := e.Encode()
		if !json.Valid(data) {
			// Encode trusts its callers to hand over valid JSON: for
			// anything else it need only not panic.
			return
		}
		want, werr := json.Marshal(e)
		if werr != nil {
			t.Fatalf("json.Marshal: %v", werr)
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Encode = %s, %v\nwant %s", got, err, want)
		}
	})
}

func BenchmarkEnvelope_Encode(b *testing.B) {
	data := []byte(`{"id":"evt_1","object":"event","type":"invoice.created","data":{"object":{"id":"in_1","object":"invoice","pad":"` + string(bytes.Repeat([]byte("x"), 900)) + `"}}}`)
	e := testEnvelope("bench", data)
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
