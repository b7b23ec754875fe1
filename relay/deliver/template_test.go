package deliver

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/templates")

// templateDir holds one case per name: name.tmpl, name.envelope.json (the
// input) and name.golden.json (the body sent, compact, plus a newline).
const templateDir = "../../testdata/templates"

func TestTemplate_Golden(t *testing.T) {
	tmpls, err := filepath.Glob(filepath.Join(templateDir, "*.tmpl"))
	if err != nil || len(tmpls) == 0 {
		t.Fatalf("no templates in %s: %v", templateDir, err)
	}
	now := time.Date(2026, 11, 28, 10, 0, 5, 0, time.UTC)
	for _, path := range tmpls {
		name := strings.TrimSuffix(filepath.Base(path), ".tmpl")
		t.Run(name, func(t *testing.T) {
			text, _ := os.ReadFile(path)
			env, err := os.ReadFile(filepath.Join(templateDir, name+".envelope.json"))
			if err != nil {
				t.Fatal(err)
			}
			tp, err := ParseTemplate(name, string(text))
			if err != nil {
				t.Fatalf("ParseTemplate: %v", err)
			}
			got, err := tp.Render(env, now)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if !json.Valid(got) {
				t.Fatalf("not JSON: %s", got)
			}
			golden := filepath.Join(templateDir, name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestTemplate_Golden -update)", err)
			}
			if !bytes.Equal(append(got, '\n'), want) {
				t.Errorf("body differs from %s (go test -update to accept):\ngot  %s\nwant %s", golden, got, want)
			}
		})
	}
}

func TestParseTemplate_Rejects(t *testing.T) {
	for _, c := range []struct {
		name, text, want string
	}{
		{"syntax", `{"a": {{ .type }`, "unexpected"},
		{"unknown function", `{"a": {{ env "HOME" }}}`, `function "env" not defined`},
		{"define", `{{ define "x" }}{}{{ end }}{}`, "define and block are not available"},
		{"template call", `{{ template "y" }}`, "not available"},
		{"not JSON", `{"type": {{ .type }}}`, "not valid JSON"},
		{"text", `hello {{ .type }}`, "not valid JSON"},
		{"empty", ``, "not valid JSON"},
		{"wrong argument", `{"a": {{ trunc "x" .type }}}`, "expected integer"},
		{"field of a string", `{"a": {{ json .type.name }}}`, "type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTemplate("targets[1] (crm).template", c.text)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseTemplate_TrialRenderSeesFieldsItUses(t *testing.T) {
	// Fields no sample envelope has, numbers unquoted, lists ranged over,
	// fields of the root from inside a range: all pass the trial render.
	for _, text := range []string{
		`{"amount": {{ .data.object.amount_due }}, "name": "{{ .data.object.customer_name }}"}`,
		`{"skus": [{{ range $i, $l := .data.lines }}{{ if $i }},{{ end }}{{ json .sku }}{{ end }}]}`,
		`{"tags": [{{ range .data.tags }}{{ json . }},{{ end }}null]}`,
		`{{ with .data.deal }}{"deal": {{ json .id }}, "type": {{ quote $.type }}}{{ else }}{}{{ end }}`,
		`{"n": {{ len .data.items }}, "first": {{ json (index .data.items 0) }}}`,
	} {
		if _, err := ParseTemplate("t", text); err != nil {
			t.Errorf("%s: %v", text, err)
		}
	}
}

func TestTemplate_RenderErrors(t *testing.T) {
	tp, err := ParseTemplate("t", `{"text": {{ json .data.post.title }}}`)
	if err != nil {
		t.Fatal(err)
	}
	// A field of a missing object fails the render; it is a template error.
	_, err = tp.Render([]byte(`{"type":"x","data":{}}`), time.Now())
	if err == nil || !errors.Is(err, errTemplate) || !strings.Contains(err.Error(), "title") {
		t.Fatalf("err = %v", err)
	}
	// A missing field is null, and default handles it.
	tp, _ = ParseTemplate("t", `{"text": {{ json .data.title }}, "d": {{ json (default "none" .data.title) }}}`)
	got, err := tp.Render([]byte(`{"data":{}}`), time.Now())
	if err != nil || string(got) != `{"text":null,"d":"none"}` {
		t.Fatalf("got %s, %v", got, err)
	}
	// Output past MaxBody is refused.
	tp, _ = ParseTemplate("t", `{"a": "{{ range .data.x }}{{ $.data.big }}{{ end }}"}`)
	big := strings.Repeat("x", 400<<10)
	env, _ := json.Marshal(map[string]any{"data": map[string]any{"x": []int{1, 2, 3}, "big": big}})
	if _, err := tp.Render(env, time.Now()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized output: %v", err)
	}
}

// FuzzTemplate_Render: whatever the envelope, a template renders valid
// JSON or fails with a template error; it never panics.
func FuzzTemplate_Render(f *testing.F) {
	tmpls, _ := filepath.Glob(filepath.Join(templateDir, "*.tmpl"))
	var parsed []*Template
	for _, path := range tmpls {
		text, _ := os.ReadFile(path)
		tp, err := ParseTemplate(filepath.Base(path), string(text))
		if err != nil {
			f.Fatal(err)
		}
		parsed = append(parsed, tp)
		env, _ := os.ReadFile(strings.TrimSuffix(path, ".tmpl") + ".envelope.json")
		f.Add(env)
	}
	f.Add([]byte(`{"data":{"data":{"content":null,"title":[1,2]}},"subject":"x"}`))
	f.Add([]byte(`[]`))
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, env []byte) {
		for _, tp := range parsed {
			out, err := tp.Render(env, now)
			if err != nil {
				if !errors.Is(err, errTemplate) {
					t.Fatalf("%s: error not marked as a template error: %v", tp.name, err)
				}
				continue
			}
			if !json.Valid(out) {
				t.Fatalf("%s: invalid JSON: %s", tp.name, out)
			}
		}
	})
}

// goldenEnvelope returns the first envelope of testdata/envelopes/NAME.golden.json
// (a provider fixture as the ingress makes it), compact.
func goldenEnvelope(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/envelopes/" + name + ".golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Envelopes []json.RawMessage `json:"envelopes"`
	}
	if err := json.Unmarshal(b, &g); err != nil || len(g.Envelopes) == 0 {
		t.Fatalf("%s: %v", name, err)
	}
	var out bytes.Buffer
	_ = json.Compact(&out, g.Envelopes[0])
	return out.Bytes()
}

// Templates are judged by what they do to events: what fails only on the
// made-up sample is accepted, what cannot work on any event is refused.
func TestParseTemplate_JudgedByEvents(t *testing.T) {
	accepted := []string{
		`{{with .data.tags}}{{index . 3}}{{end}}`,                           // only events with 4 tags have a 4th
		`{"t": {{with .data.tags}}{{json (index . 3)}}{{else}}null{{end}}}`, // the same, as JSON
		`{"amount": {{ json .data.object.amount_due }}}`,
		`{"n": {{ index .data.items 5 }}}`,
	}
	for _, text := range accepted {
		if _, err := ParseTemplate("crm", text); err != nil {
			t.Errorf("%s refused: %v", text, err)
		}
	}
	for _, c := range []struct{ text, want string }{
		{`{"a": {{ .type }`, "unexpected"},
		{`{"a": {{ exec "ls" }}}`, `function "exec" not defined`},
		{`{"a": {{ .type }}}`, "output is not valid JSON"},
		{`{"a": {{ json .data.object.amount_due }}`, "output is not valid JSON"},
		{`{"a": {{ trunc "x" .type }}}`, "with or without data"},
	} {
		if _, err := ParseTemplate("crm", c.text); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.text, err, c.want)
		}
	}
}

// On a real Stripe invoice (testdata/provider/stripe-invoice-paid.txt),
// .data.object.amount_due is the invoice's amount; Try names the field a
// render fails at.
func TestTemplate_StripeInvoiceAndTry(t *testing.T) {
	invoice := goldenEnvelope(t, "stripe-invoice-paid")
	tp, err := ParseTemplate("crm", `{"invoice": {{ json .data.object.id }}, "amount_due": {{ json .data.object.amount_due }}, "first_line": {{ json (index .data.object.lines.data 0).price.unit_amount }}}`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tp.Render(invoice, time.Now())
	if want := `{"invoice":"in_1QYb7kLkdIwHu7ixGq3ZkT2m","amount_due":4900,"first_line":4900}`; err != nil || string(got) != want {
		t.Fatalf("render = %s, %v; want %s", got, err, want)
	}
	if field, err := tp.Try(invoice, time.Now()); field != "" || err != nil {
		t.Fatalf("Try on the invoice = %q, %v", field, err)
	}
	post := goldenEnvelope(t, "wordpress-post-published")
	field, err := tp.Try(post, time.Now())
	if err == nil || field != ".data.object.id" {
		t.Fatalf("Try on a post = %q, %v; want the field .data.object.id", field, err)
	}
}
