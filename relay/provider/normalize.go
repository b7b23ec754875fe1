package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Normalization helpers. Each kind fills Item.Normal (actor, subject,
// action) in its Parse from the fields its provider documents; these read
// optional fields without ever failing: a field that is missing, null or of
// an unexpected type reads as empty.

// loose decodes raw into v as far as it goes: fields of another type than
// v's stay zero, and raw that is not JSON leaves v untouched. Only for
// optional fields, after the body was checked.
func loose(raw []byte, v any) { _ = json.Unmarshal(raw, v) }

// idText returns a JSON string's value or a JSON number's text (as written,
// so that ids above 2^53 keep every digit), else "".
func idText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		s, _ := jsonString(raw)
		return s
	case c == '-' || '0' <= c && c <= '9':
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
	}
	return ""
}

// refID returns the id that raw refers to: raw itself when it is a string
// or a number, or its "id" member when it is an object (an expanded
// reference: Stripe's customer, Slack's channel or user).
func refID(raw json.RawMessage) string {
	if s := idText(raw); s != "" {
		return s
	}
	var obj struct {
		ID json.RawMessage `json:"id"`
	}
	if isObject(raw) {
		loose(raw, &obj)
	}
	return idText(obj.ID)
}

// first returns the first of ss that is not empty.
func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// lastSegment returns what follows the last of seps in s, or s.
func lastSegment(s, seps string) string {
	return s[strings.LastIndexAny(s, seps)+1:]
}

// firstSegment returns what precedes the first of seps in s, or s.
func firstSegment(s, seps string) string {
	if i := strings.IndexAny(s, seps); i >= 0 {
		return s[:i]
	}
	return s
}

// singular turns a plural resource name into its singular in the regular
// cases that webhook topics use: "orders" → "order", "companies" →
// "company", "draft_orders" → "draft_order". Words not ending in "s" (or
// ending in "ss") are returned as they are.
func singular(w string) string {
	switch {
	case strings.HasSuffix(w, "ies") && len(w) > 3:
		return w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "ss"):
		return w
	case strings.HasSuffix(w, "s") && len(w) > 1:
		return w[:len(w)-1]
	}
	return w
}

// unixSeconds reads raw, a JSON number or numeric string of unix seconds,
// as secondsTime does.
func unixSeconds(raw json.RawMessage) time.Time { return secondsTime(idText(raw)) }

// secondsTime reads s, unix seconds with an optional fraction
// ("1700000000", "1548426417.840180" as Slack writes them), as a UTC time;
// zero when it is not one.
func secondsTime(s string) time.Time {
	whole, frac, _ := strings.Cut(s, ".")
	sec, ok := parseUnix(whole)
	if !ok {
		return time.Time{}
	}
	var nsec int64
	for i, scale := 0, int64(1e8); i < len(frac) && i < 9; i, scale = i+1, scale/10 {
		c := frac[i]
		if c < '0' || c > '9' {
			return time.Time{}
		}
		nsec += int64(c-'0') * scale
	}
	return time.Unix(sec, nsec).UTC()
}

// unixMillis reads raw, a JSON number or numeric string of unix
// milliseconds, as a UTC time; zero when it is not one.
func unixMillis(raw json.RawMessage) time.Time {
	ms, ok := parseUnix(idText(raw))
	if !ok {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// decodeLoose decodes body, which must be exactly one JSON object, into v,
// leaving fields of an unexpected type zero: the fields it reads are
// optional. A body that is not a JSON object is relay.ErrInvalidJSON.
func decodeLoose(body []byte, v any) error {
	if !isObject(body) {
		return fmt.Errorf("%w: want a JSON object", relay.ErrInvalidJSON)
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return relay.ErrInvalidJSON
		}
	}
	return nil
}
