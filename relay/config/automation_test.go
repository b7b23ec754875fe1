package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/wprelay/wprelay/relay"
)

// automationSample is the README's automation example.
const automationSample = `
admin: {token: "${ADMIN_TOKEN}"}
sources:
  - {name: site, kind: wordpress, issuer: "https://example.com", jwt_secret: "${SITE_JWT}", secrets: ["${SITE_SIGNING}"]}
  - {name: stripe, kind: stripe, secrets: ["${STRIPE}"]}
targets:
  - {name: results, kind: wordpress, url: "https://example.com/wp-json/wprelay/v1/results", jwt_secret: "${WP_JWT}"}
  - name: summarizer
    kind: http
    url: https://ai.example.com/v1/summarize
    auth: {bearer: "${AI_API_KEY}"}
    headers: {X-Client: wprelay, X-Team-Key: "${TEAM_KEY}"}
    timeout: 30s
    success_codes: [200]
    template: |
      {"input": {{ json .data.content }}, "max_words": 60}
    reply_to: results
    rate_per_minute: 30
    concurrency: 2
    daily_budget: 500
  - name: crm
    kind: http
    url: https://crm.example.com/hooks/invoices
    auth: {hmac: {secret: "${CRM_SECRET}", header: X-Crm-Signature, prefix: "sha256=", timestamp_header: X-Crm-Timestamp}}
    ordering: subject
    out_of_order: skip
    coalesce: true
  - {name: staging, kind: http, url: "https://staging.example.com/hook", auth: {basic: {username: relay, password: "${STAGING_PASS}"}}}
routes:
  - name: summaries
    source: site
    types: ["post.published"]
    where:
      data.post_type: post
      actor.id: {present: true}
      subject.type: {prefix: "po"}
    to: [summarizer]
  - {source: stripe, types: ["invoice.*"], where: {data.object.currency: usd, data.object.amount_due: {eq: 2000}, data.object.coupon: {present: false}}, to: [crm], mirror_to: [staging]}
  - {source: stripe, types: ["customer.*"], to: [crm], dry_run: true}
`

func automationEnv() Env {
	return testEnv(map[string]string{
		"ADMIN_TOKEN": "0123456789abcdef0123", "SITE_JWT": "site-jwt-secret-0123456789abcdef0123", "SITE_SIGNING": "whsec_c2l0ZS1zaWduaW5n", "STRIPE": "whsec_s", "WP_JWT": "wp-jwt",
		"AI_API_KEY": "sk-live-ai", "TEAM_KEY": "team-key", "CRM_SECRET": "crm-secret", "STAGING_PASS": "pw",
	}, nil)
}

func TestParse_Automation(t *testing.T) {
	cfg, err := Parse([]byte(automationSample), automationEnv())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := cfg.Targets[1]
	if s.Auth.Bearer.Reveal() != "sk-live-ai" || s.RatePerMinute != 30 || s.DailyBudget != 500 || s.ReplyTo != "results" {
		t.Errorf("summarizer = %+v", s)
	}
	if !cfg.FromReference("targets[1].headers.X-Team-Key") || cfg.FromReference("targets[1].headers.X-Client") {
		t.Errorf("FromReference: X-Team-Key %v, X-Client %v; want true, false",
			cfg.FromReference("targets[1].headers.X-Team-Key"), cfg.FromReference("targets[1].headers.X-Client"))
	}
	refs := strings.Join(cfg.References("targets[1]"), "|")
	if !strings.Contains(refs, "sk-live-ai") || !strings.Contains(refs, "team-key") || strings.Contains(refs, "crm-secret") ||
		strings.Contains(strings.Join(cfg.References("targets[2]"), "|"), "sk-live-ai") {
		t.Errorf("References(targets[1]) = %q", refs)
	}
	crm := cfg.Targets[2]
	if crm.Auth.HMAC == nil || crm.Auth.HMAC.Secret.Reveal() != "crm-secret" || crm.Ordering != "subject" || crm.OutOfOrder != "skip" || !crm.Coalesce {
		t.Errorf("crm = %+v", crm)
	}
	want := Where{
		{Path: "data.post_type", Op: relay.OpEq, Value: "post"},
		{Path: "actor.id", Op: relay.OpPresent, Value: "true"},
		{Path: "subject.type", Op: relay.OpPrefix, Value: "po"},
	}
	if !reflect.DeepEqual(cfg.Routes[0].Where, want) {
		t.Errorf("where = %+v\nwant %+v", cfg.Routes[0].Where, want)
	}
	want = Where{
		{Path: "data.object.currency", Op: relay.OpEq, Value: "usd"},
		{Path: "data.object.amount_due", Op: relay.OpEq, Value: "2000"},
		{Path: "data.object.coupon", Op: relay.OpAbsent, Value: "false"},
	}
	if !reflect.DeepEqual(cfg.Routes[1].Where, want) {
		t.Errorf("where = %+v\nwant %+v", cfg.Routes[1].Where, want)
	}
}

// Every problem names its route or target, by index (and name).
func TestValidate_AutomationNamesFields(t *testing.T) {
	for _, c := range []struct {
		name, edit, want string
	}{
		{"template syntax", `s/{"input": {{ json .data.content }}, "max_words": 60}/{"input": {{ json .data.content }/`,
			`targets[1].template: target "summarizer"`},
		{"template not JSON", `s/{"input": {{ json .data.content }}, "max_words": 60}/{"input": {{ .type }}}/`,
			`targets[1].template: target "summarizer": trial render against a sample envelope`},
		{"template unknown function", `s/json .data.content/env "HOME"/`, `function "env" not defined`},
		{"where unknown field", `s/data.post_type: post/payload.type: post/`, `routes[0] (summaries).where.payload.type: "payload.type": the envelope has no field "payload"`},
		{"where unknown test", `s/{prefix: "po"}/{regex: "po"}/`, `routes[0] (summaries).where.subject.type: subject.type: unknown test "regex"`},
		{"where null", `s/data.post_type: post/data.post_type: null/`, `routes[0] (summaries).where.data.post_type: a null value`},
		{"where present not bool", `s/{present: true}/{present: yes please}/`, `unknown test "present yes please (use true or false)"`},
		{"where actor field", `s/actor.id:/actor.name:/`, `actor has the fields id and email`},
		{"route from a target without reply_to", `s/source: site/source: "target:crm"/`, `routes[0] (summaries).source: target "crm" has no reply_to`},
		{"route from an unknown target", `s/source: site/source: "target:nope"/`, `no target named "nope"`},
		{"mirror unknown", `s/mirror_to: \[staging\]/mirror_to: [nowhere]/`, `routes[1].mirror_to[0]: no target named "nowhere"`},
		{"mirror also to", `s/mirror_to: \[staging\]/mirror_to: [crm]/`, `routes[1].mirror_to[0]: target "crm" is in to already`},
		{"reply_to unknown", `s/reply_to: results/reply_to: nope/`, `targets[1].reply_to: no target named "nope"`},
		{"reply_to itself", `s/reply_to: results/reply_to: summarizer/`, `results loop: summarizer → summarizer`},
		{"two auths", `s/auth: {bearer: "\${AI_API_KEY}"}/auth: {bearer: "\${AI_API_KEY}", basic: {username: u, password: p}}/`, `targets[1].auth: set one of`},
		{"auth and Authorization header", `s/X-Client: wprelay/Authorization: x/`, `targets[1].headers.Authorization: auth sets Authorization already`},
		{"basic without password", `s/password: "\${STAGING_PASS}"/password: ""/`, `targets[3].auth.basic: needs username and password`},
		{"hmac encoding", `s/prefix: "sha256="/encoding: hex64/`, `targets[2].auth.hmac.encoding: unknown encoding "hex64"`},
		{"ordering", `s/ordering: subject/ordering: time/`, `targets[2].ordering: unknown ordering "time"`},
		{"out_of_order", `s/out_of_order: skip/out_of_order: drop/`, `targets[2].out_of_order: unknown value "drop"`},
		{"coalesce without ordering", `s/ordering: subject/ordering: ""/`, `targets[2].coalesce: only with ordering: subject`},
		{"negative budget", `s/daily_budget: 500/daily_budget: -1/`, `targets[1].daily_budget: must not be negative`},
		{"unknown format", `s/{name: staging, kind: http,/{name: staging, kind: http, format: json,/`, `targets[3].format: unknown format "json" (use envelope, or raw`},
		{"raw and a template", `s/    rate_per_minute: 30/    format: raw/`, `targets[1].format: raw sends the provider's body as it came and a template makes another body`},
		{"raw to WordPress", `s/{name: results, kind: wordpress,/{name: results, kind: wordpress, format: raw,/`, `targets[0].format: raw is for http targets`},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := sed(t, automationSample, c.edit)
			cfg, err := Parse([]byte(text), automationEnv())
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant %q", err, c.want)
			}
			if strings.Contains(err.Error(), "sk-live-ai") || strings.Contains(err.Error(), "crm-secret") {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}

func TestValidate_ResultLoopThroughRoutes(t *testing.T) {
	cfg, err := Parse([]byte(automationSample+`
  - {source: "target:summarizer", to: [crm]}
`), automationEnv())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a chain without a loop: %v", err)
	}
	cfg.Targets[2].ReplyTo = "summarizer" // crm's results go to the summarizer, whose results go to crm
	cfg.Targets[2].Ordering, cfg.Targets[2].OutOfOrder, cfg.Targets[2].Coalesce = "", "", false
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "results loop: crm → summarizer → crm") {
		t.Fatalf("err = %v", err)
	}
}

// sed applies one s/old/new/ (old a literal, with \[ \] \$ escapes) to text,
// failing the test when old is not there.
func sed(t *testing.T, text, edit string) string {
	t.Helper()
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(edit, "s/"), "/"), "/")
	if len(parts) != 2 {
		t.Fatalf("bad edit %q", edit)
	}
	unescape := strings.NewReplacer(`\[`, "[", `\]`, "]", `\$`, "$")
	old, repl := unescape.Replace(parts[0]), unescape.Replace(parts[1])
	if !strings.Contains(text, old) {
		t.Fatalf("edit %q: %q not in the sample", edit, old)
	}
	return strings.Replace(text, old, repl, 1)
}
