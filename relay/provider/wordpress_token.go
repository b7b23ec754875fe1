// The wordpress kind's token: the bearer JWT, its algorithm and key, its
// claims.

package provider

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wprelay/wprelay/relay"
)

// checkAlgorithm reports why alg cannot be allowed with w's keys.
func (w *WordPress) checkAlgorithm(alg string) error {
	need, ok := wpAlgorithms[alg]
	switch {
	case strings.EqualFold(alg, "none"):
		return errors.New(`"none" is never allowed`)
	case !ok:
		return fmt.Errorf("%q is not supported (known: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA)", alg)
	case need == keyHMAC && w.secret == nil:
		return fmt.Errorf("%s needs jwt_secret", alg)
	case need == keyRSA && w.rsaKey == nil:
		return fmt.Errorf("%s needs an RSA public_key", alg)
	case need == keyEd25519 && w.edKey == nil:
		return fmt.Errorf("%s needs an Ed25519 public_key", alg)
	}
	return nil
}

// parsePublicKey parses a PEM public key (PKIX "PUBLIC KEY", PKCS #1 "RSA
// PUBLIC KEY", or a certificate's key) and checks that it is an RSA key of
// at least 2048 bits or an Ed25519 key.
func parsePublicKey(text string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, errors.New("is a private key; configure the public key only")
		}
		return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", strings.ToLower(block.Type), err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < wpMinRSABits {
			return nil, fmt.Errorf("RSA key is %d bits; need at least %d", n, wpMinRSABits)
		}
		return k, nil
	case ed25519.PublicKey:
		return k, nil
	}
	return nil, fmt.Errorf("%T keys are not supported; want RSA or Ed25519", key)
}

// key is the jwt.Keyfunc: it returns the key matching the token's algorithm
// family, so that a key is never used with an algorithm of another family.
func (w *WordPress) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if w.secret != nil {
			return w.secret, nil
		}
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		if w.rsaKey != nil {
			return w.rsaKey, nil
		}
	case *jwt.SigningMethodEd25519:
		if w.edKey != nil {
			return w.edKey, nil
		}
	}
	return nil, errors.New("no key for this algorithm")
}

// verifyToken checks r's bearer token: signature, algorithm and claims.
func (w *WordPress) verifyToken(r *Request) (*jwt.RegisteredClaims, error) {
	raw, err := bearer(r)
	if err != nil {
		return nil, err
	}
	var c jwt.RegisteredClaims
	tok, err := w.parser.ParseWithClaims(raw, &c, w.keyfunc)
	if err != nil {
		return nil, tokenError(tok, err, w.algs)
	}
	if _, ok := tok.Header["crit"]; ok {
		// RFC 7515 4.1.11: extensions listed in crit must be understood;
		// this receiver understands none (golang-jwt ignores crit).
		return nil, fmt.Errorf("%w: the header's crit names extensions this receiver does not support", relay.ErrInvalidToken)
	}
	if err := numericDates(raw); err != nil {
		return nil, err
	}
	if err := w.checkClaims(&c, now(r)); err != nil {
		return nil, err
	}
	return &c, nil
}

// bearer returns the token of r's "Authorization: Bearer" header.
func bearer(r *Request) (string, error) {
	auth := header(r.Header, authorizationHeader)
	const scheme = "bearer "
	if len(auth) <= len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return "", fmt.Errorf("%w: missing bearer token", relay.ErrInvalidToken)
	}
	tok := strings.TrimSpace(auth[len(scheme):])
	for i := 0; i < len(tok); i++ {
		// A compact JWS is base64url segments joined by dots. Anything
		// else is refused here: Go's base64 decoder skips \r and \n, so
		// a token with one inserted would otherwise verify as the token
		// without it.
		if c := tok[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", fmt.Errorf("%w: malformed bearer token", relay.ErrInvalidToken)
		}
	}
	return tok, nil
}

// tokenError turns a jwt parse error into relay.ErrInvalidToken with a
// short reason of ours: the library's messages may quote the token.
func tokenError(tok *jwt.Token, err error, algs []string) error {
	reason := "bad token"
	switch {
	case tok != nil && tok.Method != nil && !slices.Contains(algs, tok.Method.Alg()):
		// Method is set only for registered algorithms, so Alg is one of
		// a fixed set of names, never text from the token.
		reason = fmt.Sprintf("algorithm %s not allowed", tok.Method.Alg())
	case errors.Is(err, jwt.ErrTokenMalformed):
		reason = "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		reason = "unsupported or missing algorithm"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = "token signature does not match"
	}
	return fmt.Errorf("%w: %s", relay.ErrInvalidToken, reason)
}

// checkClaims checks the claims of a token whose signature is valid.
func (w *WordPress) checkClaims(c *jwt.RegisteredClaims, now time.Time) error {
	bad := func(reason string) error { return fmt.Errorf("%w: %s", relay.ErrInvalidToken, reason) }
	switch {
	case strings.TrimSuffix(c.Issuer, "/") != w.issuer:
		return bad("wrong issuer")
	case !slices.Contains(c.Audience, wpAudience):
		return bad(`audience does not contain "wprelay"`)
	case c.ExpiresAt == nil:
		return bad("missing exp")
	case c.IssuedAt == nil:
		return bad("missing iat")
	case c.ID == "":
		return bad("missing jti")
	case len(c.ID) > wpMaxJTI:
		return bad("jti too long")
	}
	exp, iat := c.ExpiresAt.Time, c.IssuedAt.Time
	switch {
	case exp.Before(iat):
		return bad("exp before iat")
	case exp.Sub(iat) > wpMaxLifetime:
		return bad("lifetime (exp - iat) over 300s")
	case now.After(exp.Add(wpLeeway)):
		return bad("token expired")
	case iat.After(now.Add(wpLeeway)):
		return bad("token issued in the future")
	case c.NotBefore != nil && c.NotBefore.After(now.Add(wpLeeway)):
		return bad("token not valid yet")
	}
	return nil
}

// numericDates refuses exp, iat and nbf claims that are not JSON numbers:
// golang-jwt reads "exp":"1764324300" (a string) as a date, while RFC 7519
// makes a NumericDate a number. raw's signature has been verified.
func numericDates(raw string) error {
	parts := strings.Split(raw, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]json.RawMessage
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		return fmt.Errorf("%w: malformed token", relay.ErrInvalidToken)
	}
	for _, name := range []string{"exp", "iat", "nbf"} {
		if v, ok := claims[name]; ok && (len(v) == 0 || !(v[0] == '-' || v[0] >= '0' && v[0] <= '9')) {
			return fmt.Errorf("%w: claim %s is not a number (a NumericDate: seconds since 1970)", relay.ErrInvalidToken, name)
		}
	}
	return nil
}
