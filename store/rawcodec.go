package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"

	"github.com/wprelay/wprelay/relay"
)

// Raw requests are stored in a small binary form rather than JSON: the body
// is kept as it came (JSON would base64 it, a third larger), and encoding
// costs a copy rather than a reflection walk. Records written before (JSON,
// starting with '{') are still read.
//
//	0x02 method path nheaders (name nvalues value…)… body
//
// where every string is a uvarint length and its bytes, counts are
// uvarints, and the body is the rest of the record.
const rawBinary = 0x02 // not sealMark (0x01), not JSON

var errRawRecord = errors.New("malformed raw record")

// encodeRaw returns r's stored form.
func encodeRaw(r *relay.Raw) []byte {
	n := 1 + 2*binary.MaxVarintLen32 + len(r.Method) + len(r.Path) + binary.MaxVarintLen32 + len(r.Body)
	for k, vs := range r.Header {
		n += 2*binary.MaxVarintLen32 + len(k)
		for _, v := range vs {
			n += binary.MaxVarintLen32 + len(v)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, rawBinary)
	b = appendString(b, r.Method)
	b = appendString(b, r.Path)
	b = binary.AppendUvarint(b, uint64(len(r.Header)))
	for k, vs := range r.Header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return append(b, r.Body...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decodeRaw is the inverse of encodeRaw; it also reads the JSON records of
// earlier versions.
func decodeRaw(b []byte) (relay.Raw, error) {
	var r relay.Raw
	if len(b) > 0 && b[0] == '{' {
		err := json.Unmarshal(b, &r)
		return r, err
	}
	if len(b) == 0 || b[0] != rawBinary {
		return r, errRawRecord
	}
	d := rawDecoder{b: b[1:]}
	r.Method, r.Path = d.string(), d.string()
	nh := d.count()
	r.Header = make(map[string][]string, min(nh, 64))
	for range nh {
		k := d.string()
		nv := d.count()
		vs := make([]string, 0, min(nv, 16))
		for range nv {
			vs = append(vs, d.string())
		}
		if d.err != nil {
			break
		}
		r.Header[k] = vs
	}
	if d.err != nil {
		return relay.Raw{}, d.err
	}
	r.Body = append([]byte{}, d.b...)
	return r, nil
}

type rawDecoder struct {
	b   []byte
	err error
}

func (d *rawDecoder) count() int {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)) {
		d.err = errRawRecord
		return 0
	}
	d.b = d.b[k:]
	return int(n)
}

func (d *rawDecoder) string() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	if n > len(d.b) {
		d.err = errRawRecord
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
