package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Condition operators.
const (
	OpEq      = "eq"      // the value equals Value
	OpPresent = "present" // the value is set: not missing, null or ""
	OpAbsent  = "absent"  // the value is missing, null or ""
	OpPrefix  = "prefix"  // the value is a string (or number) starting with Value
)

// Condition is one test a route's `where` makes on the canonical envelope.
//
// Path is dotted ("data.object.currency"); a segment that is a number
// indexes an array ("data.items.0.sku"). The first segment is an envelope
// field: id, source, tenant, type, idempotency_key, occurred_at,
// received_at, causation_id, actor.{id,email}, subject.{id,type},
// action.{type,reason}, or data.… (the provider's object).
//
// Eq compares a string by its value, a number numerically ("2000" equals
// 2000 and 2000.0), true and false by their name; objects, arrays and null
// never equal anything.
type Condition struct {
	Path  string
	Op    string
	Value string // for OpEq and OpPrefix
}

// envelopeFields are the first segments a path may start with; those
// mapped to a list take only these second segments.
var envelopeFields = map[string][]string{
	"id": nil, "source": nil, "tenant": nil, "type": nil, "idempotency_key": nil,
	"occurred_at": nil, "received_at": nil, "causation_id": nil,
	"actor":   {"id", "email"},
	"subject": {"id", "type"},
	"action":  {"type", "reason"},
	"data":    nil,
}

// Validate reports what is wrong with c, naming the path.
func (c Condition) Validate() error {
	if err := ValidPath(c.Path); err != nil {
		return err
	}
	switch c.Op {
	case OpEq, OpPrefix, OpPresent, OpAbsent:
	default:
		return fmt.Errorf("%s: unknown test %q (use a value, or {eq: …}, {present: true|false}, {prefix: …})", c.Path, c.Op)
	}
	if c.Op == OpPrefix && c.Value == "" {
		return fmt.Errorf("%s: an empty prefix matches everything; use {present: true}", c.Path)
	}
	return nil
}

// ValidPath reports whether p is a dotted path into the canonical envelope.
func ValidPath(p string) error {
	segs := strings.Split(p, ".")
	for _, s := range segs {
		if s == "" {
			return fmt.Errorf("%q: empty path segment", p)
		}
	}
	subs, ok := envelopeFields[segs[0]]
	if !ok {
		return fmt.Errorf("%q: the envelope has no field %q (paths start with id, source, tenant, type, idempotency_key, occurred_at, received_at, causation_id, actor, subject, action or data)", p, segs[0])
	}
	switch {
	case subs == nil && segs[0] != "data" && len(segs) > 1:
		return fmt.Errorf("%q: %s is a string, it has no fields", p, segs[0])
	case subs != nil && len(segs) == 1:
		return fmt.Errorf("%q: %s is an object; test one of its fields (%s.%s)", p, segs[0], segs[0], strings.Join(subs, ", "+segs[0]+"."))
	case subs != nil && (len(segs) > 2 || !contains(subs, segs[1])):
		return fmt.Errorf("%q: %s has the fields %s", p, segs[0], strings.Join(subs, " and "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Holds reports whether c holds for env, an envelope decoded by
// DecodeEnvelope.
func (c Condition) Holds(env map[string]any) bool {
	v, found := Lookup(env, c.Path)
	return c.holds(v, found)
}

// holds reports whether c holds for the value found at its path.
func (c Condition) holds(v any, found bool) bool {
	set := found && v != nil && v != ""
	switch c.Op {
	case OpPresent:
		return set
	case OpAbsent:
		return !set
	case OpPrefix:
		s, ok := text(v)
		return found && ok && strings.HasPrefix(s, c.Value)
	case OpEq:
		return found && equal(v, c.Value)
	}
	return false
}

// DecodeEnvelope decodes a canonical envelope for Lookup, keeping numbers
// as json.Number (every digit of a large id). It returns nil when env is
// not a JSON object.
func DecodeEnvelope(env []byte) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(env))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil {
		return nil
	}
	return m
}

// Lookup returns the value at a dotted path of v (maps by key, arrays by a
// decimal index); found is false when a segment is missing.
func Lookup(v any, path string) (value any, found bool) {
	for _, seg := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			if v, found = x[seg]; !found {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// text returns a string's value or a number's text.
func text(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

func equal(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case bool:
		return strconv.FormatBool(x) == want
	case json.Number:
		if x.String() == want {
			return true
		}
		a, ok1 := new(big.Float).SetString(x.String())
		b, ok2 := new(big.Float).SetString(want)
		return ok1 && ok2 && a.Cmp(b) == 0
	}
	return false
}
