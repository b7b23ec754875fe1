package relay

import (
	"crypto/rand"
	"encoding/hex"
)

// W3C trace context (https://www.w3.org/TR/trace-context/): an event's
// TraceParent is "00-{32 hex trace id}-{16 hex parent id}-{2 hex flags}".
// Ingress continues a sender's valid traceparent or starts a trace; every
// attempt continues the event's trace with a span id of its own.

// ValidTraceparent reports whether s is a W3C traceparent wprelay can
// continue: version 00, a non-zero 32-hex trace id and 16-hex parent id,
// 2-hex flags, all lower case.
func ValidTraceparent(s string) bool {
	if len(s) != 55 || s[:3] != "00-" || s[35] != '-' || s[52] != '-' {
		return false
	}
	trace, parent := s[3:35], s[36:52]
	if !isLowerHex(trace) || !isLowerHex(parent) || !isLowerHex(s[53:]) {
		return false
	}
	return trace != "00000000000000000000000000000000" && parent != "0000000000000000"
}

// NewTraceparent starts a sampled trace.
func NewTraceparent() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// ChildTraceparent continues the trace of parent with a new span id, or
// starts a new trace when parent is not valid.
func ChildTraceparent(parent string) string {
	if !ValidTraceparent(parent) {
		return NewTraceparent()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return parent[:36] + hex.EncodeToString(b[:]) + parent[52:]
}

// TraceID is the trace id of a traceparent; "" when it is not valid.
func TraceID(traceparent string) string {
	if !ValidTraceparent(traceparent) {
		return ""
	}
	return traceparent[3:35]
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
