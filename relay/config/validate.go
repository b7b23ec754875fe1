package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay/provider"
)

// FieldError is one problem with one field. It never holds a secret's value.
type FieldError struct {
	Field string // e.g. "sources[1].kind"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks the whole configuration and reports every problem it
// finds, each naming its field, joined with errors.Join.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if _, err := net.ResolveTCPAddr("tcp", c.Listen); err != nil || c.Listen == "" {
		bad("listen", "%q is not a host:port address, e.g. \":8080\"", c.Listen)
	}
	if c.Admin.Listen != "" && c.Admin.Listen != "off" {
		if _, err := net.ResolveTCPAddr("tcp", c.Admin.Listen); err != nil {
			bad("admin.listen", "%q is not a host:port address, e.g. \"127.0.0.1:8081\"", c.Admin.Listen)
		}
		if c.Admin.Token == "" {
			bad("admin.token", "required: set it to ${WPRELAY_ADMIN_TOKEN} and export a long random value (wprelay init makes one)")
		} else if len(c.Admin.Token) < 16 {
			bad("admin.token", "too short (%d characters): use at least 16 random characters", len(c.Admin.Token))
		}
	}
	if c.DataDir == "" {
		bad("data_dir", "required")
	}
	switch c.Store.Kind {
	case "bbolt":
	case "mysql":
		bad("store.kind", "mysql is not available in this build; use bbolt")
	default:
		bad("store.kind", "unknown store %q (use bbolt)", c.Store.Kind)
	}
	switch c.Store.Commit {
	case "", "loop", "batch", "single":
	default:
		bad("store.commit", "unknown commit mode %q (use loop, batch or single)", c.Store.Commit)
	}
	switch c.Log.Format {
	case "", "auto", "text", "json":
	default:
		bad("log.format", "unknown format %q (use auto, text or json)", c.Log.Format)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		bad("log.level", "unknown level %q (use debug, info, warn or error)", c.Log.Level)
	}
	if c.Limits.MaxBody <= 0 {
		bad("limits.max_body", "must be positive (bytes), got %d", c.Limits.MaxBody)
	}
	if c.Limits.MaxQueue <= 0 {
		bad("limits.max_queue", "must be positive, got %d", c.Limits.MaxQueue)
	}
	if c.Limits.IPRate < 0 || c.Limits.SourceRate < 0 {
		bad("limits", "rates must be 0 (off) or positive")
	}
	for i, a := range c.TrustedProxies {
		if _, err := ParsePrefix(a); err != nil {
			bad(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an address or CIDR", a)
		}
	}
	if c.HTTP.ReadHeaderTimeout <= 0 || c.HTTP.ReadTimeout <= 0 || c.HTTP.WriteTimeout <= 0 || c.HTTP.IdleTimeout <= 0 {
		bad("http", "timeouts must be positive (an unbounded timeout lets slow clients pin connections)")
	}
	if c.HTTP.MaxHeaderBytes < 4096 {
		bad("http.max_header_bytes", "%d is too small: use at least 4096", c.HTTP.MaxHeaderBytes)
	}
	ids := map[string]bool{}
	for i, k := range c.Encryption.Keys {
		f := fmt.Sprintf("encryption.keys[%d]", i)
		if k.ID == "" || len(k.ID) > 64 {
			bad(f+".id", "required, at most 64 characters (e.g. the date it was made: 2026-11)")
		} else if ids[k.ID] {
			bad(f+".id", "duplicate key id %q", k.ID)
		}
		ids[k.ID] = true
		if _, err := DecodeKey(k.Key); err != nil {
			bad(f+".key", "%v", err)
		}
	}
	if c.Tracing.SampleRatio < 0 || c.Tracing.SampleRatio > 1 {
		bad("tracing.sample_ratio", "must be between 0 and 1")
	}
	if e := c.Tracing.OTLPEndpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("tracing.otlp_endpoint", "%q is not an http(s) URL such as http://127.0.0.1:4318", e)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "set both cert_file and key_file, or neither")
	}
	if c.Retention.Dedupe.D() < 24*time.Hour {
		bad("retention.dedupe", "%s is too short: providers retry for days (Stripe: 3 days); use at least 24h", c.Retention.Dedupe.D())
	}
	if c.Retention.Events.D() < c.Retention.Dedupe.D() {
		bad("retention.events", "must be at least retention.dedupe (%s)", c.Retention.Dedupe.D())
	}
	if len(c.Sources) == 0 {
		bad("sources", "at least one source is required")
	}

	sources := map[string]*Source{}
	for i := range c.Sources {
		s := &c.Sources[i]
		f := fmt.Sprintf("sources[%d]", i)
		if !nameRE.MatchString(s.Name) {
			bad(f+".name", "%q must be lower-case letters, digits, - or _ (it is the URL path /hooks/{name})", s.Name)
		} else if sources[s.Name] != nil {
			bad(f+".name", "duplicate source %q", s.Name)
		}
		sources[s.Name] = s
		if !slices.Contains(provider.Kinds(), s.Kind) {
			bad(f+".kind", "unknown kind %q (known: %s)", s.Kind, strings.Join(provider.Kinds(), ", "))
			continue
		}
		v, err := provider.New(s.ProviderOptions())
		if err != nil {
			bad(f, "%v", err)
			continue
		}
		if len(s.Secrets) == 0 && len(s.Tenants) == 0 {
			bad(f+".secrets", "source %q has no secrets: set secrets, or tenants with secrets", s.Name)
		}
		checkSecrets := func(field string, secrets []Secret) {
			for j, sec := range secrets {
				if sec == "" {
					bad(fmt.Sprintf("%s[%d]", field, j), "empty secret")
				} else if _, err := v.Key(sec.Reveal()); err != nil {
					bad(fmt.Sprintf("%s[%d]", field, j), "%v", err)
				}
			}
		}
		checkSecrets(f+".secrets", s.Secrets)
		tenants := map[string]bool{}
		for j, t := range s.Tenants {
			tf := fmt.Sprintf("%s.tenants[%d]", f, j)
			if !nameRE.MatchString(t.Name) {
				bad(tf+".name", "%q must be lower-case letters, digits, - or _", t.Name)
			} else if tenants[t.Name] {
				bad(tf+".name", "duplicate tenant %q", t.Name)
			}
			tenants[t.Name] = true
			if len(t.Secrets) == 0 {
				bad(tf+".secrets", "tenant %q has no secrets", t.Name)
			}
			checkSecrets(tf+".secrets", t.Secrets)
		}
		if s.Tolerance < 0 {
			bad(f+".tolerance", "must not be negative")
		}
		if s.MaxBody < 0 {
			bad(f+".max_body", "must not be negative")
		}
		for j, a := range s.AllowIPs {
			if _, err := ParsePrefix(a); err != nil {
				bad(fmt.Sprintf("%s.allow_ips[%d]", f, j), "%q is not an address or CIDR", a)
			}
		}
	}

	targets := map[string]*Target{}
	for i := range c.Targets {
		t := &c.Targets[i]
		f := fmt.Sprintf("targets[%d]", i)
		if !nameRE.MatchString(t.Name) {
			bad(f+".name", "%q must be lower-case letters, digits, - or _", t.Name)
		} else if targets[t.Name] != nil {
			bad(f+".name", "duplicate target %q", t.Name)
		}
		targets[t.Name] = t
		if t.Kind != "wordpress" && t.Kind != "http" {
			bad(f+".kind", "unknown kind %q (use wordpress or http)", t.Kind)
		}
		if u, err := url.Parse(t.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(f+".url", "%q is not an http(s) URL", t.URL)
		}
		if t.Timeout < 0 || t.MaxAge < 0 || t.MaxBackoff < 0 || t.MaxAttempts < 0 || t.Concurrency < 0 || t.Rate < 0 {
			bad(f, "timeout, max_age, max_backoff, max_attempts, concurrency and rate must not be negative")
		}
		if t.Kind == "wordpress" && t.JWTSecret == "" {
			bad(f+".jwt_secret", "a wordpress target needs jwt_secret (the plugin's WPRELAY_WP_JWT_SECRET)")
		}
		if t.SigningSecret != "" {
			if _, err := StandardKey(t.SigningSecret); err != nil {
				bad(f+".signing_secret", "%v", err)
			}
		}
		for j, code := range t.SuccessCodes {
			if code < 100 || code > 599 {
				bad(fmt.Sprintf("%s.success_codes[%d]", f, j), "%d is not an HTTP status", code)
			}
		}
	}
	for i := range c.Targets {
		if r := c.Targets[i].ReplyTo; r != "" && targets[r] == nil {
			bad(fmt.Sprintf("targets[%d].reply_to", i), "no target named %q", r)
		}
	}

	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if s := sources[r.Source]; s == nil && !strings.HasPrefix(r.Source, "target:") {
			bad(f+".source", "no source named %q", r.Source)
		}
		if len(r.To) == 0 {
			bad(f+".to", "a route needs at least one target")
		}
		for j, name := range append(slices.Clone(r.To), r.MirrorTo...) {
			if targets[name] == nil {
				bad(fmt.Sprintf("%s.to[%d]", f, j), "no target named %q", name)
			}
		}
		for j, g := range r.Types {
			if g == "" {
				bad(fmt.Sprintf("%s.types[%d]", f, j), "empty type pattern (use * for every type)")
			}
		}
	}
	return errors.Join(errs...)
}

// ProviderOptions returns the verifier options of s.
func (s *Source) ProviderOptions() provider.Options {
	return provider.Options{
		Kind:      s.Kind,
		Tolerance: s.Tolerance.D(),
		PublicURL: s.PublicURL,
		HMAC: provider.HMACOptions{
			Header: s.HMAC.Header, Prefix: s.HMAC.Prefix, Encoding: s.HMAC.Encoding,
			Template: s.HMAC.Template, TimestampHeader: s.HMAC.TimestampHeader,
			NonceHeader: s.HMAC.NonceHeader, IDHeader: s.HMAC.IDHeader,
			IDPath: s.HMAC.IDPath, TypePath: s.HMAC.TypePath,
		},
		Issuer:     s.Issuer,
		JWTSecret:  s.JWTSecret.Reveal(),
		PublicKey:  s.PublicKey,
		Algorithms: s.Algorithms,
	}
}

// ParsePrefix parses a CIDR or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// StandardKey decodes a Standard Webhooks secret ("whsec_" + base64) into
// HMAC key bytes, with the same rules the standard source kind applies.
func StandardKey(s Secret) ([]byte, error) {
	v, err := provider.New(provider.Options{Kind: "standard"})
	if err != nil {
		return nil, err
	}
	return v.Key(s.Reveal())
}

// DecodeKey decodes an encryption key: base64 (standard or URL, padded or
// not) of exactly 32 bytes.
func DecodeKey(s Secret) ([]byte, error) {
	v := strings.TrimSpace(s.Reveal())
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("decodes to %d bytes; an encryption key is 32 random bytes in base64 (head -c32 /dev/urandom | base64)", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("not base64; an encryption key is 32 random bytes in base64 (head -c32 /dev/urandom | base64)")
}
