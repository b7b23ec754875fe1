package provider

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"

	"github.com/google/uuid"
)

// Signer is implemented by every kind: the provider's side of Verify, for
// the sign command and for tests. Sign sets on r the headers the provider
// would send with r.Body at r.Now, signed with key (what Key returns for
// the secret). Id headers the caller already set are kept; missing ones get
// fresh random values, as the provider would make. typ is the event type
// for kinds that send it in a header (GitHub's event, Shopify's and
// WooCommerce's topic); the others read it from the body and ignore typ.
type Signer interface {
	Sign(r *Request, key []byte, typ string) error
}

// setDefault sets h[key] (canonical) to v() unless it has a value.
func setDefault(h http.Header, key string, v func() string) {
	if header(h, key) == "" {
		h[key] = []string{v()}
	}
}

// newUUID returns a random (version 4) UUID.
func newUUID() string { return uuid.NewString() }

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// b64 is the standard, padded base64 of b.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// hexString is the lower-case hex of b.
func hexString(b []byte) string { return hex.EncodeToString(b) }
