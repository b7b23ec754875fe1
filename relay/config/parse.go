package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
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
// not validate: call Validate.
func Parse(data []byte, env Env) (Config, error) {
	cfg := Default()
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil
		}
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := unknownFields(data); err != nil {
		return cfg, err
	}
	refs := map[string][]string{}
	if err := expand(&root, "", env, refs); err != nil {
		return cfg, err
	}
	if err := root.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	cfg.refs = refs
	return cfg, nil
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

// unknownFields decodes the unexpanded text with unknown fields rejected, so
// that a typo such as "secret:" for "secrets:" is an error rather than a
// silently missing value. Type errors are left to the real decode, which
// sees expanded values.
func unknownFields(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	err := dec.Decode(&c)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return nil
	}
	var msgs []string
	for _, m := range te.Errors {
		if strings.Contains(m, "not found in type") {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("config: unknown field: %s (see the example in deploy/wprelay.example.yaml)", strings.Join(msgs, "; "))
	}
	return nil
}

// expand replaces references in every scalar value below n; path names the
// node for errors ("sources[0].secrets[1]"). The paths of the values it
// expanded are added to refs, with the values the references gave.
func expand(n *yaml.Node, path string, env Env, refs map[string][]string) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = path + "[" + strconv.Itoa(i) + "]"
			}
			if err := expand(c, p, env, refs); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			if err := expand(n.Content[i+1], p, env, refs); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return nil
		}
		v, vals, err := expandValues(n.Value, env)
		if err != nil {
			return fmt.Errorf("config: %s: %w", path, err)
		}
		n.Value = v
		refs[path] = append(vals, v) // the whole value, and each reference's
		// A quoted value stays a string; an expanded plain scalar is
		// re-typed by the decoder (so max_body: ${MAX} still reads a number).
	}
	return nil
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
