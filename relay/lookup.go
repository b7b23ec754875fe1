package relay

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// envView is what routing reads of an event's envelope: the typed value
// when the caller holds it (ingress, result events: no decoding but of
// data, and only when a condition looks into it), else the encoded
// envelope, decoded once on first use.
type envView struct {
	env *Envelope       // nil: read raw
	raw json.RawMessage // the encoded envelope

	m           map[string]any // raw decoded (DecodeEnvelope)
	mDone       bool
	data        any // env.Data decoded as DecodeEnvelope would
	dataFound   bool
	dataDecoded bool
}

// lookup returns the value at a dotted path as Lookup over
// DecodeEnvelope(raw) would.
func (v *envView) lookup(path string) (any, bool) {
	if v.env != nil {
		first, rest, nested := strings.Cut(path, ".")
		e := v.env
		switch first {
		case "id", "source", "tenant", "type", "idempotency_key", "causation_id", "occurred_at", "received_at":
			if nested {
				return nil, false // a string has no fields
			}
			switch first {
			case "id":
				return e.ID, true
			case "source":
				return e.Source, true
			case "tenant":
				return e.Tenant, true
			case "type":
				return e.Type, true
			case "idempotency_key":
				return e.IdempotencyKey, true
			case "causation_id":
				if e.CausationID == "" {
					return nil, false // omitempty
				}
				return e.CausationID, true
			case "occurred_at":
				return jsonTime(e.OccurredAt), true
			default:
				return jsonTime(e.ReceivedAt), true
			}
		case "actor", "subject", "action":
			if !nested {
				break // an object: the generic path below
			}
			var f map[string]string
			switch first {
			case "actor":
				f = map[string]string{"id": e.Actor.ID, "email": e.Actor.Email}
			case "subject":
				f = map[string]string{"id": e.Subject.ID, "type": e.Subject.Type}
			default:
				f = map[string]string{"type": e.Action.Type, "reason": e.Action.Reason}
			}
			if s, ok := f[rest]; ok {
				return s, true
			}
			return nil, false
		case "data":
			if !v.dataDecoded {
				v.dataDecoded = true
				v.data, v.dataFound = decodeValue(e.Data)
			}
			if !nested {
				return v.data, v.dataFound
			}
			if !v.dataFound {
				return nil, false
			}
			return Lookup(v.data, rest)
		}
	}
	if !v.mDone {
		v.mDone = true
		v.m = DecodeEnvelope(v.raw)
	}
	if v.m == nil {
		return nil, false
	}
	return Lookup(v.m, path)
}

// subjectKey is SubjectKey of the envelope.
func (v *envView) subjectKey() string {
	if v.env != nil {
		return subjectKey(v.env.Subject)
	}
	return SubjectKey(v.raw)
}

// holds reports whether every condition holds.
func (v *envView) holds(conds []Condition) bool {
	for _, c := range conds {
		val, found := v.lookup(c.Path)
		if !c.holds(val, found) {
			return false
		}
	}
	return true
}

// decodeValue decodes a JSON value keeping numbers as json.Number;
// found is false when data is empty or not JSON (as a missing member).
func decodeValue(data json.RawMessage) (any, bool) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out any
	if dec.Decode(&out) != nil {
		return nil, false
	}
	return out, true
}

// jsonTime is t as the encoded envelope holds it.
func jsonTime(t time.Time) string { return t.Format(time.RFC3339Nano) }
