package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A new event's envelope usually ends with its raw body: "data", the
// provider's JSON as received, comes last, and a compact body is copied as
// it is (relay.Envelope.Encode). Storing it twice cost a kilobyte per 1 KiB
// event, so such an envelope is stored up to `"data":` behind a mark and
// read back with the body of the raw record, which is written, sealed,
// resealed and pruned with it:
//
//	0x03 | the envelope up to and including `"data":`   (then the raw body, then '}')
//
// Most kinds' data is a part of the body, not all of it (a Stripe event's
// data member, a WordPress event's data): when those bytes appear in the
// body as they are (a compact body), the envelope is stored up to `"data":`
// with where they start and how long they are:
//
//	0x04 | uvarint offset | uvarint length | the envelope up to and including `"data":`
//
// An envelope whose data is not in the body byte for byte (a pretty-printed
// body is compacted; a HubSpot element loses attemptNumber) is stored whole.
const (
	envSpliced     = 0x03 // not sealMark, rawBinary or '{'
	envSplicedPart = 0x04
)

var dataKey = []byte(`"data":`)

// envData is how the envelope's own data member starts: actor, subject and
// action come before it, and a string cannot hold an unescaped quote, so
// the first match is that member (relay.Envelope.Encode and json.Marshal
// write the fields in that order).
var envData = []byte(`},"data":`)

// spliceEnvelope returns the stored form of env, whose raw request body is
// body.
func spliceEnvelope(env, body []byte) []byte {
	if len(body) == 0 || len(env) == 0 || env[len(env)-1] != '}' {
		return env
	}
	if n := len(env) - len(body) - 1; n >= len(dataKey) && bytes.Equal(env[n:len(env)-1], body) && bytes.HasSuffix(env[:n], dataKey) {
		out := make([]byte, 0, 1+n)
		return append(append(out, envSpliced), env[:n]...)
	}
	k := bytes.Index(env, envData)
	if k < 0 {
		return env
	}
	start := k + len(envData)
	data := env[start : len(env)-1]
	off := bytes.Index(body, data)
	if len(data) < 2 || off < 0 {
		return env
	}
	out := make([]byte, 0, 1+2*binary.MaxVarintLen64+start)
	out = append(out, envSplicedPart)
	out = binary.AppendUvarint(out, uint64(off))
	out = binary.AppendUvarint(out, uint64(len(data)))
	return append(out, env[:start]...)
}

// Since version 5 an event that holds its request's raw record keeps its
// envelope in that record too (one value for what is read together: a
// spliced envelope needs the raw body anyway), so that ingest puts one
// record for both:
//
//	0x05 | uvarint length of the envelope | the envelope as stored above | the raw record
//
// The envelopes bucket keeps the envelopes of events without a raw request
// or sharing another event's, and those written before.
const rawWithEnvelope = 0x05 // not sealMark, rawBinary, envSpliced(Part) or '{'

// joinRawEnvelope returns the raws record holding env (stored form, plain)
// and raw (its raw record, plain).
func joinRawEnvelope(env, raw []byte) []byte {
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(env)+len(raw))
	out = append(out, rawWithEnvelope)
	out = binary.AppendUvarint(out, uint64(len(env)))
	return append(append(out, env...), raw...)
}

// splitRawEnvelope is the inverse of joinRawEnvelope; a raws record of
// another form is all raw, with no envelope.
func splitRawEnvelope(rec []byte) (env, raw []byte, err error) {
	if len(rec) == 0 || rec[0] != rawWithEnvelope {
		return nil, rec, nil
	}
	n, k := binary.Uvarint(rec[1:])
	if k <= 0 || n > uint64(len(rec)-1-k) {
		return nil, nil, errRawRecord
	}
	rest := rec[1+k:]
	return rest[:n], rest[n:], nil
}

// loadEnvelope returns event id's envelope as it was enqueued (nil when it
// has none).
func loadEnvelope(tx *bolt.Tx, sealer *Sealer, id []byte) ([]byte, error) {
	if v := tx.Bucket(bucketEnvelopes).Get(id); v != nil {
		env, err := sealer.Open(bucketEnvelopes, string(id), v)
		if err != nil || len(env) == 0 || env[0] != envSpliced && env[0] != envSplicedPart {
			return env, err
		}
		plain, err := loadRaw(tx, sealer, id)
		if err != nil {
			return nil, err
		}
		return unsplice(id, env, plain)
	}
	v := tx.Bucket(bucketRaws).Get(id)
	if v == nil {
		return nil, nil
	}
	rec, err := sealer.Open(bucketRaws, string(id), v)
	if err != nil {
		return nil, err
	}
	env, raw, err := splitRawEnvelope(rec)
	if err != nil {
		return nil, fmt.Errorf("raw %s: %w", id, err)
	}
	if len(env) == 0 || env[0] != envSpliced && env[0] != envSplicedPart {
		return env, nil
	}
	return unsplice(id, env, raw)
}

// unsplice joins a spliced envelope with the body of raw, its event's raw
// record (plain).
func unsplice(id, env, raw []byte) ([]byte, error) {
	if raw == nil {
		return nil, fmt.Errorf("envelope %s: its raw request, which holds its data, is missing", id)
	}
	body, err := rawBody(raw)
	if err != nil {
		return nil, fmt.Errorf("envelope %s: %w", id, err)
	}
	head := env[1:]
	if env[0] == envSplicedPart {
		off, n1 := binary.Uvarint(head)
		size, n2 := binary.Uvarint(head[max(n1, 0):])
		if n1 <= 0 || n2 <= 0 || off > uint64(len(body)) || size > uint64(len(body))-off {
			return nil, fmt.Errorf("envelope %s: its data is not where its raw request has it", id)
		}
		head, body = head[n1+n2:], body[off:off+size]
	}
	out := make([]byte, 0, len(head)+len(body)+1)
	return append(append(append(out, head...), body...), '}'), nil
}

// rawBody returns the body of a stored raw record without decoding the
// rest.
func rawBody(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0] != rawBinary {
		r, err := decodeRaw(b)
		return r.Body, err
	}
	d := rawDecoder{b: b[1:]}
	d.skip() // method
	d.skip() // path
	for range d.count() {
		d.skip()
		for range d.count() {
			d.skip()
		}
	}
	return d.b, d.err
}

// skip passes over one length-prefixed string.
func (d *rawDecoder) skip() {
	n := d.count()
	if d.err == nil && n > len(d.b) {
		d.err = errRawRecord
	}
	if d.err == nil {
		d.b = d.b[n:]
	}
}
