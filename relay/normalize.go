package relay

import (
	"bytes"
	"encoding/json"
)

// Normalize completes a kind's normalization n of an event of type typ
// whose provider object is data, with rules that hold for any sender:
//
//   - a Subject left entirely empty takes its ID from the first of
//     data.object.id (Stripe-like), object_ref, id and data.id that is a
//     string or a number;
//   - a Subject without a Type takes the first segment of typ when typ has
//     several ("invoice.created" → "invoice");
//   - an empty Action.Type is the last segment of typ ("invoice.created" →
//     "created", "orders/create" → "create"; "" for a one-word type).
//
// The Actor is never guessed. Nothing here fails: a body of an unknown
// shape, or not an object at all, leaves the fields empty.
func Normalize(n Normal, typ string, data []byte) Normal {
	subject, action := SplitType(typ)
	if n.Subject == (Subject{}) {
		n.Subject.ID = genericSubjectID(data)
	}
	if n.Subject.Type == "" && action != "" {
		n.Subject.Type = subject
	}
	if n.Action.Type == "" {
		n.Action.Type = action
	}
	return n
}

// genericSubjectID finds the id of the object an event is about in the
// common shapes: {"data":{"object":{"id"}}} (Stripe), {"object_ref"}
// (WordPress), {"id"}, {"data":{"id"}} (Standard Webhooks senders).
func genericSubjectID(data []byte) string {
	var v struct {
		ID        json.RawMessage `json:"id"`
		ObjectRef json.RawMessage `json:"object_ref"`
		Data      json.RawMessage `json:"data"`
	}
	if !isJSONObject(data) || json.Unmarshal(data, &v) != nil {
		return ""
	}
	var inner struct {
		ID     json.RawMessage `json:"id"`
		Object struct {
			ID json.RawMessage `json:"id"`
		} `json:"object"`
	}
	if isJSONObject(v.Data) {
		_ = json.Unmarshal(v.Data, &inner) // a field of another type stays empty
	}
	for _, raw := range []json.RawMessage{inner.Object.ID, v.ObjectRef, v.ID, inner.ID} {
		if s := scalar(raw); s != "" {
			return s
		}
	}
	return ""
}

// scalar returns a JSON string's value or a JSON number's text (as
// written, so that large ids keep every digit), else "".
func scalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case c == '-' || '0' <= c && c <= '9':
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
	}
	return ""
}

// isJSONObject reports whether b's first non-space byte opens an object.
func isJSONObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}
