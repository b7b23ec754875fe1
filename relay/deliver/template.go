package deliver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode/utf8"

	"github.com/wprelay/wprelay/relay"
)

// MaxBody is the largest request body a template may render.
const MaxBody = 1 << 20

// Template renders a target's request body from the canonical envelope: a
// Go text/template whose output must be JSON. The envelope is the dot, as
// decoded JSON (objects are maps, numbers keep every digit): .type,
// .subject.id, .data.object.amount_due. A missing field is empty (nil), so
// `default` and `with` can handle it; a field of a missing object is an
// error.
//
// Functions, all without side effects:
//
//	json v          v as JSON (toJSON is the same): strings quoted and escaped
//	quote v         v as a JSON string
//	default d v     v, or d when v is missing, null, "", 0, false or empty
//	lower, upper, trim v
//	trunc n v       the first n characters of v
//	join sep list   the items of list, as text, separated by sep
//	now             the time of the attempt, RFC 3339 (UTC)
//
// define, template and block are not available.
//
// A template is judged by what it does to events. ParseTemplate refuses
// syntax errors, unknown functions, output that cannot be JSON (a trial
// render against an envelope holding every field the template uses,
// numbers at the leaves, that runs through but does not give JSON), and a
// trial render that stops with the same error when the envelope has no data
// at all (a wrong argument, a field of .type). A trial render that stops
// only because of the sample's made-up data (an index past its one
// element) proves nothing about real events and is not refused. Try renders against a real or sample envelope and says
// which field failed: the start-up warning against each source kind's
// sample, and at delivery time a failing render dead-letters the delivery
// with the reason.
type Template struct {
	name string
	t    *template.Template
}

// errTemplate marks errors of rendering (not of sending).
var errTemplate = errors.New("template")

// ParseTemplate compiles text and checks it (see Template); name appears
// in errors.
func ParseTemplate(name, text string) (*Template, error) {
	t, err := template.New(name).Option("missingkey=zero").Funcs(funcs(time.Time{})).Parse(text)
	if err != nil {
		return nil, err
	}
	if len(t.Templates()) > 1 {
		return nil, fmt.Errorf("%s: define and block are not available in body templates", name)
	}
	if t.Tree == nil || t.Root == nil {
		return nil, fmt.Errorf("%s: empty template", name)
	}
	s := &sampler{}
	if err := s.walk(t.Root, []string{}); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	tp := &Template{name: name, t: t}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	out, err := tp.execute(s.sample(), at)
	if err == nil {
		if _, err = tp.compact(out); err != nil {
			return nil, fmt.Errorf("trial render against a sample envelope: %w", err)
		}
		return tp, nil
	}
	// It stopped: refused only when it stops the same way without any
	// data, so that no event could make it work.
	if _, bare := tp.execute((&sampler{}).sample(), at); bare != nil && bare.Error() == err.Error() {
		return nil, fmt.Errorf("trial render against a sample envelope, with or without data: %w", err)
	}
	return tp, nil
}

// Try renders the template for envelope env and, when that fails, returns
// the error and the field it failed at (".data.object.amount_due"; "" when
// the error names none, as for output that is not JSON).
func (t *Template) Try(env []byte, now time.Time) (field string, err error) {
	if _, err = t.Render(env, now); err == nil {
		return "", nil
	}
	msg := err.Error()
	if i := strings.Index(msg, " at <"); i >= 0 {
		if j := strings.Index(msg[i+5:], ">"); j >= 0 {
			field = msg[i+5 : i+5+j]
		}
	}
	return field, err
}

// Render returns the body for envelope env (canonical JSON) as of now:
// compact JSON. Its errors wrap errTemplate.
func (t *Template) Render(env []byte, now time.Time) ([]byte, error) {
	data := relay.DecodeEnvelope(env)
	if data == nil {
		return nil, fmt.Errorf("%w: the envelope is not a JSON object", errTemplate)
	}
	return t.render(data, now)
}

func (t *Template) render(data map[string]any, now time.Time) ([]byte, error) {
	out, err := t.execute(data, now)
	if err != nil {
		return nil, err
	}
	return t.compact(out)
}

// errExecute marks a render that stopped with an error (as opposed to one
// whose output is not JSON).
var errExecute = errors.New("execute")

// execute runs the template on data; its errors wrap errTemplate and
// errExecute.
func (t *Template) execute(data map[string]any, now time.Time) ([]byte, error) {
	var buf limitedBuffer
	tt, err := t.t.Clone()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errTemplate, err)
	}
	if err := tt.Funcs(funcs(now)).Execute(&buf, data); err != nil {
		return nil, &execError{msg: fmt.Sprintf("%v: %s", errTemplate, strings.TrimPrefix(err.Error(), "template: "))}
	}
	return buf.Bytes(), nil
}

// execError is a render stopped by an error: errTemplate and errExecute.
type execError struct{ msg string }

func (e *execError) Error() string { return e.msg }
func (e *execError) Is(target error) bool {
	return target == errTemplate || target == errExecute
}

// compact returns out compacted, or an error wrapping errTemplate when it
// is not JSON.
func (t *Template) compact(out []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, out); err != nil {
		return nil, fmt.Errorf("%w: %s: output is not valid JSON (%v): %s", errTemplate, t.name, err, snippet(out))
	}
	return b.Bytes(), nil
}

// limitedBuffer is a bytes.Buffer that refuses to grow past MaxBody.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxBody {
		return 0, fmt.Errorf("output larger than %d bytes", MaxBody)
	}
	return b.Buffer.Write(p)
}

func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// funcs are the template functions; now is what `now` returns.
func funcs(now time.Time) template.FuncMap {
	toJSON := func(v any) (string, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSuffix(b.String(), "\n"), nil
	}
	return template.FuncMap{
		"json":    toJSON,
		"toJSON":  toJSON,
		"quote":   func(v any) (string, error) { return toJSON(str(v)) },
		"default": func(d, v any) any { return defaultOf(d, v) },
		"lower":   func(v any) string { return strings.ToLower(str(v)) },
		"upper":   func(v any) string { return strings.ToUpper(str(v)) },
		"trim":    func(v any) string { return strings.TrimSpace(str(v)) },
		"trunc": func(n int, v any) string {
			s := str(v)
			if n < 0 || utf8.RuneCountInString(s) <= n {
				return s
			}
			r := []rune(s)
			return string(r[:n])
		},
		"join": func(sep string, list any) string {
			v := reflect.ValueOf(list)
			if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
				return str(list)
			}
			parts := make([]string, v.Len())
			for i := range parts {
				parts[i] = str(v.Index(i).Interface())
			}
			return strings.Join(parts, sep)
		},
		"now": func() string { return now.UTC().Format(time.RFC3339) },
	}
}

// str is v as text: strings as they are, nil as "", JSON for objects and
// arrays, fmt for the rest.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

func defaultOf(d, v any) any {
	if v == nil {
		return d
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		if rv.Len() == 0 {
			return d
		}
	case reflect.Bool:
		if !rv.Bool() {
			return d
		}
	}
	if n, ok := v.(json.Number); ok && (n == "0" || n == "0.0") {
		return d
	}
	if rv.IsZero() {
		return d
	}
	return v
}

// sampler collects the envelope paths a template uses, to build an
// envelope for the trial render that has them all.
type sampler struct {
	paths [][]string          // each ending in a leaf; "[]" marks a list element
	vars  map[string][]string // variables bound to a path ($l in range $i, $l := .x)
}

// walk visits n with dot at path (nil: unknown, e.g. a variable's value).
func (s *sampler) walk(n parse.Node, dot []string) error {
	switch n := n.(type) {
	case nil:
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := s.walk(c, dot); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return s.pipe(n.Pipe, dot)
	case *parse.IfNode:
		return s.branch(&n.BranchNode, dot, false)
	case *parse.WithNode:
		return s.branch(&n.BranchNode, dot, false)
	case *parse.RangeNode:
		return s.branch(&n.BranchNode, dot, true)
	case *parse.TemplateNode:
		return fmt.Errorf("{{template %q}} is not available in body templates", n.Name)
	case *parse.PipeNode:
		return s.pipe(n, dot)
	case *parse.CommandNode:
		for _, a := range n.Args {
			if err := s.walk(a, dot); err != nil {
				return err
			}
		}
	case *parse.FieldNode:
		s.add(dot, n.Ident, false)
	case *parse.VariableNode:
		switch {
		case len(n.Ident) > 1 && n.Ident[0] == "$":
			s.add([]string{}, n.Ident[1:], false)
		case len(n.Ident) > 1 && s.vars[n.Ident[0]] != nil:
			s.add(s.vars[n.Ident[0]], n.Ident[1:], false)
		}
	case *parse.ChainNode:
		if f, ok := n.Node.(*parse.FieldNode); ok {
			s.add(dot, append(append([]string{}, f.Ident...), n.Field...), false)
		}
		return s.walk(n.Node, dot)
	}
	return nil
}

// pipe visits a pipeline; a variable it declares from a plain field
// stands for that field's path ({{ $x := .data.deal }}).
func (s *sampler) pipe(p *parse.PipeNode, dot []string) error {
	if p == nil {
		return nil
	}
	if f := plainField(p); f != nil && dot != nil && len(p.Decl) == 1 {
		s.bind(p.Decl[0], append(append([]string{}, dot...), f...))
	}
	for _, c := range p.Cmds {
		if err := s.walk(c, dot); err != nil {
			return err
		}
	}
	return nil
}

// branch visits if/with/range: with and range move the dot to their
// pipeline's value when it is a plain field.
func (s *sampler) branch(b *parse.BranchNode, dot []string, isRange bool) error {
	if err := s.pipe(b.Pipe, dot); err != nil {
		return err
	}
	inner := dot
	if b.NodeType != parse.NodeIf {
		inner = nil
		if f := plainField(b.Pipe); f != nil && dot != nil {
			inner = append(append([]string{}, dot...), f...)
			if isRange {
				s.add(dot, f, true)
				inner = append(inner, "[]")
			}
			if decl := b.Pipe.Decl; len(decl) > 0 {
				s.bind(decl[len(decl)-1], inner) // range $i, $e := …: $e is the element
			}
		}
	}
	if err := s.walk(b.List, inner); err != nil {
		return err
	}
	return s.walk(b.ElseList, dot)
}

// plainField returns the field path of a pipeline that is one field
// ({{range .data.items}}), else nil.
func plainField(p *parse.PipeNode) []string {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return nil
	}
	if f, ok := p.Cmds[0].Args[0].(*parse.FieldNode); ok {
		return f.Ident
	}
	return nil
}

func (s *sampler) bind(v *parse.VariableNode, path []string) {
	if s.vars == nil {
		s.vars = map[string][]string{}
	}
	s.vars[v.Ident[0]] = path
}

func (s *sampler) add(dot, ident []string, list bool) {
	if dot == nil {
		return
	}
	p := append(append([]string{}, dot...), ident...)
	if list {
		p = append(p, "[]")
	}
	s.paths = append(s.paths, p)
}

// sample returns an envelope with every collected path: the canonical
// fields with sample values, then the template's own paths, whose leaves
// are the number 1 (valid JSON whether the template quotes it or not).
func (s *sampler) sample() map[string]any {
	env := relay.DecodeEnvelope([]byte(`{"id":"01a22254-d1ee-79c0-b550-51bb23089f0e","source":"sample","tenant":"",
		"type":"sample.created","idempotency_key":"sample::1","occurred_at":"2026-11-28T10:00:00Z",
		"received_at":"2026-11-28T10:00:00Z","causation_id":"","actor":{"id":"1","email":"someone@example.com"},
		"subject":{"id":"1","type":"sample"},"action":{"type":"created","reason":""},"data":{}}`))
	// Longer paths first, so that a list whose elements have fields gets
	// objects for elements.
	paths := append([][]string{}, s.paths...)
	sort.SliceStable(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	for _, p := range paths {
		setPath(env, p)
	}
	return env
}

// setPath creates the maps and lists along p in m, ending in a leaf.
func setPath(m map[string]any, p []string) {
	var cur any = m
	for i, seg := range p {
		last := i == len(p)-1
		switch c := cur.(type) {
		case map[string]any:
			if seg == "[]" {
				return
			}
			next, ok := c[seg]
			if !ok || next == nil {
				switch {
				case last:
					next = json.Number("1")
				case p[i+1] == "[]" && i+2 == len(p):
					next = []any{json.Number("1")}
				case p[i+1] == "[]":
					next = []any{map[string]any{}}
				default:
					next = map[string]any{}
				}
				c[seg] = next
			}
			cur = next
		case []any:
			if seg != "[]" || len(c) == 0 {
				return
			}
			if last {
				return
			}
			cur = c[0]
		default:
			return
		}
	}
}
