package store

import (
	"bytes"
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
// An envelope that does not end with the body exactly (a pretty-printed
// body is compacted; one of a batch holds an element) is stored whole.
const envSpliced = 0x03 // not sealMark, rawBinary or '{'

var dataKey = []byte(`"data":`)

// spliceEnvelope returns the stored form of env, whose raw request body is
// body.
func spliceEnvelope(env, body []byte) []byte {
	n := len(env) - len(body) - 1
	if len(body) == 0 || n < len(dataKey) || env[len(env)-1] != '}' ||
		!bytes.Equal(env[n:len(env)-1], body) || !bytes.HasSuffix(env[:n], dataKey) {
		return env
	}
	out := make([]byte, 0, 1+n)
	return append(append(out, envSpliced), env[:n]...)
}

// loadEnvelope returns event id's envelope as it was enqueued (nil when it
// has none).
func loadEnvelope(tx *bolt.Tx, sealer *Sealer, id []byte) ([]byte, error) {
	env, err := sealer.Open(bucketEnvelopes, string(id), tx.Bucket(bucketEnvelopes).Get(id))
	if err != nil || len(env) == 0 || env[0] != envSpliced {
		return env, err
	}
	plain, err := loadRaw(tx, sealer, id)
	if err != nil {
		return nil, err
	}
	if plain == nil {
		return nil, fmt.Errorf("envelope %s: its raw request, which holds its data, is missing", id)
	}
	body, err := rawBody(plain)
	if err != nil {
		return nil, fmt.Errorf("envelope %s: %w", id, err)
	}
	out := make([]byte, 0, len(env)+len(body))
	return append(append(append(out, env[1:]...), body...), '}'), nil
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
