// Package config reads wprelay.yaml: defaults, then the file (with ${VAR} and
// ${file:/path} expanded inside string values), then Validate.
//
// Secrets are typed Secret so that they print and log as REDACTED; only the
// component that uses a secret calls Reveal.
package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wprelay/wprelay/relay"
)

// Config is the whole of wprelay.yaml.
type Config struct {
	Listen    string    `yaml:"listen"`    // public listener; default ":8080"
	Admin     Admin     `yaml:"admin"`     // admin listener
	DataDir   string    `yaml:"data_dir"`  // default "./data"
	Store     Store     `yaml:"store"`     // default {kind: bbolt}
	Log       Log       `yaml:"log"`       // default {format: auto, level: info}
	Limits    Limits    `yaml:"limits"`    // ingest limits
	Retention Retention `yaml:"retention"` // how long keys and events are kept
	Sources   []Source  `yaml:"sources"`   // at least one
	Targets   []Target  `yaml:"targets"`   // may be empty (events are then discarded)
	Routes    []Route   `yaml:"routes"`    // (source, types) → targets
	Shutdown  Duration  `yaml:"shutdown"`  // grace for in-flight work on SIGTERM; default 10s
	// TrustedProxies are CIDRs of reverse proxies whose X-Forwarded-For is
	// believed for the client IP (rate limits, allow_ips); default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	HTTP           HTTP     `yaml:"http"` // public listener timeouts and limits
	TLS            TLS      `yaml:"tls"`  // optional TLS on the public listener
	// Encryption seals raw bodies and envelopes at rest (AES-256-GCM);
	// default off.
	Encryption Encryption `yaml:"encryption"`
	// Tracing exports OpenTelemetry spans over OTLP/HTTP; default off.
	Tracing Tracing `yaml:"tracing"`

	refs  map[string][]string // values read from ${…}, by path (see FromReference)
	lines map[string]int      // the line of each key and list item in the file, by path
}

// Tracing configures OpenTelemetry export.
type Tracing struct {
	OTLPEndpoint string   `yaml:"otlp_endpoint"` // e.g. http://127.0.0.1:4318; "" (default) = off
	SampleRatio  float64  `yaml:"sample_ratio"`  // of new traces; default 1
	BatchTimeout Duration `yaml:"batch_timeout"` // default 5s
	ServiceName  string   `yaml:"service_name"`  // default wprelay
}

// Encryption lists the keys; the first seals, all open (rotation).
type Encryption struct {
	Keys []EncryptionKey `yaml:"keys"`
}

// EncryptionKey is one key: an id kept with each record, and the base64 of
// 32 random bytes (head -c32 /dev/urandom | base64).
type EncryptionKey struct {
	ID  string `yaml:"id"`
	Key Secret `yaml:"key"`
}

// HTTP bounds what one client can hold of the public listener.
type HTTP struct {
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"` // default 5s (slow-loris clients are cut off)
	ReadTimeout       Duration `yaml:"read_timeout"`        // whole request; default 30s
	WriteTimeout      Duration `yaml:"write_timeout"`       // default 30s
	IdleTimeout       Duration `yaml:"idle_timeout"`        // keep-alive; default 120s
	MaxHeaderBytes    int      `yaml:"max_header_bytes"`    // default 65536; larger headers get 431
}

// TLS serves the public listener over TLS (1.2 or later) when both files are set.
type TLS struct {
	CertFile string   `yaml:"cert_file"`
	KeyFile  string   `yaml:"key_file"`
	HSTS     Duration `yaml:"hsts"` // Strict-Transport-Security max-age; default 365d when TLS is on, 0 = off
}

// Admin configures the admin listener.
type Admin struct {
	Listen string `yaml:"listen"` // default "127.0.0.1:8081"; "" or "off" disables it
	Token  Secret `yaml:"token"`  // bearer token; required
}

// Store selects the store backend.
type Store struct {
	Kind   string `yaml:"kind"`   // bbolt (default) or mysql (MariaDB ≥ 10.6, MySQL ≥ 8.0)
	DSN    Secret `yaml:"dsn"`    // for kind mysql: go-sql-driver DSN, e.g. user:pass@tcp(host:3306)/db?tls=true; required
	Commit string `yaml:"commit"` // bbolt group commit: loop (default), batch, single
	// BatchDelay is how long commit: batch collects writes before it
	// commits (bbolt's MaxBatchDelay). Default 10ms. For comparisons only:
	// the loop needs no window.
	BatchDelay Duration `yaml:"batch_delay"`
	// TablePrefix prefixes the mysql store's tables (letters, digits, _;
	// at most 32), so they can share the WordPress database. Default
	// "wprelay_".
	TablePrefix string `yaml:"table_prefix"`
	// MaxConns bounds the mysql store's connections per sidecar. Default 16.
	MaxConns int `yaml:"max_conns"`
}

// Log configures logging.
type Log struct {
	Format string `yaml:"format"` // auto (default: text on a terminal, json otherwise), text, json
	Level  string `yaml:"level"`  // debug, info (default), warn, error
}

// Limits bound the ingest path.
type Limits struct {
	MaxBody    int64   `yaml:"max_body"`    // bytes; default 524288 (512 KiB)
	MaxQueue   int     `yaml:"max_queue"`   // pending deliveries before 503; default 1000000
	MaxBatch   int     `yaml:"max_batch"`   // events per request (HubSpot batches) before 413; default 100
	MaxDepth   int     `yaml:"max_depth"`   // nested JSON arrays and objects before 400 too_deep; default 128
	IPRate     float64 `yaml:"ip_rate"`     // requests/s per client IP and source; 0 (default) = off
	SourceRate float64 `yaml:"source_rate"` // requests/s per source; 0 (default) = off
}

// maxDepthLimit caps limits.max_depth well below encoding/json's own limit
// (10,000), which the envelope around a body must also fit in.
const maxDepthLimit = 1000

// Retention says how long things are kept.
type Retention struct {
	Dedupe Duration `yaml:"dedupe"` // idempotency keys; default 168h
	Events Duration `yaml:"events"` // finished events; default 720h
}

// Source is one webhook sender: POST /hooks/{name}[/{tenant}].
type Source struct {
	Name         string   `yaml:"name"`
	Kind         string   `yaml:"kind"`          // stripe, github, standard, hmac, wordpress, …
	Secrets      []Secret `yaml:"secrets"`       // the default tenant's secrets (rotation: several)
	Tenants      []Tenant `yaml:"tenants"`       // named tenants, each with its secrets
	Tolerance    Duration `yaml:"tolerance"`     // timestamp tolerance; default 5m
	ContentTypes []string `yaml:"content_types"` // default [application/json]
	MaxBody      int64    `yaml:"max_body"`      // default limits.max_body
	AllowIPs     []string `yaml:"allow_ips"`     // CIDRs or addresses; empty = any
	PublicURL    string   `yaml:"public_url"`    // the URL the provider calls (hubspot)
	HMAC         HMAC     `yaml:"hmac"`          // kind hmac
	Issuer       string   `yaml:"issuer"`        // kind wordpress: the site URL (JWT iss)
	JWTSecret    Secret   `yaml:"jwt_secret"`    // kind wordpress: HS256 secret
	PublicKey    string   `yaml:"public_key"`    // kind wordpress: PEM (RS256/EdDSA)
	Algorithms   []string `yaml:"algorithms"`    // kind wordpress: allowed JWT algorithms
}

// Tenant is one account of a provider (one Stripe account, one shop).
type Tenant struct {
	Name    string   `yaml:"name"`
	Secrets []Secret `yaml:"secrets"`
}

// HMAC configures the generic hmac kind.
type HMAC struct {
	Header          string `yaml:"header"`
	Prefix          string `yaml:"prefix"`
	Encoding        string `yaml:"encoding"` // hex (default) or base64
	Template        string `yaml:"template"` // {body} (default), {timestamp}.{body}, {timestamp}.{nonce}.{body}
	TimestampHeader string `yaml:"timestamp_header"`
	NonceHeader     string `yaml:"nonce_header"`
	IDHeader        string `yaml:"id_header"`
	IDPath          string `yaml:"id_path"`
	TypePath        string `yaml:"type_path"`
}

// Target is where deliveries go.
type Target struct {
	Name          string            `yaml:"name"`
	Kind          string            `yaml:"kind"` // wordpress or http
	URL           string            `yaml:"url"`
	Timeout       Duration          `yaml:"timeout"`      // per attempt; default 10s
	MaxAttempts   int               `yaml:"max_attempts"` // default 8
	MaxAge        Duration          `yaml:"max_age"`      // default 24h
	MaxBackoff    Duration          `yaml:"max_backoff"`  // default 1h
	Concurrency   int               `yaml:"concurrency"`  // attempts in flight; default 4
	Rate          float64           `yaml:"rate"`         // attempts/s; 0 (default) = unlimited
	Headers       map[string]Secret `yaml:"headers"`      // extra request headers; values from ${…} are never shown
	Audience      string            `yaml:"audience"`     // JWT aud; default the URL's origin
	JWTSecret     Secret            `yaml:"jwt_secret"`   // HS256; none = no Authorization header
	SigningSecret Secret            `yaml:"signing_secret"`
	// Auth is an http target's credential (one of bearer, basic, hmac,
	// jwt); default none.
	Auth Auth `yaml:"auth"`
	// Template is a Go text/template producing the JSON body from the
	// envelope (http targets); default: the envelope itself.
	Template string `yaml:"template"`
	// Format is what an http target receives: "envelope" (default), or
	// "raw": the provider's request body exactly as it came, with its
	// Content-Type, still signed and authenticated by the sidecar.
	Format       string `yaml:"format"`
	SuccessCodes []int  `yaml:"success_codes"` // default any 2xx
	AllowPrivate bool   `yaml:"allow_private"` // http targets: allow loopback/private addresses
	// ReplyTo names the target that receives a 2xx JSON answer as a result
	// event ({type}.result, source target:{name}); default none.
	ReplyTo string  `yaml:"reply_to"`
	Breaker Breaker `yaml:"breaker"`
	// RatePerMinute caps requests per minute (evenly spaced); 0 (default)
	// = unlimited.
	RatePerMinute float64 `yaml:"rate_per_minute"`
	// DailyBudget caps requests per UTC day; past it deliveries wait for
	// the next day (they do not fail). 0 (default) = unlimited.
	DailyBudget int `yaml:"daily_budget"`
	// Ordering "subject" sends the deliveries about one subject (the
	// envelope's subject type and id) one at a time, in occurred_at order;
	// default "" (no order).
	Ordering string `yaml:"ordering"`
	// OutOfOrder says what becomes of an event older than one already
	// delivered about its subject: mark (default: sent with
	// X-Wprelay-Out-Of-Order: true) or skip.
	OutOfOrder string `yaml:"out_of_order"`
	// Coalesce sends only the newest of a subject's pending deliveries
	// (the others are skipped); default false.
	Coalesce bool `yaml:"coalesce"`
}

// Auth is an http target's credential; set at most one.
type Auth struct {
	Bearer Secret     `yaml:"bearer"` // Authorization: Bearer <value>
	Basic  *BasicAuth `yaml:"basic"`  // Authorization: Basic
	HMAC   *HMACAuth  `yaml:"hmac"`   // an HMAC-SHA256 signature of the body in a header
	JWT    *JWTAuth   `yaml:"jwt"`    // Authorization: Bearer <HS256 JWT, one per attempt>
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
}

// HMACAuth signs each request body: header = prefix + HMAC-SHA256(secret,
// body) (or of "{timestamp}.{body}" when timestamp_header is set).
type HMACAuth struct {
	Secret          Secret `yaml:"secret"`
	Header          string `yaml:"header"`           // default X-Signature
	Prefix          string `yaml:"prefix"`           // e.g. "sha256="; default none
	Encoding        string `yaml:"encoding"`         // hex (default) or base64
	TimestampHeader string `yaml:"timestamp_header"` // sends Unix seconds and signs "{timestamp}.{body}"; default none
}

// JWTAuth is a short-lived HS256 JWT per attempt (iss "wprelay"), the same
// as jwt_secret and audience.
type JWTAuth struct {
	Secret   Secret `yaml:"secret"`
	Audience string `yaml:"audience"` // default the URL's origin
}

// Breaker configures a target's circuit breaker.
type Breaker struct {
	Failures    int      `yaml:"failures"`     // consecutive failures that open it; default 5
	Cooldown    Duration `yaml:"cooldown"`     // first cool-down before a probe; default 30s
	MaxCooldown Duration `yaml:"max_cooldown"` // cool-downs double up to this; default 5m
}

// Route maps a source's events to targets.
type Route struct {
	Name   string   `yaml:"name"`   // optional, for messages
	Source string   `yaml:"source"` // a source, or target:{name} for the results of a reply_to target
	Tenant string   `yaml:"tenant"` // default every tenant
	Types  []string `yaml:"types"`  // globs; * matches any run of characters; default ["*"]
	// Where are conditions on the envelope, all of which must hold;
	// default none. See Where.
	Where    Where    `yaml:"where"`
	To       []string `yaml:"to"`
	DryRun   bool     `yaml:"dry_run"`   // record the request each delivery would send, send nothing; default false
	MirrorTo []string `yaml:"mirror_to"` // copies whose outcome never changes the event's status; default none
}

// Where is a route's conditions, read from a mapping of dotted envelope
// paths to tests:
//
//	where:
//	  data.object.currency: usd              # equal (a number compares numerically)
//	  actor.email: {present: true}           # set: not missing, null or ""
//	  data.object.coupon: {present: false}   # missing, null or ""
//	  subject.type: {prefix: "post"}
//	  data.object.status: {eq: paid}         # the long form of equal
type Where []relay.Condition

// UnmarshalYAML reads the mapping in order. It accepts any shape and
// leaves the checks to Validate, which names the route.
func (w *Where) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		*w = Where{{Op: "not a mapping"}}
		return nil
	}
	var out Where
	for i := 0; i+1 < len(n.Content); i += 2 {
		path, v := n.Content[i].Value, n.Content[i+1]
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			out = append(out, relay.Condition{Path: path, Op: "null"})
		case v.Kind == yaml.ScalarNode:
			out = append(out, relay.Condition{Path: path, Op: relay.OpEq, Value: v.Value})
		case v.Kind == yaml.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				op, arg := v.Content[j].Value, v.Content[j+1]
				c := relay.Condition{Path: path, Op: op, Value: arg.Value}
				switch {
				case arg.Kind != yaml.ScalarNode:
					c.Op = op + " (not a single value)"
				case op == "present" && arg.Value == "false":
					c.Op = relay.OpAbsent
				case op == "present" && arg.Value != "true":
					c.Op = "present " + arg.Value + " (use true or false)"
				}
				out = append(out, c)
			}
		default:
			out = append(out, relay.Condition{Path: path, Op: "a list"})
		}
	}
	*w = out
	return nil
}

// Default returns the configuration every file starts from.
func Default() Config {
	return Config{
		Listen:    ":8080",
		Admin:     Admin{Listen: "127.0.0.1:8081"},
		DataDir:   "./data",
		Store:     Store{Kind: "bbolt", Commit: "loop", BatchDelay: Duration(10 * time.Millisecond), TablePrefix: "wprelay_", MaxConns: 16},
		Log:       Log{Format: "auto", Level: "info"},
		Limits:    Limits{MaxBody: 512 << 10, MaxQueue: 1_000_000, MaxBatch: 100, MaxDepth: 128},
		Retention: Retention{Dedupe: Duration(168 * time.Hour), Events: Duration(720 * time.Hour)},
		Shutdown:  Duration(10 * time.Second),
		HTTP: HTTP{
			ReadHeaderTimeout: Duration(5 * time.Second), ReadTimeout: Duration(30 * time.Second),
			WriteTimeout: Duration(30 * time.Second), IdleTimeout: Duration(120 * time.Second), MaxHeaderBytes: 64 << 10,
		},
		TLS:     TLS{HSTS: Duration(365 * 24 * time.Hour)},
		Tracing: Tracing{SampleRatio: 1, BatchTimeout: Duration(5 * time.Second), ServiceName: "wprelay"},
	}
}

// DefaultSource returns what a source's unset fields default to.
func DefaultSource() Source {
	return Source{Tolerance: Duration(5 * time.Minute)}
}

// DefaultTarget returns what a target's unset fields default to.
func DefaultTarget() Target {
	return Target{
		Timeout: Duration(10 * time.Second), MaxAttempts: 8, MaxAge: Duration(24 * time.Hour),
		MaxBackoff: Duration(time.Hour), Concurrency: 4,
		Breaker: Breaker{Failures: 5, Cooldown: Duration(30 * time.Second), MaxCooldown: Duration(5 * time.Minute)},
	}
}

// fillDefaults gives each source and target the defaults of the fields
// the file leaves out (or sets to 0).
func (c *Config) fillDefaults() {
	ds, dt := DefaultSource(), DefaultTarget()
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Tolerance == 0 {
			s.Tolerance = ds.Tolerance
		}
	}
	for i := range c.Targets {
		t := &c.Targets[i]
		fill := func(v *Duration, d Duration) {
			if *v == 0 {
				*v = d
			}
		}
		fill(&t.Timeout, dt.Timeout)
		fill(&t.MaxAge, dt.MaxAge)
		fill(&t.MaxBackoff, dt.MaxBackoff)
		fill(&t.Breaker.Cooldown, dt.Breaker.Cooldown)
		if t.Breaker.MaxCooldown == 0 {
			t.Breaker.MaxCooldown = max(dt.Breaker.MaxCooldown, t.Breaker.Cooldown)
		}
		if t.MaxAttempts == 0 {
			t.MaxAttempts = dt.MaxAttempts
		}
		if t.Concurrency == 0 {
			t.Concurrency = dt.Concurrency
		}
		if t.Breaker.Failures == 0 {
			t.Breaker.Failures = dt.Breaker.Failures
		}
	}
}

// Secret is a configured credential. It prints and logs as REDACTED.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer without showing the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return relay.Redacted
}

// GoString keeps %#v from showing the value.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Duration is a time.Duration that reads "90s", "5m", "168h" or "7d".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration parses a Go duration, also accepting a whole number of days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("invalid duration %q (use e.g. 90s, 5m, 168h or 7d)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 90s, 5m, 168h or 7d)", s)
	}
	return d, nil
}

// UnmarshalText implements encoding.TextUnmarshaler (used by the YAML decoder).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
