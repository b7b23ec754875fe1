package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is one problem with one field. It never holds a secret's value.
type FieldError struct {
	Field string // e.g. "sources[1].kind"; "" for the file as a whole
	Line  int    // the line in the YAML file; 0 when unknown (a default, or no file)
	Msg   string
	Err   error // the cause, when there is one (a file that cannot be read)
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *FieldError) Unwrap() error { return e.Err }

// Problems returns the field errors in err (as Parse and Validate return
// them), ordered by line; an error that is not a FieldError becomes one
// without a field.
func Problems(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		out = append(out, &FieldError{Msg: err.Error(), Err: err})
	}
	walk(err)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Line, out[j].Line
		return a != 0 && (b == 0 || a < b)
	})
	return out
}

// routeNameRE is the " (name)" Validate adds after a named route's index.
var routeNameRE = regexp.MustCompile(` \([^)]*\)`)

// lineOf returns the line of field, or of the nearest enclosing field the
// file sets; 0 when the file sets none of them (the value is a default).
func (c *Config) lineOf(field string) int {
	p := routeNameRE.ReplaceAllString(field, "")
	for p != "" {
		if l, ok := c.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

var (
	durationType = reflect.TypeFor[Duration]()
	unmarshaler  = reflect.TypeFor[yaml.Unmarshaler]()
)

// shape checks that n fits t as the YAML decoder will read it: known keys,
// mappings where a mapping goes, lists where a list goes, numbers,
// booleans and durations that parse. Each problem names its field and line
// in the config's words, never a Go type's.
func shape(n *yaml.Node, t reflect.Type, path string) []error {
	budget := maxShapeNodes
	return shapeOf(n, t, path, &budget)
}

// maxShapeNodes bounds the nodes shape visits, aliases followed: a
// document whose aliases multiply (a "billion laughs") is refused rather
// than walked for ever.
const maxShapeNodes = 1 << 20

func shapeOf(n *yaml.Node, t reflect.Type, path string, budget *int) []error {
	if *budget--; *budget < 0 {
		if *budget == -1 {
			return []error{&FieldError{Field: path, Line: n.Line, Msg: "too many nodes once aliases are expanded: use fewer * aliases"}}
		}
		return nil
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	bad := func(format string, args ...any) []error {
		fe := &FieldError{Field: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
		// Out of the document, so that the rest decodes: the field keeps
		// its default.
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		return []error{fe}
	}
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			return bad("want a duration such as 90s, 5m, 168h or 7d, got %s", describe(n))
		}
		if _, err := ParseDuration(n.Value); err != nil {
			return bad("%q is not a duration: use e.g. 90s, 5m, 168h or 7d", n.Value)
		}
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshaler) {
		return nil // it reads any shape and Validate names what is wrong (Where)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return shapeOf(n, t.Elem(), path, budget)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return bad("want a mapping (key: value, or {key: value, …}), got %s", describe(n))
		}
		fields := yamlFields(t)
		var errs []error
		kept := n.Content[:0:0]
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			p := k
			if path != "" {
				p = path + "." + k
			}
			if first, dup := seen[k]; dup {
				errs = append(errs, &FieldError{Field: p, Line: n.Content[i].Line, Msg: fmt.Sprintf("set twice (first on line %d): keep one", first)})
				continue
			}
			seen[k] = n.Content[i].Line
			f, ok := fields[k]
			if !ok {
				errs = append(errs, &FieldError{Field: p, Line: n.Content[i].Line, Msg: unknownField(k, fields)})
				continue // out of the document, so that the rest decodes
			}
			errs = append(errs, shapeOf(n.Content[i+1], f, p, budget)...)
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
		n.Content = kept
		return errs
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad("want a list ([a, b] or one \"- item\" per line), got %s", describe(n))
		}
		var errs []error
		for i, c := range n.Content {
			errs = append(errs, shapeOf(c, t.Elem(), path+"["+strconv.Itoa(i)+"]", budget)...)
		}
		return errs
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return bad("want a mapping (name: value), got %s", describe(n))
		}
		var errs []error
		kept := n.Content[:0:0]
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if first, dup := seen[k]; dup {
				errs = append(errs, &FieldError{Field: path + "." + k, Line: n.Content[i].Line, Msg: fmt.Sprintf("set twice (first on line %d): keep one", first)})
				continue
			}
			seen[k] = n.Content[i].Line
			errs = append(errs, shapeOf(n.Content[i+1], t.Elem(), path+"."+k, budget)...)
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
		n.Content = kept
		return errs
	}
	if n.Kind != yaml.ScalarNode {
		return bad("want a single value, got %s", describe(n))
	}
	var want string
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		want = "a whole number"
	case reflect.Float64:
		want = "a number"
	case reflect.Bool:
		want = "true or false"
	default:
		return nil // a string takes any scalar
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		return bad("%q is not %s", n.Value, want)
	}
	return nil
}

// yamlFields maps a struct's YAML keys to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" && f.IsExported() {
			out[name] = f.Type
		}
	}
	return out
}

// unknownField says that k is not a key here, suggesting the closest one.
func unknownField(k string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	if hint := didYouMean(k, names); hint != "" {
		return fmt.Sprintf("unknown field %q%s (see deploy/wprelay.example.yaml)", k, hint)
	}
	return fmt.Sprintf("unknown field %q: the fields here are %s (see deploy/wprelay.example.yaml)", k, strings.Join(names, ", "))
}

// didYouMean is `: did you mean "x"?` for the one of names closest to s
// (at most two edits away), or "".
func didYouMean(s string, names []string) string {
	best, dist := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < dist {
			best, dist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(": did you mean %q?", best)
}

// describe names a node's shape for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// errorsJoin is errors.Join of problems, with each line filled in from
// the file the config was read from.
func (c *Config) errorsJoin(errs []error) error {
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) && fe.Line == 0 {
			fe.Line = c.lineOf(fe.Field)
		}
	}
	return errors.Join(errs...)
}
