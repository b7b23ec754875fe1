package main

// Docs that run: every configuration in README.md, docs/ and deploy/ is
// checked with the code of "wprelay check --config"; deploy/wprelay.example.yaml
// holds every key of the configuration; every default the docs state is
// config.Default's.

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wprelay/wprelay/relay/config"
)

// docBlock is one ```yaml block of a Markdown file.
type docBlock struct {
	where    string // file:line
	text     string // dedented
	defaults bool   // marked <!-- config: defaults -->: every value it states is the default
}

var yamlFenceRE = regexp.MustCompile("(?m)^(<!-- config: defaults -->\\n)?([ \\t]*)```yaml\\n((?:.*\\n)*?)[ \\t]*```")

// yamlBlocks returns the ```yaml blocks of the Markdown file at path.
func yamlBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []docBlock
	for _, m := range yamlFenceRE.FindAllSubmatchIndex(data, -1) {
		indent := string(data[m[4]:m[5]])
		var lines []string
		for _, l := range strings.Split(string(data[m[6]:m[7]]), "\n") {
			lines = append(lines, strings.TrimPrefix(l, indent))
		}
		line := strings.Count(string(data[:m[0]]), "\n") + 1
		out = append(out, docBlock{where: fmt.Sprintf("%s:%d", path, line), text: strings.Join(lines, "\n"), defaults: m[2] >= 0})
	}
	return out
}

// configKeys are the top-level keys of the configuration.
func configKeys() []string {
	var keys []string
	t := reflect.TypeFor[config.Config]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" {
			keys = append(keys, name)
		}
	}
	return keys
}

// topLevel returns the mapping at the top of a YAML document, or nil.
func topLevel(text string) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	return doc.Content[0]
}

// isConfig reports whether a block is (part of) a configuration: a mapping
// whose keys are all configuration keys. Other blocks (a list of sources
// quoted inside a runbook step) are fragments the text explains.
func isConfig(text string) bool {
	m := topLevel(text)
	if m == nil {
		return false
	}
	keys := configKeys()
	for i := 0; i < len(m.Content); i += 2 {
		if !slices.Contains(keys, m.Content[i].Value) {
			return false
		}
	}
	return true
}

// mergeConfig lays a partial configuration over a full one: a list's
// elements replace those of the same name and are added otherwise; any
// other key replaces the base's.
func mergeConfig(t *testing.T, base, part string) []byte {
	t.Helper()
	b, p := topLevel(base), topLevel(part)
	if b == nil || p == nil {
		t.Fatalf("not a mapping:\n%s\n%s", base, part)
	}
	name := func(n *yaml.Node) string {
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" {
				return n.Content[i+1].Value
			}
		}
		return ""
	}
	for i := 0; i+1 < len(p.Content); i += 2 {
		k, v := p.Content[i], p.Content[i+1]
		j := slices.IndexFunc(b.Content, func(n *yaml.Node) bool { return n.Value == k.Value })
		switch {
		case j < 0 || j%2 == 1:
			b.Content = append(b.Content, k, v)
		case v.Kind == yaml.SequenceNode && b.Content[j+1].Kind == yaml.SequenceNode:
			list := b.Content[j+1]
			for _, el := range v.Content {
				at := slices.IndexFunc(list.Content, func(n *yaml.Node) bool { return name(n) != "" && name(n) == name(el) })
				if at >= 0 {
					list.Content[at] = el
				} else {
					list.Content = append(list.Content, el)
				}
			}
		default:
			b.Content[j+1] = v
		}
	}
	out, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkDocConfig checks one configuration as "wprelay check --config" does.
func checkDocConfig(t *testing.T, where string, data []byte, dir string) {
	t.Helper()
	var e exampleEnv
	cfg, err := parseConfig(where, data, e.env(dir))
	if err == nil {
		err = validConfig(where, cfg)
	}
	if err != nil {
		t.Errorf("%v\n--- the configuration checked:\n%s", err, data)
	}
}

func TestDocs_EveryConfigChecks(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(deployDir, "wprelay.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Full configurations in deploy/: the files with sources.
	var files []string
	_ = filepath.WalkDir(deployDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			if data, _ := os.ReadFile(p); isConfig(string(data)) && strings.Contains(string(data), "\nsources:") {
				files = append(files, p)
			}
		}
		return nil
	})
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		checkDocConfig(t, f, data, filepath.Dir(f))
	}

	// The blocks of the docs: a block with sources is a full configuration,
	// a block without is laid over the file's first full one (README) or
	// over deploy/wprelay.example.yaml (the runbooks).
	docs := []string{"../../README.md"}
	runbooks, _ := filepath.Glob("../../docs/runbooks/*.md")
	docs = append(docs, runbooks...)
	checked := 0
	for _, doc := range docs {
		full := ""
		if !strings.HasSuffix(doc, "README.md") {
			full = string(base)
		}
		for _, b := range yamlBlocks(t, doc) {
			if !isConfig(b.text) {
				continue
			}
			data := []byte(b.text)
			switch {
			case full == "" && topLevel(b.text) != nil && strings.Contains("\n"+b.text, "\nsources:") && strings.Contains(b.text, "\nroutes:"):
				full = b.text
			case full == "":
				t.Fatalf("%s: a partial configuration before the file's first full one", b.where)
			default:
				data = mergeConfig(t, full, b.text)
			}
			checkDocConfig(t, b.where, data, deployDir)
			checked++
		}
	}
	if checked < 7 {
		t.Fatalf("checked %d configuration blocks in %v; the docs have more", checked, docs)
	}
}

// configPaths returns the dotted key paths of t (a list's elements share
// their list's path), stopping at maps, durations and the where mapping.
func configPaths(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[config.Duration]() {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || !f.IsExported() {
			continue
		}
		p := strings.TrimPrefix(prefix+"."+name, ".")
		out[p] = true
		if f.Type != reflect.TypeFor[config.Where]() {
			configPaths(f.Type, p, out)
		}
	}
}

// yamlPaths returns the dotted key paths of a YAML node, as configPaths.
func yamlPaths(n *yaml.Node, prefix string, leaf map[string]bool, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			yamlPaths(c, prefix, leaf, out)
		}
	case yaml.MappingNode:
		if leaf[prefix] {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := strings.TrimPrefix(prefix+"."+n.Content[i].Value, ".")
			out[p] = true
			yamlPaths(n.Content[i+1], p, leaf, out)
		}
	}
}

// deploy/wprelay.example.yaml says it holds every key: it does, as keys
// (not comments), so that it cannot drift from the configuration.
func TestDocs_ExampleHoldsEveryKey(t *testing.T) {
	want := map[string]bool{}
	configPaths(reflect.TypeFor[config.Config](), "", want)
	data, err := os.ReadFile(filepath.Join(deployDir, "wprelay.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	yamlPaths(&doc, "", map[string]bool{"routes.where": true, "targets.headers": true}, got)
	var missing []string
	for p := range want {
		if !got[p] {
			missing = append(missing, p)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("deploy/wprelay.example.yaml lacks these keys (add each with its default and a comment): %s", strings.Join(missing, ", "))
	}
	if strings.Contains(string(data), "only kind") {
		t.Error("deploy/wprelay.example.yaml says a store kind is the only one; this build has bbolt and mysql")
	}
}

// exportedDiff lists the exported fields where a and b differ (an empty
// list equals a missing one).
func exportedDiff(a, b reflect.Value, path string, out *[]string) {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				exportedDiff(a.Field(i), b.Field(i), strings.TrimPrefix(path+"."+f.Name, "."), out)
			}
		}
	case reflect.Slice, reflect.Map:
		if (a.Len() != 0 || b.Len() != 0) && !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: %v, default %v", path, a.Interface(), b.Interface()))
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: %v, default %v", path, a.Interface(), b.Interface()))
		}
	}
}

// nonZeroDiff lists the fields that def sets and v differs in.
func nonZeroDiff(v, def reflect.Value, path string, out *[]string) {
	for i := range def.NumField() {
		f := def.Type().Field(i)
		d := def.Field(i)
		switch {
		case !f.IsExported() || d.IsZero():
		case d.Kind() == reflect.Struct && f.Type != reflect.TypeFor[config.Duration]():
			nonZeroDiff(v.Field(i), d, path+"."+f.Name, out)
		case !reflect.DeepEqual(v.Field(i).Interface(), d.Interface()):
			*out = append(*out, fmt.Sprintf("%s.%s: %v, default %v", path, f.Name, v.Field(i).Interface(), d.Interface()))
		}
	}
}

// Each block the docs mark as stating defaults (<!-- config: defaults -->),
// and deploy/wprelay.example.yaml, states config.Default's values, and the
// defaults of DefaultSource and DefaultTarget for each source and target.
func TestDocs_StatedDefaultsAreDefaults(t *testing.T) {
	type stated struct{ where, text string }
	example, err := os.ReadFile(filepath.Join(deployDir, "wprelay.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	all := []stated{{"deploy/wprelay.example.yaml", string(example)}}
	docs, _ := filepath.Glob("../../docs/runbooks/*.md")
	for _, doc := range append([]string{"../../README.md"}, docs...) {
		for _, b := range yamlBlocks(t, doc) {
			if b.defaults {
				all = append(all, stated{b.where, b.text})
			}
		}
	}
	if len(all) < 4 {
		t.Fatalf("only %d blocks state defaults; README marks two, disk-and-retention.md one", len(all))
	}
	for _, s := range all {
		var e exampleEnv
		cfg, err := config.Parse([]byte(s.text), e.env(deployDir))
		if err != nil {
			t.Errorf("%s: %v", s.where, err)
			continue
		}
		var diffs []string
		got := cfg
		// Lists and secrets have no default to state.
		got.Sources, got.Targets, got.Routes, got.Encryption, got.Admin.Token, got.Store.DSN = nil, nil, nil, config.Encryption{}, "", ""
		exportedDiff(reflect.ValueOf(got), reflect.ValueOf(config.Default()), "", &diffs)
		for i, src := range cfg.Sources {
			nonZeroDiff(reflect.ValueOf(src), reflect.ValueOf(config.DefaultSource()), fmt.Sprintf("sources[%d]", i), &diffs)
		}
		for i, tg := range cfg.Targets {
			nonZeroDiff(reflect.ValueOf(tg), reflect.ValueOf(config.DefaultTarget()), fmt.Sprintf("targets[%d]", i), &diffs)
		}
		for _, d := range diffs {
			t.Errorf("%s states %s", s.where, d)
		}
	}
}

// The docs and what init writes name only files that exist here.
func TestDocs_NoDesignMDOutsideTheRepository(t *testing.T) {
	dir := t.TempDir()
	out, _, code := runCLI("init", "--dir", dir)
	if code != 0 {
		t.Fatalf("init: exit %d", code)
	}
	written, _ := os.ReadFile(filepath.Join(dir, "wprelay.yaml"))
	texts := map[string]string{"wprelay init output": out, "wprelay init's wprelay.yaml": string(written)}
	files, _ := filepath.Glob(filepath.Join(deployDir, "*", "*.yaml"))
	more, _ := filepath.Glob("../../docs/*/*.md")
	files = append(append(files, more...), "../../README.md", filepath.Join(deployDir, "wprelay.example.yaml"), filepath.Join(deployDir, "README.md"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		texts[f] = string(b)
	}
	for name, text := range texts {
		if strings.Contains(text, "DESIGN.md") {
			t.Errorf("%s refers to DESIGN.md, which is not in the repository", name)
		}
	}
}

// proseDefaultRE finds a default stated in a sentence or a table cell:
// "`limits.max_depth` (default 128", "`shutdown`, default 10 s".
var proseDefaultRE = regexp.MustCompile("`([a-z_]+(?:\\.[a-z_]+)*)`[^.;|`]{0,20}?\\(?default:? ([0-9][0-9 ]*(?:[a-z]+)?)")

// fieldByPath returns the value at a dotted YAML path of v, or false.
func fieldByPath(v reflect.Value, path string) (reflect.Value, bool) {
	for _, key := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return v, false
		}
		found := false
		for i := range v.NumField() {
			if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); name == key {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return v, false
		}
	}
	return v, true
}

// Defaults stated in prose ("`shutdown`, default 10 s") are the defaults:
// of the configuration, else of a target, else of a source.
func TestDocs_ProseDefaultsAreDefaults(t *testing.T) {
	docs, _ := filepath.Glob("../../docs/runbooks/*.md")
	more, _ := filepath.Glob("../../docs/*.md")
	docs = append(append(docs, more...), "../../README.md", filepath.Join(deployDir, "README.md"))
	units := strings.NewReplacer(" days", "d", " day", "d", " s", "s", " h", "h", " min", "m", " ms", "ms", " ", "")
	n := 0
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range proseDefaultRE.FindAllStringSubmatch(string(data), -1) {
			path, stated := m[1], strings.TrimSpace(units.Replace(strings.TrimSpace(m[2])))
			var v reflect.Value
			ok := false
			for _, def := range []any{config.Default(), config.DefaultTarget(), config.DefaultSource()} {
				if v, ok = fieldByPath(reflect.ValueOf(def), path); ok {
					break
				}
			}
			if !ok {
				t.Errorf("%s: %q states a default of %s, which is not a configuration key", doc, m[0], path)
				continue
			}
			var want string
			switch x := v.Interface().(type) {
			case config.Duration:
				d, err := config.ParseDuration(stated)
				if err != nil || d != x.D() {
					want = x.D().String()
				}
			default:
				if fmt.Sprint(x) != stated {
					want = fmt.Sprint(x)
				}
			}
			if want != "" {
				t.Errorf("%s: %q: the default of %s is %s", doc, m[0], path, want)
			}
			n++
		}
	}
	if n < 6 {
		t.Fatalf("found %d defaults stated in prose; the docs state more", n)
	}
}
