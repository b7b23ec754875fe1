//go:build integration

package main

import (
	"archive/zip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// `make plugin-zip` builds the distributable plugin: a wprelay/ folder
// with every file of wpplugin/ but the tests, and a languages/wprelay.pot
// made by `wp i18n make-pot` from those sources.
func TestPluginZip(t *testing.T) {
	out := filepath.Join(t.TempDir(), "wprelay.zip")
	cmd := exec.Command("make", "--no-print-directory", "plugin-zip", "PLUGIN_ZIP="+out, "TOOLS="+wpstack.Tools())
	cmd.Dir = "../.."
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make plugin-zip: %v\n%s", err, msg)
	}
	z, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	files := map[string]*zip.File{}
	for _, f := range z.File {
		if !strings.HasPrefix(f.Name, "wprelay/") {
			t.Errorf("%s is outside the wprelay/ folder", f.Name)
		}
		if strings.Contains(f.Name, "/tests/") || strings.HasSuffix(f.Name, "phpunit.xml") {
			t.Errorf("the zip ships a development file: %s", f.Name)
		}
		files[f.Name] = f
	}
	srcs, _ := filepath.Glob("../../wpplugin/includes/*.php")
	for _, want := range append([]string{"../../wpplugin/wprelay.php", "../../wpplugin/uninstall.php", "../../wpplugin/readme.txt"}, srcs...) {
		name := "wprelay/" + strings.TrimPrefix(want, "../../wpplugin/")
		f, ok := files[name]
		if !ok {
			t.Errorf("the zip lacks %s", name)
			continue
		}
		rc, _ := f.Open()
		got, _ := io.ReadAll(rc)
		rc.Close()
		if src, _ := os.ReadFile(want); string(got) != string(src) {
			t.Errorf("%s in the zip differs from %s", name, want)
		}
	}
	pot, ok := files["wprelay/languages/wprelay.pot"]
	if !ok {
		t.Fatal("the zip has no languages/wprelay.pot")
	}
	rc, _ := pot.Open()
	data, _ := io.ReadAll(rc)
	rc.Close()
	for _, want := range []string{`"X-Generator: WP-CLI`, `msgid "Webhook Relay"`, `msgid "The wprelay sidecar is not reachable"`, "#: includes/class-wprelay-health.php"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("languages/wprelay.pot lacks %s", want)
		}
	}
	if strings.Contains(string(data), "tests/") {
		t.Error("languages/wprelay.pot has strings from tests/")
	}
	t.Logf("plugin zip: %d entries", len(z.File))
}
