package relay

import (
	"bytes"
	"encoding/json"
)

// UpgradeEnvelope returns env in the current layout. Envelopes stored
// before the envelope's data became the provider's object carried the
// provider's whole body as data; this reads such an envelope as if it had
// been made now, so that routes' paths, templates and receivers see one
// layout whatever the age of the event:
//
//   - a Stripe event body ("object": "event", its type the envelope's) → its data member;
//   - a WordPress event body (event_type the envelope's type, idempotency_key, data) → its data;
//   - a Standard Webhooks payload of exactly {type, timestamp, data}, type
//     the envelope's → its data.
//
// Any other envelope (every one made by this version, result events, a
// body of another shape) is returned as it is. It never fails: an envelope
// it cannot read is returned unchanged. An envelope of the current layout
// costs a few substring searches (maybeEarlier).
func UpgradeEnvelope(env json.RawMessage) json.RawMessage {
	if !maybeEarlier(env) {
		return env
	}
	var e Envelope
	if json.Unmarshal(env, &e) != nil || e.CausationID != "" {
		return env
	}
	var body map[string]json.RawMessage
	if !isJSONObject(e.Data) || json.Unmarshal(e.Data, &body) != nil {
		return env
	}
	data, ok := oldData(e.Type, body)
	if !ok {
		return env
	}
	e.Data = data
	out, err := e.Encode()
	if err != nil {
		return env
	}
	return out
}

// maybeEarlier reports whether env may be of the earlier layout: it holds
// the string "event" (a Stripe event's object) or the name "event_type" (a
// WordPress event's), or its data starts with a member of a Standard
// Webhooks payload. False is certain; true is checked by decoding.
func maybeEarlier(env []byte) bool {
	if bytes.Contains(env, []byte(`"event"`)) || bytes.Contains(env, []byte(`"event_type"`)) {
		return true
	}
	// The first `},"data":` is the envelope's own data member: a string
	// cannot hold an unescaped quote, and actor, subject and action come
	// before it.
	i := bytes.Index(env, []byte(`},"data":`))
	if i < 0 {
		return bytes.Contains(env, []byte(`"timestamp"`)) // another encoder's order: decode to know
	}
	data := bytes.TrimLeft(env[i+len(`},"data":`):], " \t\r\n")
	if len(data) == 0 || data[0] != '{' {
		return false
	}
	data = bytes.TrimLeft(data[1:], " \t\r\n")
	return bytes.HasPrefix(data, []byte(`"type"`)) || bytes.HasPrefix(data, []byte(`"timestamp"`)) || bytes.HasPrefix(data, []byte(`"data"`))
}

// oldData returns the provider object of body, the data of an envelope of
// the earlier layout of type typ, when body has one of the shapes that
// layout stored whole.
func oldData(typ string, body map[string]json.RawMessage) (json.RawMessage, bool) {
	str := func(name string) string {
		var s string
		if json.Unmarshal(body[name], &s) != nil {
			return ""
		}
		return s
	}
	data, hasData := body["data"]
	if !hasData || typ == "" {
		return nil, false
	}
	switch {
	case str("object") == "event" && str("type") == typ && str("id") != "": // Stripe
		return data, true
	case str("event_type") == typ && str("idempotency_key") != "" && isJSONObject(data): // WordPress
		return data, true
	case len(body) == 3 && str("type") == typ && body["timestamp"] != nil && string(data) != "null": // Standard Webhooks
		return data, true
	}
	return nil, false
}
