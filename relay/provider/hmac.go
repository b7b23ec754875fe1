package provider

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// HMAC verifies webhooks of any sender that signs with HMAC-SHA256, as
// configured by Options.HMAC: the signature header and its prefix, the
// encoding (hex or base64), the signed template built from {body},
// {timestamp} and {nonce}, and where the event id and type are found.
// Keys are the secret's bytes.
//
// When a timestamp header is configured its value (unix seconds, or
// milliseconds when above 1e12) must be within the tolerance of the
// request's time, whether or not the template signs it; configure a
// template that uses {timestamp} for that check to mean anything.
type HMAC struct {
	header      string // canonical
	prefix      string
	base64      bool
	template    []segment
	tsHeader    string // canonical; "" when not configured
	nonceHeader string // canonical; "" when not configured
	idHeader    string // canonical
	idPath      []string
	typePath    []string
	tolerance   time.Duration
}

var _ Verifier = (*HMAC)(nil)

// segment is one piece of a compiled hmac template: literal bytes or a
// placeholder.
type segment struct {
	kind segmentKind
	lit  []byte // for segLiteral
}

type segmentKind uint8

const (
	segLiteral segmentKind = iota
	segBody
	segTimestamp
	segNonce
)

// msTimestamp is the value above which an hmac timestamp is taken to be in
// milliseconds rather than seconds (1e12 s is the year 33658; 1e12 ms is
// September 2001).
const msTimestamp = 1e12

// NewHMAC returns a generic HMAC verifier configured by o.HMAC and
// o.Tolerance. It reports an error naming the option when o.HMAC is
// incomplete or inconsistent: no header, an unknown encoding, a template
// without {body} or with an unknown placeholder, {timestamp} or {nonce}
// without the header that carries it, both id_header and id_path, or a
// malformed JSON path.
func NewHMAC(o Options) (*HMAC, error) {
	c := o.HMAC
	tol, err := tolerance(o)
	if err != nil {
		return nil, fmt.Errorf("hmac: %w", err)
	}
	v := &HMAC{prefix: c.Prefix, tolerance: tol}
	if v.header, err = headerOption("hmac.header", c.Header); err != nil {
		return nil, err
	}
	if v.header == "" {
		return nil, errors.New("hmac.header is required")
	}
	switch c.Encoding {
	case "", "hex":
	case "base64":
		v.base64 = true
	default:
		return nil, fmt.Errorf("hmac.encoding %q: want hex or base64", c.Encoding)
	}
	tmpl := c.Template
	if tmpl == "" {
		tmpl = "{body}"
	}
	if v.template, err = compileTemplate(tmpl); err != nil {
		return nil, fmt.Errorf("hmac.template %q: %w", tmpl, err)
	}
	if v.tsHeader, err = headerOption("hmac.timestamp_header", c.TimestampHeader); err != nil {
		return nil, err
	}
	if v.nonceHeader, err = headerOption("hmac.nonce_header", c.NonceHeader); err != nil {
		return nil, err
	}
	if v.idHeader, err = headerOption("hmac.id_header", c.IDHeader); err != nil {
		return nil, err
	}
	for _, s := range v.template {
		switch {
		case s.kind == segTimestamp && v.tsHeader == "":
			return nil, fmt.Errorf("hmac.template %q uses {timestamp} but hmac.timestamp_header is not set", tmpl)
		case s.kind == segNonce && v.nonceHeader == "":
			return nil, fmt.Errorf("hmac.template %q uses {nonce} but hmac.nonce_header is not set", tmpl)
		}
	}
	if c.IDHeader != "" && c.IDPath != "" {
		return nil, errors.New("hmac.id_header and hmac.id_path are both set; set one")
	}
	if v.idPath, err = pathOption("hmac.id_path", c.IDPath); err != nil {
		return nil, err
	}
	if v.typePath, err = pathOption("hmac.type_path", c.TypePath); err != nil {
		return nil, err
	}
	return v, nil
}

// compileTemplate splits t into literal text and {body}, {timestamp} and
// {nonce} placeholders. t must use {body}; any other "{name}" is an error.
func compileTemplate(t string) ([]segment, error) {
	var segs []segment
	var lit []byte
	hasBody := false
	for i := 0; i < len(t); {
		if t[i] == '{' {
			if end := strings.IndexByte(t[i:], '}'); end > 0 && isPlaceholderName(t[i+1:i+end]) {
				var k segmentKind
				switch name := t[i+1 : i+end]; name {
				case "body":
					k, hasBody = segBody, true
				case "timestamp":
					k = segTimestamp
				case "nonce":
					k = segNonce
				default:
					return nil, fmt.Errorf("unknown placeholder {%s} (known: {body}, {timestamp}, {nonce})", name)
				}
				if len(lit) > 0 {
					segs = append(segs, segment{kind: segLiteral, lit: lit})
					lit = nil
				}
				segs = append(segs, segment{kind: k})
				i += end + 1
				continue
			}
		}
		lit = append(lit, t[i])
		i++
	}
	if len(lit) > 0 {
		segs = append(segs, segment{kind: segLiteral, lit: lit})
	}
	if !hasBody {
		return nil, errors.New("does not use {body}")
	}
	return segs, nil
}

// isPlaceholderName reports whether s looks like a placeholder name: one or
// more lower-case letters, digits or underscores.
func isPlaceholderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// headerOption checks that name (may be empty) is a valid HTTP header name
// and returns its canonical form.
func headerOption(option, name string) (string, error) {
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return "", fmt.Errorf("%s %q: not a valid header name", option, name)
		}
	}
	return http.CanonicalHeaderKey(name), nil
}

// isTokenChar reports whether c may appear in an HTTP header name (an RFC
// 9110 token).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// pathOption splits a dotted JSON path (may be empty) into its segments.
func pathOption(option, path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	segs := strings.Split(path, ".")
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("%s %q: empty segment", option, path)
		}
	}
	return segs, nil
}

// Key returns the secret's bytes.
func (v *HMAC) Key(secret string) ([]byte, error) { return literalKey(secret) }

// Verify checks r's signature header against the configured template signed
// with each of keys, then the timestamp header (when configured) against the
// tolerance. A missing or garbled header, or no match, is
// relay.ErrBadSignature; a timestamp outside the tolerance of r.Now is
// relay.ErrStaleTimestamp.
func (v *HMAC) Verify(r *Request, keys [][]byte) error {
	h := header(r.Header, v.header)
	if h == "" {
		return fmt.Errorf("%w: missing %s header", relay.ErrBadSignature, v.header)
	}
	enc, ok := strings.CutPrefix(h, v.prefix)
	var got [macSize]byte
	if ok {
		if v.base64 {
			ok = decodeBase64MAC(&got, enc)
		} else {
			ok = decodeHexMAC(&got, enc)
		}
	}
	if !ok {
		return fmt.Errorf("%w: garbled %s header", relay.ErrBadSignature, v.header)
	}
	var ts, nonce string
	var at time.Time
	if v.tsHeader != "" {
		ts = header(r.Header, v.tsHeader)
		n, ok := parseUnix(ts)
		if !ok {
			return fmt.Errorf("%w: missing or malformed %s header", relay.ErrBadSignature, v.tsHeader)
		}
		at = unixOrMilli(n)
	}
	if v.nonceHeader != "" {
		if nonce = header(r.Header, v.nonceHeader); nonce == "" {
			return fmt.Errorf("%w: missing %s header", relay.ErrBadSignature, v.nonceHeader)
		}
	}
	for _, key := range keys {
		if equalMAC(v.sign(key, r.Body, ts, nonce), &got) {
			if v.tsHeader == "" {
				return nil
			}
			return checkTime(now(r), at, v.tolerance)
		}
	}
	return fmt.Errorf("%w: signature does not match", relay.ErrBadSignature)
}

// sign returns the HMAC-SHA256 of the template filled with body, ts and
// nonce.
func (v *HMAC) sign(key, body []byte, ts, nonce string) []byte {
	m := hmac.New(sha256.New, key)
	for _, s := range v.template {
		switch s.kind {
		case segLiteral:
			m.Write(s.lit)
		case segBody:
			m.Write(body)
		case segTimestamp:
			m.Write([]byte(ts))
		case segNonce:
			m.Write([]byte(nonce))
		}
	}
	return m.Sum(nil)
}

// unixOrMilli reads n as unix seconds, or as milliseconds when it is above
// msTimestamp.
func unixOrMilli(n int64) time.Time {
	if n > msTimestamp {
		return time.UnixMilli(n)
	}
	return time.Unix(n, 0)
}

// Parse returns the event of a verified request. ID is the id_header value
// or the string or number at id_path ("" when absent: the caller then keys
// on a hash of the body); Type is the string at type_path, or "".
// OccurredAt is the timestamp header when one is configured. A body that is
// not JSON is relay.ErrInvalidJSON.
func (v *HMAC) Parse(r *Request) (*Parsed, error) {
	if !json.Valid(r.Body) {
		return nil, relay.ErrInvalidJSON
	}
	it := Item{Body: r.Body}
	switch {
	case v.idHeader != "":
		it.ID = header(r.Header, v.idHeader)
	case v.idPath != nil:
		it.ID = lookupPath(r.Body, v.idPath)
	}
	if v.typePath != nil {
		it.Type = lookupPath(r.Body, v.typePath)
	}
	if v.tsHeader != "" {
		if n, ok := parseUnix(header(r.Header, v.tsHeader)); ok {
			it.OccurredAt = unixOrMilli(n).UTC()
		}
	}
	// An id from a header is not signed: the body's hash keys it too.
	return &Parsed{Items: []Item{it}, BodyKeys: v.idHeader != ""}, nil
}

// lookupPath returns the value at path in the JSON document doc: a string's
// value or a number's text, else "". A segment indexes an object by key, or
// an array by a decimal index.
func lookupPath(doc []byte, path []string) string {
	raw := json.RawMessage(doc)
	for _, seg := range path {
		raw = bytes.TrimLeft(raw, " \t\r\n")
		if len(raw) == 0 {
			return ""
		}
		switch raw[0] {
		case '{':
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) != nil {
				return ""
			}
			raw = obj[seg]
		case '[':
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 {
				return ""
			}
			var arr []json.RawMessage
			if json.Unmarshal(raw, &arr) != nil || i >= len(arr) {
				return ""
			}
			raw = arr[i]
		default:
			return ""
		}
	}
	raw = bytes.TrimSpace(raw)
	if s, ok := jsonString(raw); ok {
		return s
	}
	if len(raw) > 0 && (raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9') {
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
	}
	return ""
}

// Sign sets the configured headers: the timestamp (now, unix seconds), the
// nonce and the id (fresh unless set), and the signature of the template.
func (v *HMAC) Sign(r *Request, key []byte, typ string) error {
	var ts, nonce string
	if v.tsHeader != "" {
		ts = strconv.FormatInt(now(r).Unix(), 10)
		r.Header[v.tsHeader] = []string{ts}
	}
	if v.nonceHeader != "" {
		setDefault(r.Header, v.nonceHeader, func() string { return randomHex(16) })
		nonce = header(r.Header, v.nonceHeader)
	}
	if v.idHeader != "" {
		setDefault(r.Header, v.idHeader, newUUID)
	}
	sum := v.sign(key, r.Body, ts, nonce)
	enc := hexString(sum)
	if v.base64 {
		enc = b64(sum)
	}
	r.Header[v.header] = []string{v.prefix + enc}
	return nil
}
