package relay

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// The envelope is written on every ingest, so it is encoded by hand rather
// than through encoding/json's reflection and its second scan of data. The
// bytes are the same as json.Marshal's (HTML-safe escaping included);
// TestEnvelope_Encode and FuzzEnvelopeEncode hold the two to that.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does:
// quote, backslash and control characters, <, > and & (HTML-safe), U+2028
// and U+2029, and invalid UTF-8 as U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCompact appends src, a valid JSON object or array, without
// insignificant whitespace and with <, >, &, U+2028 and U+2029 in strings
// escaped: the bytes json.Marshal writes for a json.RawMessage. It does not
// validate src; ok is false when src is not an object or array or is
// visibly broken (unbalanced, an unterminated string, something after the
// end), and dst is then returned unchanged.
func appendCompact(dst, src []byte) (_ []byte, ok bool) {
	orig := len(dst)
	depth, inString, escaped, done := 0, false, false, false
	start := 0
	for i := 0; i < len(src); i++ {
		if inString && !escaped {
			for i < len(src) && plainInString[src[i]] {
				i++ // the bulk of a body: string bytes copied as they are
			}
			if i == len(src) {
				break
			}
		}
		c := src[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			case c == '<' || c == '>' || c == '&':
				dst = append(dst, src[start:i]...)
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				start = i + 1
			case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
				dst = append(dst, src[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xf])
				i += 2
				start = i + 1
			}
			continue
		}
		if isSpace(c) {
			dst = append(dst, src[start:i]...)
			start = i + 1
			continue
		}
		if done || depth == 0 && c != '{' && c != '[' {
			return dst[:orig], false // something outside the one object or array
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			done = depth == 0
		}
	}
	if !done || inString {
		return dst[:orig], false
	}
	return append(dst, src[start:]...), true
}

// plainInString marks the bytes appendCompact copies inside a string
// without a second look.
var plainInString = func() (t [256]bool) {
	for c := range t {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != 0xE2
	}
	return t
}()

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendTime appends t as json.Marshal does (RFC 3339 with nanoseconds).
func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// Encode returns the envelope's JSON: the bytes json.Marshal(e) gives.
// e.Data must be valid JSON, as every verifier's Parse hands it over: an
// object or array is copied without a full validation (use json.Marshal for
// data from elsewhere); anything else goes through encoding/json.
func (e *Envelope) Encode() ([]byte, error) {
	n := 256 + len(e.ID) + len(e.Source) + len(e.Tenant) + len(e.Type) + len(e.IdempotencyKey) + len(e.CausationID) +
		len(e.Actor.ID) + len(e.Actor.Email) + len(e.Subject.ID) + len(e.Subject.Type) + len(e.Action.Type) + len(e.Action.Reason) + len(e.Data)
	dst := make([]byte, 0, n)
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, e.Source)
	dst = append(dst, `,"tenant":`...)
	dst = appendString(dst, e.Tenant)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, e.Type)
	dst = append(dst, `,"idempotency_key":`...)
	dst = appendString(dst, e.IdempotencyKey)
	dst = append(dst, `,"occurred_at":`...)
	dst = appendTime(dst, e.OccurredAt)
	dst = append(dst, `,"received_at":`...)
	dst = appendTime(dst, e.ReceivedAt)
	if e.CausationID != "" {
		dst = append(dst, `,"causation_id":`...)
		dst = appendString(dst, e.CausationID)
	}
	dst = append(dst, `,"actor":{"id":`...)
	dst = appendString(dst, e.Actor.ID)
	dst = append(dst, `,"email":`...)
	dst = appendString(dst, e.Actor.Email)
	dst = append(dst, `},"subject":{"id":`...)
	dst = appendString(dst, e.Subject.ID)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, e.Subject.Type)
	dst = append(dst, `},"action":{"type":`...)
	dst = appendString(dst, e.Action.Type)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, e.Action.Reason)
	dst = append(dst, `},"data":`...)
	var ok bool
	if dst, ok = appendCompact(dst, e.Data); !ok {
		// A scalar, null or broken data: encoding/json validates it.
		data, err := json.Marshal(e.Data)
		if err != nil {
			return nil, err
		}
		dst = append(dst, data...)
	}
	return append(dst, '}'), nil
}
