package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// ARCHITECTURE.md stays true: every path it names exists (a bare file or
// package name somewhere in the repository), and every Go name it gives (Main.Start,
// relay.NewEvent, writeError, admin.Store) is declared.
func TestArchitecture_PathsExist(t *testing.T) {
	const root = "../.."
	doc, err := os.ReadFile(filepath.Join(root, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{} // base names
	var src strings.Builder    // every Go file, for declarations
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		files[d.Name()] = true
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := src.String()
	// Words in backquotes that are configuration or WordPress names, not
	// Go names or paths.
	skip := map[string]bool{"where": true, "wordpress": true, "store.kind": true}
	ident := regexp.MustCompile(`^(?:[a-z]+\.)?([A-Za-z][A-Za-z0-9]*)(?:\.([A-Za-z][A-Za-z0-9]*))?$`)
	checked := 0
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(string(doc), -1) {
		tok := m[1]
		switch {
		case skip[tok] || strings.ContainsAny(tok, " <{_"):
		case files[tok]: // a package or directory name: relay, store
			checked++
		case strings.Contains(tok, "/") || regexp.MustCompile(`\.(go|php|md)$`).MatchString(tok):
			p := strings.TrimSuffix(tok, "/")
			if m, _ := filepath.Glob(filepath.Join(root, p)); len(m) == 0 && !(strings.Count(p, "/") == 0 && files[p]) {
				t.Errorf("ARCHITECTURE.md names %s, which does not exist", tok)
			}
			checked++
		default:
			im := ident.FindStringSubmatch(tok)
			if im == nil {
				t.Errorf("ARCHITECTURE.md: %q is neither a path nor a Go name", tok)
				continue
			}
			name := im[1]
			if im[2] != "" {
				name = im[2] // Type.Method or pkg.Name: the last part is declared
			}
			decl := regexp.MustCompile(`(?m)^(?:func (?:\([^)]*\) )?` + name + `\b|type ` + name + `\b|\t` + name + `\s|var ` + name + `\b)`)
			if !decl.MatchString(code) {
				t.Errorf("ARCHITECTURE.md names %s, which is not declared", tok)
			}
			checked++
		}
	}
	if checked < 40 {
		t.Fatalf("only %d names checked", checked)
	}
}
