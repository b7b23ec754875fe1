package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheckJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"object", `{"id":"a","n":1.5e3,"ok":true,"x":null,"l":[1,{"id":"b"}]}`, nil},
		{"same name in sibling objects", `[{"id":1},{"id":2}]`, nil},
		{"same name at two levels", `{"id":1,"o":{"id":2}}`, nil},
		{"repeated name", `{"id":"a","id":"b"}`, ErrInvalidJSON},
		{"repeated name, nested", `{"data":{"object":{"id":"a","x":1,"id":"b"}}}`, ErrInvalidJSON},
		{"repeated name in an array element", `[{"a":1},{"b":1,"b":2}]`, ErrInvalidJSON},
		{"repeated name, escaped", `{"id":"a","\u0069d":"b"}`, ErrInvalidJSON},
		{"repeated name in a large object", `{` + manyMembers(40) + `,"m7":0}`, ErrInvalidJSON},
		{"large object", `{` + manyMembers(40) + `}`, nil},
		{"at the depth limit", deep(128), nil},
		{"over the depth limit", deep(129), ErrTooDeep},
		{"9,999 deep", deep(9999), ErrTooDeep},
		{"trailing data", `{} {}`, ErrInvalidJSON},
		{"empty", ``, ErrInvalidJSON},
		{"bad literal", `{"a":tru}`, ErrInvalidJSON},
		{"bad number", `{"a":01}`, ErrInvalidJSON},
		{"unterminated", `{"a":"b`, ErrInvalidJSON},
		{"trailing comma", `[1,]`, ErrInvalidJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckJSON([]byte(tc.in), 128)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("CheckJSON = %v, want %v", err, tc.want)
			}
		})
	}
}

func manyMembers(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"m%d":0`, i)
	}
	return strings.Join(parts, ",")
}

// reference answers what CheckJSON should, with encoding/json: valid,
// and then whether an object repeats a name and how deep it nests.
func reference(b []byte) (valid, dup bool, depth int) {
	if !json.Valid(b) {
		return false, false, 0
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	type level struct {
		object bool
		names  map[string]bool
		key    bool // the next string token of an object is a name
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err != nil {
			return true, dup, depth
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &level{object: v == '{', names: map[string]bool{}, key: true})
				depth = max(depth, len(stack))
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.object && top.key {
				if top.names[v] {
					dup = true
				}
				top.names[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}

func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"id":"a","id":"b"}`, `{"a":[1,2,{"b":null}]}`, `[[[[]]]]`, `{"\u0061":1,"a":2}`, `"x"`, `-0.5e+3`, `{"a":{"a":{"a":1}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 8
		err := CheckJSON(b, limit)
		valid, dup, depth := reference(b)
		switch {
		case !valid:
			if err == nil {
				t.Fatalf("CheckJSON accepted %q, which json.Valid refuses", b)
			}
		case dup:
			if !errors.Is(err, ErrInvalidJSON) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("CheckJSON(%q) = %v, want a repeated name refused", b, err)
			}
		case depth > limit:
			if !errors.Is(err, ErrTooDeep) {
				t.Fatalf("CheckJSON(%q) = %v, want too deep (%d)", b, err, depth)
			}
		default:
			if err != nil {
				t.Fatalf("CheckJSON(%q) = %v, want nil", b, err)
			}
		}
	})
}

// BenchmarkCheckJSON compares the check with json.Valid, which the
// providers ran alone before.
func BenchmarkCheckJSON(b *testing.B) {
	body := []byte(`{"id":"evt_1","object":"event","api_version":"2024-06-20","created":1700000000,"type":"invoice.created",` +
		`"data":{"object":{"id":"in_1","object":"invoice","amount_due":2000,"currency":"usd","customer":"cus_1",` +
		`"lines":{"object":"list","data":[{"id":"il_1","amount":2000,"description":"1 × Plan","period":{"start":1,"end":2}}]},` +
		`"metadata":{"order":"42"},"status":"draft"}},"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null}}`)
	b.Run("CheckJSON", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if err := CheckJSON(body, 128); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
}
