package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay/provider"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// dsnRE is the shape of a go-sql-driver/mysql DSN that names a database:
// [user[:pass]@][net(addr)]/dbname[?params]. The store parses it fully.
var (
	dsnRE         = regexp.MustCompile(`^(.*@)?([A-Za-z0-9]+(\(.*\))?)?/[^/?]+(\?.*)?$`)
	tablePrefixRE = regexp.MustCompile(`^[A-Za-z0-9_]{0,32}$`)
)

// problems collects what Validate finds, each naming its field.
type problems []error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks the whole configuration and reports every problem it
// finds, each naming its field (and its line, when the config was read
// from a file), joined with errors.Join. Each section has its function.
func (c *Config) Validate() error {
	var p problems
	c.validateListeners(&p)
	c.validateStore(&p)
	c.validateLog(&p)
	c.validateLimits(&p)
	c.validateHTTP(&p)
	c.validateEncryption(&p)
	c.validateTracing(&p)
	c.validateRetention(&p)
	sources := c.validateSources(&p)
	targets := c.validateTargets(&p)
	c.validateRoutes(&p, sources, targets)
	return c.errorsJoin(p)
}

// validateListeners checks listen, admin and tls.
func (c *Config) validateListeners(p *problems) {
	if _, err := net.ResolveTCPAddr("tcp", c.Listen); err != nil || c.Listen == "" {
		p.add("listen", "%q is not a host:port address, e.g. \":8080\"", c.Listen)
	}
	if c.Admin.Listen != "" && c.Admin.Listen != "off" {
		if _, err := net.ResolveTCPAddr("tcp", c.Admin.Listen); err != nil {
			p.add("admin.listen", "%q is not a host:port address, e.g. \"127.0.0.1:8081\"", c.Admin.Listen)
		}
		if c.Admin.Token == "" {
			p.add("admin.token", "required: set it to ${WPRELAY_ADMIN_TOKEN} and export a long random value (wprelay init makes one)")
		} else if len(c.Admin.Token) < 16 {
			p.add("admin.token", "too short (%d characters): use at least 16 random characters", len(c.Admin.Token))
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		p.add("tls", "set both cert_file and key_file, or neither")
	}
	for i, a := range c.TrustedProxies {
		if _, err := ParsePrefix(a); err != nil {
			p.add(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not an address or CIDR", a)
		}
	}
}

// validateStore checks data_dir and store.
func (c *Config) validateStore(p *problems) {
	if c.DataDir == "" {
		p.add("data_dir", "required")
	}
	switch c.Store.Kind {
	case "bbolt":
	case "mysql":
		if c.Store.DSN == "" {
			p.add("store.dsn", `required for kind mysql, e.g. "${WPRELAY_MYSQL_DSN}" = user:pass@tcp(db:3306)/wordpress`)
		} else if dsn := c.Store.DSN.Reveal(); !dsnRE.MatchString(dsn) || strings.HasPrefix(dsn, "mysql://") {
			p.add("store.dsn", "not a DSN of the form user:pass@tcp(host:3306)/dbname[?params] (or @unix(/path/to/socket)/dbname)")
		}
		if !tablePrefixRE.MatchString(c.Store.TablePrefix) {
			p.add("store.table_prefix", "%q: use letters, digits and _ (at most 32)", c.Store.TablePrefix)
		}
		if c.Store.MaxConns < 0 {
			p.add("store.max_conns", "must be positive, got %d", c.Store.MaxConns)
		}
	default:
		p.add("store.kind", "unknown store %q (use bbolt or mysql)", c.Store.Kind)
	}
	switch c.Store.Commit {
	case "", "loop", "batch", "single":
	default:
		p.add("store.commit", "unknown commit mode %q (use loop, batch or single)", c.Store.Commit)
	}
	if c.Store.BatchDelay < 0 || c.Store.BatchDelay > Duration(time.Second) {
		p.add("store.batch_delay", "must be between 0 and 1s, got %s", time.Duration(c.Store.BatchDelay))
	}
}

// validateLog checks log.
func (c *Config) validateLog(p *problems) {
	switch c.Log.Format {
	case "", "auto", "text", "json":
	default:
		p.add("log.format", "unknown format %q (use auto, text or json)", c.Log.Format)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		p.add("log.level", "unknown level %q (use debug, info, warn or error)", c.Log.Level)
	}
}

// validateLimits checks limits.
func (c *Config) validateLimits(p *problems) {
	if c.Limits.MaxBody <= 0 {
		p.add("limits.max_body", "must be positive (bytes), got %d", c.Limits.MaxBody)
	}
	if c.Limits.MaxQueue <= 0 {
		p.add("limits.max_queue", "must be positive, got %d", c.Limits.MaxQueue)
	}
	if c.Limits.MaxBatch <= 0 {
		p.add("limits.max_batch", "must be positive (events per request), got %d", c.Limits.MaxBatch)
	}
	if c.Limits.MaxDepth <= 0 || c.Limits.MaxDepth > maxDepthLimit {
		p.add("limits.max_depth", "must be 1 to %d (nested JSON levels), got %d", maxDepthLimit, c.Limits.MaxDepth)
	}
	if c.Limits.IPRate < 0 {
		p.add("limits.ip_rate", "must be 0 (off) or positive")
	}
	if c.Limits.SourceRate < 0 {
		p.add("limits.source_rate", "must be 0 (off) or positive")
	}
}

// validateHTTP checks http.
func (c *Config) validateHTTP(p *problems) {
	for _, t := range []struct {
		name string
		d    Duration
	}{
		{"read_header_timeout", c.HTTP.ReadHeaderTimeout}, {"read_timeout", c.HTTP.ReadTimeout},
		{"write_timeout", c.HTTP.WriteTimeout}, {"idle_timeout", c.HTTP.IdleTimeout},
	} {
		if t.d <= 0 {
			p.add("http."+t.name, "must be positive, got %s (an unbounded timeout lets slow clients pin connections)", t.d.D())
		}
	}
	if c.HTTP.MaxHeaderBytes < 4096 {
		p.add("http.max_header_bytes", "%d is too small: use at least 4096", c.HTTP.MaxHeaderBytes)
	}
}

// validateEncryption checks encryption.keys.
func (c *Config) validateEncryption(p *problems) {
	ids := map[string]bool{}
	for i, k := range c.Encryption.Keys {
		f := fmt.Sprintf("encryption.keys[%d]", i)
		if k.ID == "" || len(k.ID) > 64 {
			p.add(f+".id", "required, at most 64 characters (e.g. the date it was made: 2026-11)")
		} else if ids[k.ID] {
			p.add(f+".id", "duplicate key id %q", k.ID)
		}
		ids[k.ID] = true
		if _, err := DecodeKey(k.Key); err != nil {
			p.add(f+".key", "%v", err)
		}
	}
}

// validateTracing checks tracing.
func (c *Config) validateTracing(p *problems) {
	if c.Tracing.SampleRatio < 0 || c.Tracing.SampleRatio > 1 {
		p.add("tracing.sample_ratio", "must be between 0 and 1")
	}
	if e := c.Tracing.OTLPEndpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("tracing.otlp_endpoint", "%q is not an http(s) URL such as http://127.0.0.1:4318", e)
		}
	}
}

// validateRetention checks retention.
func (c *Config) validateRetention(p *problems) {
	if c.Retention.Dedupe.D() < 24*time.Hour {
		p.add("retention.dedupe", "%s is too short: providers retry for days (Stripe: 3 days); use at least 24h", c.Retention.Dedupe.D())
	}
	if c.Retention.Events.D() < c.Retention.Dedupe.D() {
		p.add("retention.events", "must be at least retention.dedupe (%s)", c.Retention.Dedupe.D())
	}
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
