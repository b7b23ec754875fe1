package relay

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every key docs/logging.md documents in its tables is a LogKey constant.
func TestLogKeys_Documented(t *testing.T) {
	doc, err := os.ReadFile("../docs/logging.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("logkeys.go")
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\tLogKey\w+\s*=\s*"([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		consts[m[1]] = true
	}
	n := 0
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.SplitN(line, "|", 3)[1]
		for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(cell, -1) {
			n++
			if !consts[m[1]] {
				t.Errorf("docs/logging.md documents the key %q; relay/logkeys.go has no constant for it", m[1])
			}
		}
	}
	if n < 15 {
		t.Fatalf("only %d documented keys found", n)
	}
}
