package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Env is where ${VAR} and ${file:/path} come from. cmd/wprelay passes the
// process environment and the file system; tests pass maps.
type Env struct {
	Lookup   func(name string) (string, bool)
	ReadFile func(path string) ([]byte, error)
	// Dir resolves relative ${file:...} paths (the config file's directory).
	Dir string
}

// Parse reads a YAML config over Default(), expanding ${VAR} and
// ${file:/path} inside string values (never in keys, and never by textual
// substitution, so a secret cannot change the document's structure). It does
// not validate: call Validate. Its errors are *FieldError values joined with
// errors.Join, each naming the field and its line, in the config's own words
// (Problems lists them).
func Parse(data []byte, env Env) (Config, error) {
	cfg, errs, _ := parse(data, env)
	return cfg, errors.Join(errs...)
}

// Check is Parse then Validate, reporting every problem of the file at
// once: when a value cannot be read (a word where a number goes, an unset
// ${VAR}), the rest is still decoded and validated, and what Validate
// says about the values that could not be read is left out.
func Check(data []byte, env Env) (Config, error) {
	cfg, errs, decoded := parse(data, env)
	if !decoded {
		return cfg, errors.Join(errs...)
	}
	if len(errs) == 0 {
		return cfg, cfg.Validate()
	}
	bad := map[string]bool{}
	for _, e := range errs {
		if fe, ok := e.(*FieldError); ok {
			bad[fe.Field] = true
		}
	}
	for _, p := range Problems(cfg.Validate()) {
		field := routeNameRE.ReplaceAllString(p.Field, "")
		if !bad[field] && !coveredBy(field, bad) {
			errs = append(errs, p)
		}
	}
	return cfg, errors.Join(errs...)
}

// coveredBy reports whether field is, or is inside or around, a field
// already reported.
func coveredBy(field string, bad map[string]bool) bool {
	for b := range bad {
		if strings.HasPrefix(field, b+".") || strings.HasPrefix(field, b+"[") || strings.HasPrefix(b, field+".") || strings.HasPrefix(b, field+"[") {
			return true
		}
	}
	return false
}

// parse reads data over Default(); decoded is false when the document
// could not be read at all (then cfg is Default()).
func parse(data []byte, env Env) (cfg Config, errs []error, decoded bool) {
	cfg = Default()
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil, true
		}
		return cfg, []error{syntaxError(err)}, false
	}
	refs := map[string][]string{}
	lines := map[string]int{}
	expand(&root, "", env, refs, lines, &errs)
	if len(root.Content) == 1 {
		// shape also takes the values it reports out of the document, so
		// that the rest decodes. A value whose reference could not be
		// expanded is reported once, for the reference.
		unexpanded := map[string]bool{}
		for _, e := range errs {
			unexpanded[e.(*FieldError).Field] = true
		}
		for _, e := range shape(root.Content[0], reflect.TypeFor[Config](), "") {
			if !unexpanded[e.(*FieldError).Field] {
				errs = append(errs, e)
			}
		}
	}
	if err := root.Decode(&cfg); err != nil {
		// shape checks what the decoder checks; this is a safety net.
		return cfg, append(errs, &FieldError{Msg: strings.TrimPrefix(err.Error(), "yaml: "), Err: err}), false
	}
	cfg.fillDefaults()
	cfg.refs, cfg.lines = refs, lines
	return cfg, errs, true
}

// yamlLineRE finds the line in a YAML syntax error ("yaml: line 3: ...").
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError turns a YAML syntax error into a FieldError with its line.
func syntaxError(err error) error {
	msg := err.Error()
	fe := &FieldError{Msg: strings.TrimPrefix(msg, "yaml: "), Err: err}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
		fe.Msg = "not valid YAML: " + msg[len(m[0]):]
	}
	return fe
}

// FromReference reports whether the value at path (as errors name it:
// "targets[1].headers.X-Api-Key") was read from a ${…} reference: a value
// that came from the environment or a file is treated as a secret.
func (c *Config) FromReference(path string) bool { return len(c.refs[path]) > 0 }

// References returns the values that ${…} references put into the values
// at path or below it ("targets[1]"): the secrets to keep out of what is
// recorded about that part. The path "" is the whole configuration.
func (c *Config) References(path string) []string {
	var out []string
	for p, vs := range c.refs {
		if path == "" || p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			out = append(out, vs...)
		}
	}
	return out
}

// expand replaces references in every scalar value below n; path names the
// node for errors ("sources[0].secrets[1]"). The paths of the values it
// expanded are added to refs, with the values the references gave; the line
// of each key and list item goes to lines; a reference that cannot be
// resolved is added to errs.
func expand(n *yaml.Node, path string, env Env, refs map[string][]string, lines map[string]int, errs *[]error) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = path + "[" + strconv.Itoa(i) + "]"
				lines[p] = c.Line
			}
			expand(c, p, env, refs, lines, errs)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			lines[p] = n.Content[i].Line
			expand(n.Content[i+1], p, env, refs, lines, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		v, vals, err := expandValues(n.Value, env)
		if err != nil {
			*errs = append(*errs, &FieldError{Field: path, Line: n.Line, Msg: err.Error(), Err: err})
			return
		}
		n.Value = v
		refs[path] = append(vals, v) // the whole value, and each reference's
		// A quoted value stays a string; an expanded plain scalar is
		// re-typed by the decoder (so max_body: ${MAX} still reads a number).
	}
}

// Expand replaces ${VAR} and ${file:/path} in s. "$${" stands for a literal
// "${". A variable that is not set, or a file that cannot be read, is an error
// that names it (never its value).
func Expand(s string, env Env) (string, error) {
	v, _, err := expandValues(s, env)
	return v, err
}

// expandValues is Expand, also returning the value of each reference.
func expandValues(s string, env Env) (string, []string, error) {
	var (
		b    strings.Builder
		vals []string
	)
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), vals, nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", nil, fmt.Errorf("unterminated reference %q: close it with }", trunc(s[i:]))
		}
		ref := s[i+2 : i+j]
		s = s[i+j+1:]
		v, err := resolve(ref, env)
		if err != nil {
			return "", nil, err
		}
		vals = append(vals, v)
		b.WriteString(v)
	}
}

func resolve(ref string, env Env) (string, error) {
	if p, ok := strings.CutPrefix(ref, "file:"); ok {
		if p == "" {
			return "", fmt.Errorf("${file:} needs a path, e.g. ${file:/etc/wprelay/secret}")
		}
		if !filepath.IsAbs(p) && env.Dir != "" {
			p = filepath.Join(env.Dir, p)
		}
		if env.ReadFile == nil {
			return "", fmt.Errorf("${file:%s}: files cannot be read here", p)
		}
		data, err := env.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("${file:%s}: %w", p, err)
		}
		return strings.TrimRight(string(data), "\r\n"), nil
	}
	if !validName(ref) {
		return "", fmt.Errorf("${%s}: not a variable name (letters, digits and _) or file:/path", trunc(ref))
	}
	if env.Lookup != nil {
		if v, ok := env.Lookup(ref); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("${%s} is not set: export it, or put it in the service's environment file", ref)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
