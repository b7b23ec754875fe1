package deliver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer mints one short-lived JWT per attempt and the Standard Webhooks
// signature of a request body.
type Signer struct {
	JWTSecret  []byte        // HS256; nil = no Authorization header
	Audience   string        // aud claim
	TTL        time.Duration // exp - iat; at most 300 s
	SigningKey []byte        // Standard Webhooks key (decoded whsec_); nil = unsigned
}

// Sign sets Authorization and webhook-* headers on h for body, as of now.
// id is the Idempotency-Key (also the webhook-id).
func (s *Signer) Sign(h http.Header, id string, body []byte, now time.Time) error {
	if s.JWTSecret != nil {
		tok, err := s.Token(now)
		if err != nil {
			return err
		}
		h.Set("Authorization", "Bearer "+tok)
	}
	if s.SigningKey != nil {
		ts := strconv.FormatInt(now.Unix(), 10)
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", "v1,"+StandardSignature(s.SigningKey, id, ts, body))
	}
	return nil
}

// Token returns a signed HS256 JWT: iss "wprelay", aud, iat, exp, and a
// fresh jti.
func (s *Signer) Token(now time.Time) (string, error) {
	ttl := s.TTL
	if ttl <= 0 || ttl > 300*time.Second {
		ttl = 300 * time.Second
	}
	claims := jwt.RegisteredClaims{
		Issuer:    "wprelay",
		Audience:  jwt.ClaimStrings{s.Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        randomHex(16),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.JWTSecret)
}

// StandardSignature returns base64(HMAC-SHA256(key, "{id}.{ts}.{body}")).
func StandardSignature(key []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
