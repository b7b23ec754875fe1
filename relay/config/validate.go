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

	"github.com/wprelay/wprelay/relay/deliver"
	"github.com/wprelay/wprelay/relay/provider"
)

// FieldError is one problem with one field. It never holds a secret's value.
type FieldError struct {
	Field string // e.g. "sources[1].kind"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// dsnRE is the shape of a go-sql-driver/mysql DSN that names a database:
// [user[:pass]@][net(addr)]/dbname[?params]. The store parses it fully.
var (
	dsnRE         = regexp.MustCompile(`^(.*@)?([A-Za-z0-9]+(\(.*\))?)?/[^/?]+(\?.*)?$`)
	tablePrefixRE = regexp.MustCompile(`^[A-Za-z0-9_]{0,32}$`)
)

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
		if c.Store.DSN == "" {
			bad("store.dsn", `required for kind mysql, e.g. "${WPRELAY_MYSQL_DSN}" = user:pass@tcp(db:3306)/wordpress`)
		} else if dsn := c.Store.DSN.Reveal(); !dsnRE.MatchString(dsn) || strings.HasPrefix(dsn, "mysql://") {
			bad("store.dsn", "not a DSN of the form user:pass@tcp(host:3306)/dbname[?params] (or @unix(/path/to/socket)/dbname)")
		}
		if !tablePrefixRE.MatchString(c.Store.TablePrefix) {
			bad("store.table_prefix", "%q: use letters, digits and _ (at most 32)", c.Store.TablePrefix)
		}
		if c.Store.MaxConns < 0 {
			bad("store.max_conns", "must be positive, got %d", c.Store.MaxConns)
		}
	default:
		bad("store.kind", "unknown store %q (use bbolt or mysql)", c.Store.Kind)
	}
	switch c.Store.Commit {
	case "", "loop", "batch", "single":
	default:
		bad("store.commit", "unknown commit mode %q (use loop, batch or single)", c.Store.Commit)
	}
	if c.Store.BatchDelay < 0 || c.Store.BatchDelay > Duration(time.Second) {
		bad("store.batch_delay", "must be between 0 and 1s, got %s", time.Duration(c.Store.BatchDelay))
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
		} else if u.User != nil {
			bad(f+".url", "holds credentials, which would show in logs and traces; use auth (basic or bearer)")
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
		c.validateAutomation(t, f, bad)
	}
	for i := range c.Targets {
		t := &c.Targets[i]
		f := fmt.Sprintf("targets[%d]", i)
		if r := t.ReplyTo; r != "" {
			switch {
			case targets[r] == nil:
				bad(f+".reply_to", "no target named %q", r)
			case t.Kind != "http":
				bad(f+".reply_to", "only http targets answer with results; target %q is %s", t.Name, t.Kind)
			}
		}
	}
	if loop := resultLoop(c.Targets, c.Routes); loop != "" {
		bad("targets", "results loop: %s (each answer would make another result, forever)", loop)
	}

	routeNames := map[string]bool{}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if r.Name != "" {
			f = fmt.Sprintf("routes[%d] (%s)", i, r.Name)
			if routeNames[r.Name] {
				bad(f+".name", "duplicate route name %q", r.Name)
			}
			routeNames[r.Name] = true
		}
		if name, ok := strings.CutPrefix(r.Source, "target:"); ok {
			if t := targets[name]; t == nil {
				bad(f+".source", "no target named %q (a route from target:{name} takes the results of a reply_to target)", name)
			} else if t.ReplyTo == "" {
				bad(f+".source", "target %q has no reply_to, so it makes no result events for this route to take", name)
			}
		} else if sources[r.Source] == nil {
			bad(f+".source", "no source named %q", r.Source)
		}
		if len(r.To) == 0 {
			bad(f+".to", "a route needs at least one target")
		}
		for j, name := range r.To {
			if targets[name] == nil {
				bad(fmt.Sprintf("%s.to[%d]", f, j), "no target named %q", name)
			}
		}
		for j, name := range r.MirrorTo {
			switch {
			case targets[name] == nil:
				bad(fmt.Sprintf("%s.mirror_to[%d]", f, j), "no target named %q", name)
			case slices.Contains(r.To, name):
				bad(fmt.Sprintf("%s.mirror_to[%d]", f, j), "target %q is in to already", name)
			}
		}
		for j, g := range r.Types {
			if g == "" {
				bad(fmt.Sprintf("%s.types[%d]", f, j), "empty type pattern (use * for every type)")
			}
		}
		for _, cond := range r.Where {
			wf := f + ".where." + cond.Path
			switch {
			case cond.Op == "null":
				bad(wf, "a null value: test for a missing field with {present: false}")
			case cond.Op == "a list" || cond.Op == "not a mapping":
				bad(strings.TrimSuffix(wf, "."), "%s: use a value, or {eq: …}, {present: true|false}, {prefix: …}", cond.Op)
			default:
				if err := cond.Validate(); err != nil {
					bad(wf, "%v", err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// validateAutomation checks an http target's auth, template, guardrails
// and ordering. f names the target.
func (c *Config) validateAutomation(t *Target, f string, bad func(field, format string, args ...any)) {
	n := 0
	if t.Auth.Bearer != "" {
		n++
	}
	for _, set := range []bool{t.Auth.Basic != nil, t.Auth.HMAC != nil, t.Auth.JWT != nil} {
		if set {
			n++
		}
	}
	if n > 0 && t.Kind != "http" {
		bad(f+".auth", "auth is for http targets; a wordpress target authenticates with jwt_secret and signing_secret")
	}
	if n > 1 {
		bad(f+".auth", "set one of bearer, basic, hmac or jwt")
	}
	if n > 0 && t.Auth.HMAC == nil {
		for name := range t.Headers {
			if strings.EqualFold(name, "Authorization") {
				bad(f+".headers.Authorization", "auth sets Authorization already; remove one of them")
			}
		}
	}
	if t.Auth.JWT != nil || t.Auth.Bearer != "" || t.Auth.Basic != nil {
		if t.JWTSecret != "" {
			bad(f+".jwt_secret", "auth sets Authorization already; use auth.jwt, or jwt_secret, not both")
		}
	}
	if b := t.Auth.Basic; b != nil && (b.Username == "" || b.Password == "") {
		bad(f+".auth.basic", "needs username and password")
	}
	if h := t.Auth.HMAC; h != nil {
		if h.Secret == "" {
			bad(f+".auth.hmac.secret", "required")
		}
		if h.Encoding != "" && h.Encoding != "hex" && h.Encoding != "base64" {
			bad(f+".auth.hmac.encoding", "unknown encoding %q (use hex or base64)", h.Encoding)
		}
	}
	if j := t.Auth.JWT; j != nil && j.Secret == "" {
		bad(f+".auth.jwt.secret", "required")
	}
	if t.Template != "" {
		if t.Kind != "http" {
			bad(f+".template", "templates are for http targets; WordPress receives the canonical envelope")
		} else if _, err := deliver.ParseTemplate(t.Name, t.Template); err != nil {
			bad(f+".template", "target %q: %v", t.Name, err)
		}
	}
	if t.RatePerMinute < 0 {
		bad(f+".rate_per_minute", "must not be negative")
	}
	if t.DailyBudget < 0 {
		bad(f+".daily_budget", "must not be negative")
	}
	switch t.Ordering {
	case "", "subject":
	default:
		bad(f+".ordering", "unknown ordering %q (use subject, or leave it out)", t.Ordering)
	}
	switch {
	case t.OutOfOrder != "" && t.OutOfOrder != "mark" && t.OutOfOrder != "skip":
		bad(f+".out_of_order", "unknown value %q (use mark or skip)", t.OutOfOrder)
	case t.OutOfOrder != "" && t.Ordering == "":
		bad(f+".out_of_order", "only with ordering: subject")
	}
	if t.Coalesce && t.Ordering == "" {
		bad(f+".coalesce", "only with ordering: subject")
	}
}

// resultLoop returns a description of a cycle in the way results travel
// (a reply_to target's results reach, through reply_to and routes from
// target:{name}, a target whose results reach it again), or "".
func resultLoop(targets []Target, routes []Route) string {
	next := map[string][]string{}
	for _, t := range targets {
		if t.ReplyTo == "" {
			continue
		}
		next[t.Name] = append(next[t.Name], t.ReplyTo)
		for _, r := range routes {
			if r.Source == "target:"+t.Name {
				next[t.Name] = append(next[t.Name], r.To...)
			}
		}
	}
	// Only targets with reply_to make results: follow them.
	const (
		active = iota + 1
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(string) string
	visit = func(n string) string {
		switch state[n] {
		case active:
			i := slices.Index(path, n)
			return strings.Join(append(slices.Clone(path[i:]), n), " → ")
		case done:
			return ""
		}
		state[n] = active
		path = append(path, n)
		for _, m := range next[n] {
			if _, makes := next[m]; !makes {
				continue
			}
			if loop := visit(m); loop != "" {
				return loop
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return ""
	}
	names := make([]string, 0, len(next))
	for n := range next {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if loop := visit(n); loop != "" {
			return loop
		}
	}
	return ""
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
