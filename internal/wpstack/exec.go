// Running things in a site: PHP inside WordPress, SQL, WP-Cron, and the
// small helpers they share.

package wpstack

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// PHP runs code (PHP statements, without "<?php") inside the site, after
// wp-load.php, in a CLI process, and returns what it printed. Shutdown
// hooks run as in any request.
func (s *Site) PHP(tb testing.TB, code string) string {
	tb.Helper()
	out, err := s.PHPErr(code)
	if err != nil {
		tb.Fatalf("php: %v\n%s\ncode:\n%s", err, out, code)
	}
	return out
}

// PHPErr is PHP without a testing.TB: it returns the output and the error.
func (s *Site) PHPErr(code string) (string, error) {
	f, err := os.CreateTemp(s.Dir, "run-*.php")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	prelude := fmt.Sprintf(`<?php
$_SERVER['HTTP_HOST'] = %[1]s; $_SERVER['SERVER_NAME'] = '127.0.0.1'; $_SERVER['REQUEST_URI'] = '/';
$_SERVER['REMOTE_ADDR'] = '127.0.0.1'; $_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
require %[2]s;
`, phpString(s.Host), phpString(filepath.Join(s.Root, "wp-load.php")))
	if _, err := f.WriteString(prelude + code + "\n"); err != nil {
		return "", err
	}
	f.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("php", "-d", "display_errors=stderr", f.Name())
	cmd.Dir = s.Root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// Query runs SQL in the site's database and returns the rows of the last
// statement, each a slice of column values (NULL as "NULL").
func (s *Site) Query(tb testing.TB, sql string) [][]string {
	tb.Helper()
	out, err := s.sql("wp", sql)
	if err != nil {
		tb.Fatalf("query %q: %v", sql, err)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows
}

// QueryInt runs a query whose answer is one number.
func (s *Site) QueryInt(tb testing.TB, sql string) int {
	tb.Helper()
	rows := s.Query(tb, sql)
	if len(rows) != 1 || len(rows[0]) != 1 {
		tb.Fatalf("query %q: want one value, got %v", sql, rows)
	}
	n, err := strconv.Atoi(rows[0][0])
	if err != nil {
		tb.Fatalf("query %q: %v", sql, err)
	}
	return n
}

func (s *Site) sql(db, sql string) (string, error) {
	args := []string{"--no-defaults", "--socket=" + s.socket, "-uroot", "-N", "-B", "-e", sql}
	if db != "" {
		args = append(args, db)
	}
	out, err := exec.Command("mariadb", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// RunCron runs WP-Cron once from the CLI (`php wp-cron.php`), as a system
// cron job would, and returns once the due events have run.
func (s *Site) RunCron(tb testing.TB) {
	tb.Helper()
	cmd := exec.Command("php", "wp-cron.php")
	cmd.Dir = s.Root
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("wp-cron.php: %v\n%s", err, out)
	}
}

// MuPlugin writes code (a whole PHP file) as wp-content/mu-plugins/name,
// loaded by every later request, and removes it when tb's test ends.
func (s *Site) MuPlugin(tb testing.TB, name, code string) {
	tb.Helper()
	path := filepath.Join(s.Root, "wp-content", "mu-plugins", name)
	if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.Remove(path) })
}

// DueCron makes every scheduled event of hook due now, so that the next
// RunCron runs it (as if its time had come).
func (s *Site) DueCron(tb testing.TB, hook string) {
	tb.Helper()
	s.PHP(tb, fmt.Sprintf(`
$crons = _get_cron_array();
$out   = array();
foreach ( $crons as $ts => $hooks ) {
	foreach ( $hooks as $name => $events ) {
		$at = %[1]s === $name ? time() - 1 : $ts;
		foreach ( $events as $key => $event ) {
			$out[ $at ][ $name ][ $key ] = $event;
		}
	}
}
ksort( $out );
_set_cron_array( $out );`, phpString(hook)))
}

// DebugLog returns wp-content/debug.log without the PHP 8.2 deprecation
// notices that WordPress 6.1 core itself causes.
func (s *Site) DebugLog() string {
	data, _ := os.ReadFile(filepath.Join(s.Root, "wp-content", "debug.log"))
	var keep []string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.Contains(line, "PHP Deprecated:") && strings.Contains(line, "/wp-includes/") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

func (s *Site) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.Dir
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// phpString quotes s as a single-quoted PHP string literal.
func phpString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
