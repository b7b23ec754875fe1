package config

import (
	"strings"
	"testing"
)

// Each problem names its field and line in the config's words: no Go type
// names, and a bad duration names its field.
func TestParse_ProblemsNameFieldAndLine(t *testing.T) {
	doc := `listen: ":8080"
admin: {token: "${NOPE_TOKEN}"}
retention: {dedupe: 3x}
limits:
  max_body: lots
  max_queue: [1]
sources:
  - name: gh
    kind: github
    secret: [x]
    tolerance: {a: 1}
  - {name: s, kind: stripe, secrets: "${NOPE_TOO}"}
targets: {name: x}
`
	_, err := Parse([]byte(doc), testEnv(nil, nil))
	if err == nil {
		t.Fatal("no error")
	}
	got := map[string]*FieldError{}
	for _, p := range Problems(err) {
		if got[p.Field] == nil {
			got[p.Field] = p
		}
		if strings.Contains(p.Error(), "config.") || strings.Contains(p.Error(), "!!") || strings.Contains(p.Error(), "unmarshal") {
			t.Errorf("Go or YAML type words in %q", p.Error())
		}
	}
	want := []struct {
		field string
		line  int
		msg   string
	}{
		{"admin.token", 2, "${NOPE_TOKEN} is not set"},
		{"retention.dedupe", 3, `"3x" is not a duration`},
		{"limits.max_body", 5, `"lots" is not a whole number`},
		{"limits.max_queue", 6, "want a single value, got a list"},
		{"sources[0].secret", 10, `unknown field "secret": did you mean "secrets"?`},
		{"sources[0].tolerance", 11, "want a duration"},
		{"sources[1].secrets", 12, "${NOPE_TOO} is not set"},
		{"targets", 13, "want a list"},
	}
	for _, w := range want {
		p := got[w.field]
		if p == nil {
			t.Errorf("no problem for %s; got %v", w.field, err)
			continue
		}
		if p.Line != w.line || !strings.Contains(p.Msg, w.msg) {
			t.Errorf("%s: line %d %q; want line %d %q", w.field, p.Line, p.Msg, w.line, w.msg)
		}
	}
}

func TestParse_SyntaxErrorHasLine(t *testing.T) {
	_, err := Parse([]byte("listen: \":8080\"\nsources:\n  - {name: gh\n"), testEnv(nil, nil))
	ps := Problems(err)
	if len(ps) != 1 || ps[0].Line == 0 || !strings.Contains(ps[0].Msg, "not valid YAML") {
		t.Fatalf("problems = %+v", ps)
	}
}

func TestValidate_ProblemsHaveLines(t *testing.T) {
	doc := `admin: {token: "0123456789abcdef0123"}
sources:
  - {name: gh, kind: github, secrets: [s3cret]}
targets:
  - name: crm
    kind: http
    url: "ftp://crm"
routes:
  - name: r1
    source: gh
    to: [nobody]
`
	cfg, err := Parse([]byte(doc), testEnv(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]int{}
	for _, p := range Problems(cfg.Validate()) {
		lines[p.Field] = p.Line
	}
	if lines["targets[0].url"] != 7 || lines["routes[0] (r1).to[0]"] != 11 {
		t.Fatalf("lines = %v", lines)
	}
}

// Check reports what cannot be read and what Validate finds in the rest,
// at once; a value that could not be read is reported once.
func TestCheck_EveryProblemAtOnce(t *testing.T) {
	doc := `listen: 8080
admin: {token: "${NOPE_TOKEN}"}
sources:
  - {name: Stripe, kind: strip, tolerance: 5 min, secrets: [s]}
routes:
  - {source: stripe, to: [crm], typs: ["*"]}
`
	_, err := Check([]byte(doc), testEnv(nil, nil))
	got := map[string]int{}
	for _, p := range Problems(err) {
		got[p.Field]++
	}
	for _, f := range []string{"listen", "admin.token", "sources[0].name", "sources[0].kind", "sources[0].tolerance", "routes[0].typs", "routes[0].source", "routes[0].to[0]"} {
		if got[f] != 1 {
			t.Errorf("%s reported %d times, want once; all: %v", f, got[f], err)
		}
	}
	if !strings.Contains(err.Error(), `sources[0].kind: unknown kind "strip": did you mean "stripe"?`) {
		t.Errorf("no suggestion for a misspelt kind: %v", err)
	}
	if _, err := Check([]byte("a: [\n"), testEnv(nil, nil)); len(Problems(err)) != 1 {
		t.Errorf("a syntax error: %v, want it alone", err)
	}
}
