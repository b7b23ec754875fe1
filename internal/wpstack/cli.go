package wpstack

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ToolsEnv names the directory of the third-party WordPress tools
// (wp-cli.phar, wpcs/, wordpress-current); default: ../shared/tools next
// to the repository, where CI puts them.
const ToolsEnv = "WPRELAY_TOOLS"

// Tools returns the directory of the third-party WordPress tools.
func Tools() string {
	if d := os.Getenv(ToolsEnv); d != "" {
		return d
	}
	return filepath.Join(repoRoot(), "..", "shared", "tools")
}

// CLIResult is what one WP-CLI command did.
type CLIResult struct {
	Stdout, Stderr string
	Code           int // the exit code
}

// WP runs WP-CLI's phar (Tools()/wp-cli.phar) against the site, as root
// would on a host: `php wp-cli.phar --path=ROOT --url=URL --allow-root ARGS`
// (--url only when ARGS do not name one).
func (s *Site) WP(tb testing.TB, args ...string) CLIResult {
	tb.Helper()
	phar := filepath.Join(Tools(), "wp-cli.phar")
	if _, err := os.Stat(phar); err != nil {
		tb.Fatalf("WP-CLI: %v (set %s to the directory holding wp-cli.phar)", err, ToolsEnv)
	}
	base := []string{phar, "--path=" + s.Root, "--allow-root"}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--url=") }) {
		base = append(base, "--url="+s.URL) // unless the command names a site of a network
	}
	cmd := exec.Command("php", append(base, args...)...)
	cmd.Dir = s.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := CLIResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		tb.Fatalf("wp %v: %v", args, err)
	}
	return r
}
