package provider

import (
	"encoding/json"
	"testing"
	"time"
)

func TestNormalizeHelpers(t *testing.T) {
	for in, want := range map[string]string{"orders": "order", "companies": "company", "draft_orders": "draft_order",
		"address": "address", "app": "app", "s": "s", "": ""} {
		if got := singular(in); got != want {
			t.Errorf("singular(%q) = %q, want %q", in, got, want)
		}
	}
	for raw, want := range map[string]string{`"a"`: "a", `820982911946154508`: "820982911946154508", ` -1.5e3 `: "-1.5e3",
		`{"id":7}`: "", `null`: "", `true`: "", ``: "", `"\u00e9"`: "é"} {
		if got := idText(json.RawMessage(raw)); got != want {
			t.Errorf("idText(%s) = %q, want %q", raw, got, want)
		}
	}
	for raw, want := range map[string]string{`"C1"`: "C1", `{"id":"C1","name":"x"}`: "C1", `{"id":12}`: "12", `{"name":"x"}`: "", `[1]`: ""} {
		if got := refID(json.RawMessage(raw)); got != want {
			t.Errorf("refID(%s) = %q, want %q", raw, got, want)
		}
	}
	for in, want := range map[string]time.Time{
		"1795859998":                  time.Unix(1795859998, 0).UTC(),
		"1795859999.457031":           time.Unix(1795859999, 457031000).UTC(),
		"1795859999.1234567891234":    time.Unix(1795859999, 123456789).UTC(),
		"":                            {},
		"1.x":                         {},
		"-5":                          {},
		"99999999999999999999999999.": {},
	} {
		if got := secondsTime(in); !got.Equal(want) {
			t.Errorf("secondsTime(%q) = %v, want %v", in, got, want)
		}
	}
	if got := unixMillis(json.RawMessage(`1795859985123`)); !got.Equal(time.UnixMilli(1795859985123)) {
		t.Errorf("unixMillis = %v", got)
	}
	if got := lastSegment("orders/create", "/"); got != "create" {
		t.Errorf("lastSegment = %q", got)
	}
	if got := firstSegment("push", "."); got != "push" {
		t.Errorf("firstSegment = %q", got)
	}
}
