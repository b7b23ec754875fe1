package main

// Docs that run, for automations: every route (where) and template in
// README.md, docs/ and deploy/ (commented-out examples included) is run
// against the provider fixtures of testdata/ (their envelopes, as
// testdata/envelopes holds them) with the sidecar's own router and
// template code. A route must deliver at least one real payload of its
// source's kind; a template must render each payload its routes deliver to
// JSON without nulls (a template that no route of its example feeds must
// do so for every fixture).

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/relay/deliver"
	"github.com/wprelay/wprelay/relay/provider"
)

// docAutomation is what a documented configuration (or part of one) says
// about automations.
type docAutomation struct {
	where   string
	Sources []struct {
		Name string `yaml:"name"`
		Kind string `yaml:"kind"`
	} `yaml:"sources"`
	Targets []struct {
		Name     string `yaml:"name"`
		Template string `yaml:"template"`
	} `yaml:"targets"`
	Routes []config.Route `yaml:"routes"`
}

// commentedExampleRE finds examples left in comments: a template, a route.
var commentedExampleRE = regexp.MustCompile(`(?m)^(\s*)# ?((?:template: |- \{source: ).*)$`)

// docAutomations returns the automations of the docs.
func docAutomations(t *testing.T) []docAutomation {
	t.Helper()
	var texts []docBlock
	mds := []string{"../../README.md"}
	for _, g := range []string{"../../docs/*.md", "../../docs/runbooks/*.md"} {
		m, _ := filepath.Glob(g)
		mds = append(mds, m...)
	}
	for _, md := range mds {
		texts = append(texts, yamlBlocks(t, md)...)
	}
	_ = filepath.WalkDir(deployDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			data, _ := os.ReadFile(p)
			texts = append(texts, docBlock{where: p, text: commentedExampleRE.ReplaceAllString(string(data), "$1$2")})
		}
		return nil
	})
	var out []docAutomation
	for _, b := range texts {
		var a docAutomation
		if err := yaml.Unmarshal([]byte(b.text), &a); err != nil {
			if strings.Contains(b.text, "routes:") || strings.Contains(b.text, "template:") {
				t.Errorf("%s: not YAML (with its commented examples uncommented): %v", b.where, err)
			}
			continue
		}
		a.where = b.where
		out = append(out, a)
	}
	return out
}

// fixtureEnvelopes returns the envelopes of testdata/envelopes by source
// kind (the first word of the file name).
func fixtureEnvelopes(t *testing.T) map[string][]map[string]any {
	t.Helper()
	files, _ := filepath.Glob("../../testdata/envelopes/*.golden.json")
	out := map[string][]map[string]any{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			Envelopes []map[string]any `json:"envelopes"`
		}
		if err := json.Unmarshal(data, &g); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		kind, _, _ := strings.Cut(filepath.Base(f), "-")
		for _, e := range g.Envelopes {
			e["fixture"] = strings.TrimSuffix(filepath.Base(f), ".golden.json")
			out[kind] = append(out[kind], e)
		}
	}
	return out
}

// fixtureEvent is envelope e as an event of source (and tenant) of a
// route, and the name of the fixture it comes from.
func fixtureEvent(t *testing.T, e map[string]any, source, tenant string) (*relay.Event, string) {
	t.Helper()
	env := map[string]any{}
	for k, v := range e {
		env[k] = v
	}
	name := env["fixture"].(string)
	delete(env, "fixture")
	env["source"] = source
	if tenant != "" {
		env["tenant"] = tenant
	}
	b, _ := json.Marshal(env)
	typ, _ := env["type"].(string)
	tn, _ := env["tenant"].(string)
	return &relay.Event{ID: "00000000-0000-7000-8000-000000000000", Source: source, Tenant: tn, Type: typ, Envelope: b}, name
}

// markNulls returns v with every null replaced by the string "(null)".
func markNulls(v any) any {
	switch x := v.(type) {
	case nil:
		return "(null)"
	case map[string]any:
		for k, e := range x {
			x[k] = markNulls(e)
		}
	case []any:
		for i, e := range x {
			x[i] = markNulls(e)
		}
	}
	return v
}

// nulls returns the paths of the null values in v.
func nulls(v any, path string) []string {
	switch x := v.(type) {
	case nil:
		return []string{path}
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(out, nulls(e, path+"."+k)...)
		}
		return out
	case []any:
		var out []string
		for i, e := range x {
			out = append(out, nulls(e, path+"."+strconv.Itoa(i))...)
		}
		return out
	}
	return nil
}

func TestDocs_RoutesAndTemplatesWorkOnFixtures(t *testing.T) {
	docs := docAutomations(t)
	fixtures := fixtureEnvelopes(t)
	kindOf := map[string]string{}
	for _, a := range docs {
		for _, s := range a.Sources {
			kindOf[s.Name] = s.Kind
		}
	}
	now := time.Now()
	routes, templates := 0, 0
	rendered := map[string][]byte{} // "file target fixture" → body
	for _, a := range docs {
		local := map[string]string{}
		for _, s := range a.Sources {
			local[s.Name] = s.Kind
		}
		// delivered[target] are the fixture events the doc's routes send it.
		delivered := map[string][]*relay.Event{}
		for i, r := range a.Routes {
			if strings.HasPrefix(r.Source, "target:") {
				continue // results of reply_to targets: their data is a target's answer
			}
			kind := cmpOr(local[r.Source], kindOf[r.Source])
			if kind == "" && slices.Contains(provider.Kinds(), r.Source) {
				kind = r.Source
			}
			if kind == "" {
				t.Errorf("%s: routes[%d]: source %q is of no kind the docs name", a.where, i, r.Source)
				continue
			}
			routes++
			router := relay.NewRouter([]relay.Route{{Name: r.Name, Source: r.Source, Tenant: r.Tenant, Types: r.Types,
				Where: []relay.Condition(r.Where), To: r.To, MirrorTo: r.MirrorTo}})
			var matched []string
			for _, e := range fixtures[kind] {
				ev, name := fixtureEvent(t, e, r.Source, r.Tenant)
				dels := router.Deliveries(ev, now)
				if len(dels) == 0 {
					continue
				}
				matched = append(matched, name)
				for _, d := range dels {
					delivered[d.Target] = append(delivered[d.Target], ev)
				}
			}
			if len(matched) == 0 {
				t.Errorf("%s: routes[%d] %+v delivers none of the %d %s fixtures in testdata/: the example does not work on real payloads",
					a.where, i, r, len(fixtures[kind]), kind)
			}
		}
		for _, tg := range a.Targets {
			if strings.TrimSpace(tg.Template) == "" {
				continue
			}
			templates++
			tp, err := deliver.ParseTemplate(tg.Name, tg.Template)
			if err != nil {
				t.Errorf("%s: target %s: template refused: %v", a.where, tg.Name, err)
				continue
			}
			evs := delivered[tg.Name]
			if len(evs) == 0 {
				// No route of the example feeds it: it must work on any event.
				for kind, es := range fixtures {
					for _, e := range es {
						ev, _ := fixtureEvent(t, e, kind, "")
						evs = append(evs, ev)
					}
				}
			}
			for _, ev := range evs {
				// The payload's own nulls are made strings first: a null in
				// the body is then a field the template uses that the
				// payload does not have.
				var env any
				_ = json.Unmarshal(ev.Envelope, &env)
				marked, _ := json.Marshal(markNulls(env))
				body, err := tp.Render(marked, now)
				var v any
				if err == nil {
					err = json.Unmarshal(body, &v)
				}
				if err != nil {
					t.Errorf("%s: target %s, %s event: %v", a.where, tg.Name, ev.Type, err)
					continue
				}
				if n := nulls(v, "body"); len(n) > 0 {
					t.Errorf("%s: target %s renders null at %v for a %s event: a field the template uses is missing from real payloads\n%s",
						a.where, tg.Name, n, ev.Type, body)
				}
				rendered[filepath.Base(a.where)+" "+tg.Name+" "+ev.Type] = body
			}
		}
	}
	if routes < 8 || templates < 2 {
		t.Fatalf("checked %d routes and %d templates; the docs have more", routes, templates)
	}
	// README's Stripe example, on the real invoice.paid fixture: the route
	// delivers it to crm and the template gives its amount.
	var readme *docAutomation
	for i := range docs {
		if strings.HasPrefix(docs[i].where, "../../README.md") && slices.ContainsFunc(docs[i].Targets, func(tg struct {
			Name     string `yaml:"name"`
			Template string `yaml:"template"`
		}) bool {
			return tg.Name == "crm" && strings.Contains(tg.Template, "{{ json .data.object.amount_due }}")
		}) {
			readme = &docs[i]
		}
	}
	if readme == nil || !slices.ContainsFunc(readme.Routes, func(r config.Route) bool {
		return r.Source == "stripe" && slices.Equal(r.Types, []string{"invoice.*"}) && len(r.Where) == 1 &&
			r.Where[0] == relay.Condition{Path: "data.object.currency", Op: relay.OpEq, Value: "usd"} && slices.Contains(r.To, "crm")
	}) {
		t.Fatal("README no longer has its Stripe invoice example (route to crm where data.object.currency: usd, template {{ json .data.object.amount_due }})")
	}
	var got struct {
		Invoice   string `json:"invoice"`
		AmountDue int    `json:"amount_due"`
		Currency  string `json:"currency"`
	}
	body := rendered["README.md:"+strings.SplitN(readme.where, ":", 3)[1]+" crm invoice.paid"]
	if err := json.Unmarshal(body, &got); err != nil || got != (struct {
		Invoice   string `json:"invoice"`
		AmountDue int    `json:"amount_due"`
		Currency  string `json:"currency"`
	}{"in_1QYb7kLkdIwHu7ixGq3ZkT2m", 4900, "usd"}) {
		t.Fatalf("README's crm template on the Stripe invoice.paid fixture = %s (%v)", body, err)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
