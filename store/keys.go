package store

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Key layout. Every time in a key is 8 big-endian bytes of Unix nanoseconds
// (see nanos), so that byte order is time order. Names (event ids, targets,
// index values) are separated from what follows by a 0x00 byte, which they
// may not contain.
//
//	events      id                                → eventRec (JSON)
//	envelopes   id                                → envelope bytes
//	raws        id                                → relay.Raw (JSON)
//	deliveries  id 0x00 target                    → deliveryRec (JSON)
//	due         target 0x00 at id 0x00 target     → ""  (at = next_at, or lease end while in flight)
//	inflight    id 0x00 target                    → lease end (8 bytes)
//	dead        dead_at id 0x00 target            → source
//	keys        idempotency key                   → expiry (8) + body hash (32) + event id
//	keyexp      expiry key                        → ""
//	nonces      nonce                             → expiry (8)
//	nonceexp    expiry nonce                      → ""
//	bytime      received_at id                    → ""
//	bystatus    status 0x00 received_at id        → ""  (likewise bysource, bytenant, bytype)
//	counts      "event/<status>" | "delivery/<status>" → int64 (8)
//	meta        "version"                         → schema version (8)
//
// Version 2 added (see order.go and counters.go):
//
//	requests    id 0x00 target                    → relay.Request (JSON, sealed like envelopes): dry runs
//	subjq       target 0x00 key 0x00 occurred_at id → ""  (ordered deliveries not yet final)
//	subjlast    target 0x00 key                   → occurred_at (8) + id of the newest delivered
//	counters    name                              → count (8) + expiry (8)
//
// Version 3 (records written since; what versions 1 and 2 wrote is still
// read):
//
//	raws        id                                → 0x02 binary record (rawcodec.go), not JSON
//	envelopes   id                                → 0x03 + the envelope up to "data": when it ends with the raw body (envsplice.go)
//	nonceexp    expiry nonce                      → ""  alone: nonces is no longer written
//	bytenant, bytype                              → no entry for an empty tenant or type
//
// Version 4 added rawof and rawsibs (enqueue.go). Version 5 (fewer records
// per event):
//
//	bystatus                                      → no entry for a queued event
//	bysource                                      → entries for result sources ("target:…") only
//	bytenant, bytype                              → no longer written (Events scans bytime)
//	raws        id                                → 0x05 + envelope + raw record, for an event that holds its request's (envsplice.go)
//	envelopes   id                                → only for events without a raw request or sharing another's
//	keyexp      expiry key                        → only for a body key, or a key whose event was pruned first (keywalk.go)
//	meta        "keywalk"                         → bytime position up to which Prune forgot expired keys

// sep separates a name from the rest of a key.
const sep = 0x00

// nanos returns t as Unix nanoseconds for a key: times before 1970 (and the
// zero time) are 0, times after 2262 are the largest value.
func nanos(t time.Time) uint64 {
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	if t.Unix() >= math.MaxInt64/int64(time.Second) {
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

// fromNanos is the inverse of nanos (in UTC; 0 is the zero time).
func fromNanos(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n)).UTC()
}

// u64 returns n as 8 big-endian bytes.
func u64(n uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n)
}

// tkey returns nanos(t) as 8 big-endian bytes.
func tkey(t time.Time) []byte { return u64(nanos(t)) }

// deliveryKey returns the key of the delivery of event id to target.
func deliveryKey(id, target string) []byte {
	k := make([]byte, 0, len(id)+1+len(target))
	k = append(k, id...)
	k = append(k, sep)
	return append(k, target...)
}

// splitDeliveryKey returns the event id and target of a delivery key.
func splitDeliveryKey(k []byte) (id, target string) {
	i := bytes.IndexByte(k, sep)
	if i < 0 {
		return string(k), ""
	}
	return string(k[:i]), string(k[i+1:])
}

// eventPrefix returns the prefix of every delivery key of event id.
func eventPrefix(id string) []byte { return append([]byte(id), sep) }

// namePrefix returns name followed by the separator: the prefix of a
// target's due keys, or of one value's entries in an event index.
func namePrefix(name string) []byte { return append([]byte(name), sep) }

// timedKey returns prefix + 8-byte at + rest: due keys, dead keys, expiry
// keys and event index keys all have this shape.
func timedKey(prefix []byte, at uint64, rest []byte) []byte {
	k := make([]byte, 0, len(prefix)+8+len(rest))
	k = append(k, prefix...)
	k = binary.BigEndian.AppendUint64(k, at)
	return append(k, rest...)
}

// splitTimedKey returns the time and the rest of a key built by timedKey
// with a prefix of length n; ok is false when the key is too short.
func splitTimedKey(k []byte, n int) (at uint64, rest []byte, ok bool) {
	if len(k) < n+8 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(k[n : n+8]), k[n+8:], true
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// errBadCursor is returned for a cursor that this store did not issue.
var errBadCursor = relay.ErrInvalidCursor

// encodeCursor turns a position (an index key without its prefix) into an
// opaque cursor.
func encodeCursor(pos []byte) string { return base64.RawURLEncoding.EncodeToString(pos) }

// decodeCursor is the inverse of encodeCursor. Every position starts with
// an 8-byte time.
func decodeCursor(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 8 {
		return nil, errBadCursor
	}
	return b, nil
}

// putInt64 / getInt64 encode the counters.
func putInt64(n int64) []byte { return u64(uint64(n)) }

func getInt64(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}
