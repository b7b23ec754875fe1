package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func testEnv(vars map[string]string, files map[string]string) Env {
	return Env{
		Lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, fmt.Errorf("open %s: %w", p, fs.ErrNotExist)
		},
		Dir: "/etc/wprelay",
	}
}

const sample = `
listen: ":9000"
admin: {listen: "127.0.0.1:9001", token: "${ADMIN_TOKEN}"}
data_dir: /var/lib/wprelay
retention: {dedupe: 7d, events: 720h}
sources:
  - {name: stripe, kind: stripe, tolerance: 5m,
     tenants: [{name: acme, secrets: ["${STRIPE_SECRET_ACME}"]}]}
  - {name: gh, kind: github, secrets: ["${file:secrets/gh}"]}
targets:
  - {name: wordpress, kind: wordpress, url: "https://example.com/wp-json/wprelay/v1/events",
     jwt_secret: "${WP_JWT}", timeout: 10s, max_attempts: 8, concurrency: 4}
routes:
  - {source: stripe, types: ["invoice.*"], to: [wordpress]}
`

func TestParse_ExpandsAndValidates(t *testing.T) {
	env := testEnv(map[string]string{
		"ADMIN_TOKEN": "0123456789abcdef0123", "STRIPE_SECRET_ACME": "whsec_stripe", "WP_JWT": "jwt-secret-value",
	}, map[string]string{"/etc/wprelay/secrets/gh": "gh-secret\n"})
	cfg, err := Parse([]byte(sample), env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources[0].Tenants[0].Secrets[0].Reveal(); got != "whsec_stripe" {
		t.Errorf("tenant secret = %q", got)
	}
	if got := cfg.Sources[1].Secrets[0].Reveal(); got != "gh-secret" {
		t.Errorf("file secret = %q (trailing newline must be trimmed)", got)
	}
	if cfg.Retention.Dedupe.D() != 7*24*time.Hour || cfg.Sources[0].Tolerance.D() != 5*time.Minute {
		t.Errorf("durations: dedupe %v tolerance %v", cfg.Retention.Dedupe.D(), cfg.Sources[0].Tolerance.D())
	}
	if cfg.Limits.MaxBody != 512<<10 || cfg.Store.Kind != "bbolt" {
		t.Errorf("defaults lost: %+v %+v", cfg.Limits, cfg.Store)
	}
	if s := fmt.Sprintf("%v %+v %#v", cfg.Admin.Token, cfg.Admin, cfg.Admin.Token); strings.Contains(s, "0123456789abcdef") {
		t.Errorf("secret printed: %s", s)
	}
}

func TestParse_MissingVariableNamesIt(t *testing.T) {
	_, err := Parse([]byte(sample), testEnv(map[string]string{"ADMIN_TOKEN": "x"}, nil))
	if err == nil || !strings.Contains(err.Error(), "${STRIPE_SECRET_ACME} is not set") || !strings.Contains(err.Error(), "sources[0].tenants[0].secrets[0]") {
		t.Fatalf("err = %v", err)
	}
}

func TestParse_MissingFile(t *testing.T) {
	env := testEnv(map[string]string{"ADMIN_TOKEN": "0123456789abcdef0123", "STRIPE_SECRET_ACME": "s", "WP_JWT": "j"}, nil)
	_, err := Parse([]byte(sample), env)
	if err == nil || !strings.Contains(err.Error(), "/etc/wprelay/secrets/gh") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func TestParse_SecretCannotInjectYAML(t *testing.T) {
	env := testEnv(map[string]string{"T": "x\", listen: \":1\"\nevil: [", "ADMIN_TOKEN": "0123456789abcdef0123"}, nil)
	cfg, err := Parse([]byte("admin: {token: \"${T}\"}\nlisten: \":8080\"\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":8080" || !strings.HasPrefix(cfg.Admin.Token.Reveal(), "x\"") {
		t.Fatalf("structure changed: listen %q", cfg.Listen)
	}
}

func TestParse_UnknownField(t *testing.T) {
	_, err := Parse([]byte("sources:\n  - {name: gh, kind: github, secret: [x]}\n"), testEnv(nil, nil))
	if err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v", err)
	}
}

func TestParse_EmptyIsDefault(t *testing.T) {
	cfg, err := Parse(nil, testEnv(nil, nil))
	if err != nil || cfg.Listen != ":8080" {
		t.Fatalf("cfg %+v err %v", cfg.Listen, err)
	}
}

func TestExpand(t *testing.T) {
	env := testEnv(map[string]string{"A": "1", "B_2": "two"}, map[string]string{"/abs": "F\r\n"})
	cases := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "1", ""},
		{"x${A}y${B_2}z", "x1ytwoz", ""},
		{"$${A}", "${A}", ""},
		{"${file:/abs}", "F", ""},
		{"${NOPE}", "", "${NOPE} is not set"},
		{"${A", "", "unterminated"},
		{"${1A}", "", "not a variable name"},
		{"${}", "", "not a variable name"},
		{"${file:}", "", "needs a path"},
	}
	for _, c := range cases {
		got, err := Expand(c.in, env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Expand(%q) err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestValidate_NamesFields(t *testing.T) {
	cfg := Default()
	cfg.Admin.Token = "short"
	cfg.Sources = []Source{
		{Name: "Bad Name", Kind: "github", Secrets: []Secret{"s"}},
		{Name: "x", Kind: "nope"},
		{Name: "gh", Kind: "github"},
	}
	cfg.Targets = []Target{{Name: "t", Kind: "ftp", URL: "ftp://x"}}
	cfg.Routes = []Route{{Source: "missing", To: []string{"nowhere"}}}
	cfg.Limits.MaxBatch, cfg.Limits.MaxDepth = 0, 5000
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"limits.max_batch", "limits.max_depth", "admin.token", "sources[0].name", "sources[1].kind", "sources[2].secrets", "targets[0].kind", "targets[0].url", "routes[0].source", "routes[0].to[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "short\"") {
		t.Errorf("error shows the token: %v", err)
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "${A}", "$${A}", "${file:/x}", "a${A}b${", "${${A}}", "$$$${A}}"} {
		f.Add(s)
	}
	env := testEnv(map[string]string{"A": "secret-value"}, map[string]string{"/x": "file"})
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Expand(s, env)
		if err != nil {
			if strings.Contains(err.Error(), "secret-value") {
				t.Fatalf("error leaks a value: %v", err)
			}
			return
		}
		if !strings.Contains(s, "${") && out != s {
			t.Fatalf("Expand changed %q to %q", s, out)
		}
	})
}

// quotedRE matches a Go-quoted string (strconv.Quote, %q).
var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("listen: ${A}\n"))
	f.Add([]byte("sources: [{name: a, kind: github, secrets: [\"${A}\"]}]"))
	env := testEnv(map[string]string{"A": "x", "ADMIN_TOKEN": "0123456789abcdef", "STRIPE_SECRET_ACME": "s", "WP_JWT": "j"}, nil)
	f.Add([]byte("sources: {name: x}\nlimits: {max_body: lots}\nretention: {dedupe: 3x}\n"))
	f.Add([]byte("routes:\n  - {source: gh, where: {data.x: [1]}, to: [a]}\ntargets: [{name: a, headers: [x]}]\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	// Any bytes give a config or problems in the config's own words:
	// never a panic, never a Go or YAML type name.
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, env)
		if err == nil {
			err = cfg.Validate()
		}
		for _, p := range Problems(err) {
			// What the file says is quoted; the rest is the message's own.
			if s := quotedRE.ReplaceAllString(p.Msg, `""`); strings.Contains(s, "config.") || strings.Contains(s, "unmarshal") || strings.Contains(s, "!!") {
				t.Fatalf("a Go or YAML type name in %q", p.Error())
			}
		}
	})
}

// TestREADME_LimitsExample: the README's configuration example parses and
// states the limits' defaults.
func TestREADME_LimitsExample(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(data), "```yaml\nlisten: \":8080\"")
	if !ok {
		t.Fatal("README has no configuration example starting with listen: \":8080\"")
	}
	block, _, _ = strings.Cut(block, "```")
	anything := Env{Lookup: func(string) (string, bool) { return "x", true }, ReadFile: func(string) ([]byte, error) { return []byte("x"), nil }, Dir: "/etc/wprelay"}
	cfg, err := Parse([]byte(block), anything)
	if err != nil {
		t.Fatalf("README configuration example: %v", err)
	}
	def := Default().Limits
	if cfg.Limits != def {
		t.Errorf("README's limits = %+v, want the defaults %+v", cfg.Limits, def)
	}
}
