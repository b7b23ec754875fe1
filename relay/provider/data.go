package provider

import "encoding/json"

// The envelope's "data" is the provider's object: what a route's where and a
// target's template address, the same for every event of a kind.
//
//	stripe                                   the event's "data" member (object, previous_attributes)
//	wordpress                                the event's "data"
//	standard                                 the body's "data" when the body is {type, timestamp, data}, else the body
//	github, shopify, woocommerce, slack, hmac the body (Slack's form posts as the JSON they carry)
//	hubspot                                  the batch element
//
// The rest of the provider's event (its id, type and time) is in the
// envelope's idempotency_key, type and occurred_at.

// EnvelopeData returns the item's provider object: Data, or Body when Data
// is not set.
func (it *Item) EnvelopeData() json.RawMessage {
	if it.Data != nil {
		return it.Data
	}
	return it.Body
}

// DataOf returns the provider object of body, one event of a source of kind
// (a validated JSON value), as the kind's Parse sets Item.Data.
func DataOf(kind string, body []byte) json.RawMessage {
	switch kind {
	case "stripe", "wordpress":
		return memberOrNull(body, "data")
	case "standard":
		return standardData(body)
	}
	return body
}

// memberOrNull returns the raw member name of obj, or null when obj has
// none.
func memberOrNull(obj []byte, name string) json.RawMessage {
	var v []byte
	members(obj, func(k, val []byte) {
		if keyIs(k, name) {
			v = val
		}
	})
	if v == nil {
		return json.RawMessage("null")
	}
	return v
}

// standardData returns the "data" member of a Standard Webhooks payload
// that has exactly the members type, timestamp and data (the payload
// structure the specification recommends), else body: a body with other
// members keeps them.
func standardData(body []byte) json.RawMessage {
	var data []byte
	n, other := 0, false
	members(body, func(k, v []byte) {
		switch {
		case keyIs(k, "data"):
			data = v
			n++
		case keyIs(k, "type"), keyIs(k, "timestamp"):
			n++
		default:
			other = true
		}
	})
	if data == nil || isNull(data) || other || n != 3 {
		return body
	}
	return data
}
