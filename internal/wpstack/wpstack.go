// Package wpstack provisions and runs a real WordPress for tests: Debian's
// wordpress package served by `php -S` (4 workers) with its own MariaDB, both
// on loopback from a temp dir, installed without wp-cli, with the wprelay
// plugin copied in and activated and a test mu-plugin that records every
// wprelay_event action and catches mail.
//
// Start provisions what is missing (apt-get, as root, only for packages not
// installed), so that `make test` works on a fresh Debian machine. When it
// cannot (not Debian, not root), it fails the test with a message saying
// so, unless WPRELAY_SKIP_WP=1 is set, which skips instead.
//
// The recipe and its gotchas are in shared/notes/wordpress-test-stack.md.
//
// # Caveats
//
// Processes are stopped by PID: php -S runs in its own session and is killed
// as a process group (its workers outlive the master otherwise). A watchdog
// in its own session kills both servers when the test process dies without
// calling Stop (a panic, a -timeout).
package wpstack

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SkipEnv, set to 1, makes Start skip the test when the stack cannot be
// provisioned, instead of failing it.
const SkipEnv = "WPRELAY_SKIP_WP"

// Options configure a site.
type Options struct {
	// Constants are define()d in wp-config.php (string values), e.g. the
	// WPRELAY_* secrets. SetConstants replaces them later.
	Constants map[string]string
	// PluginDir is the plugin to install as wp-content/plugins/wprelay;
	// default: the repository's wpplugin/.
	PluginDir string
	// Logf receives progress lines; default: discard.
	Logf func(format string, args ...any)
}

// Site is a running WordPress.
type Site struct {
	URL       string // http://127.0.0.1:PORT, the home URL
	Host      string // 127.0.0.1:PORT
	Dir       string // temp dir holding everything
	Root      string // document root
	AdminUser string
	AdminPass string
	AppPass   string // an Application Password of AdminUser (REST Basic auth)
	// Provision tells how long each step of Start took.
	Provision Timings

	socket   string
	db       *exec.Cmd
	php      *exec.Cmd
	watchdog *exec.Cmd
	mu       sync.Mutex
	stopped  bool
}

// Timings of the provisioning steps.
type Timings struct {
	Packages, Database, Files, Install, Server, Total time.Duration
}

func (t Timings) String() string {
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	return fmt.Sprintf("total %s (packages %s, database %s, files %s, install %s, server %s)",
		r(t.Total), r(t.Packages), r(t.Database), r(t.Files), r(t.Install), r(t.Server))
}

// repoRoot is the repository root, found from this file's path.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Start provisions and starts a site and stops it when tb's test ends.
func Start(tb testing.TB, o Options) *Site {
	tb.Helper()
	if o.Logf == nil {
		o.Logf = tb.Logf
	}
	s, err := New(o)
	if err != nil {
		Fail(tb, err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// ErrCannotProvision wraps why this machine cannot run the stack.
var ErrCannotProvision = errors.New("cannot provision the WordPress test stack")

// Fail ends tb because of err: a skip when err is ErrCannotProvision and
// WPRELAY_SKIP_WP=1, a failure otherwise.
func Fail(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrCannotProvision) && os.Getenv(SkipEnv) == "1" {
		tb.Skipf("%v (%s=1: skipping)", err, SkipEnv)
	}
	if errors.Is(err, ErrCannotProvision) {
		tb.Fatalf("%v\nThe WordPress tests need Debian and root (to apt-get install the packages once), "+
			"or the packages already installed. Set %s=1 to skip them explicitly.", err, SkipEnv)
	}
	tb.Fatalf("wpstack: %v", err)
}

// New provisions and starts a site. The caller must call Stop.
func New(o Options) (*Site, error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.PluginDir == "" {
		o.PluginDir = filepath.Join(repoRoot(), "wpplugin")
	}
	t0 := time.Now()
	var tm Timings
	if err := ensurePackages(o.Logf); err != nil {
		return nil, err
	}
	tm.Packages = time.Since(t0)

	dir, err := os.MkdirTemp("", "wpstack-")
	if err != nil {
		return nil, err
	}
	s := &Site{Dir: dir, Root: filepath.Join(dir, "site"), socket: filepath.Join(dir, "mysqld.sock"),
		AdminUser: "admin", AdminPass: "admin-" + randomString(12)}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()

	t1 := time.Now()
	if err := s.startDatabase(); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	tm.Database = time.Since(t1)

	t2 := time.Now()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.Host = "127.0.0.1:" + strconv.Itoa(port)
	s.URL = "http://" + s.Host
	if err := s.writeFiles(o); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	tm.Files = time.Since(t2)

	t3 := time.Now()
	scripts := filepath.Join(repoRoot(), "scripts", "wpstack")
	if out, err := s.run("php", filepath.Join(scripts, "install.php"), s.Root, s.Host, s.AdminUser, s.AdminPass); err != nil {
		return nil, fmt.Errorf("install.php: %w\n%s", err, out)
	}
	out, err := s.run("php", filepath.Join(scripts, "setup.php"), s.Root, s.Host, "wprelay/wprelay.php")
	if err != nil {
		return nil, fmt.Errorf("setup.php: %w\n%s", err, out)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) == 0 {
		return nil, fmt.Errorf("setup.php printed no application password")
	}
	s.AppPass = lines[len(lines)-1]
	tm.Install = time.Since(t3)

	t4 := time.Now()
	if err := s.startServer(filepath.Join(scripts, "router.php")); err != nil {
		return nil, fmt.Errorf("php -S: %w", err)
	}
	tm.Server = time.Since(t4)
	s.startWatchdog()
	tm.Total = time.Since(t0)
	s.Provision = tm
	o.Logf("wpstack: WordPress at %s: %s", s.URL, tm)
	ok = true
	return s, nil
}

// ensurePackages installs the Debian packages when any is missing.
func ensurePackages(logf func(string, ...any)) error {
	missing := false
	for _, bin := range []string{"php", "mariadbd", "mariadb", "mariadb-install-db", "phpunit"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat(filepath.Join("/usr/sbin", bin)); err != nil {
				missing = true
			}
		}
	}
	if _, err := os.Stat("/usr/share/wordpress/wp-settings.php"); err != nil {
		missing = true
	}
	if _, err := os.Stat("/usr/share/wordpress/wp-content/themes/twentytwentythree"); err != nil {
		missing = true
	}
	if !missing {
		return nil
	}
	if _, err := os.Stat("/etc/debian_version"); err != nil {
		return fmt.Errorf("%w: not a Debian machine (no /etc/debian_version) and the packages are missing", ErrCannotProvision)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: packages are missing and this is not root; run `sudo make deps`", ErrCannotProvision)
	}
	logf("wpstack: installing Debian packages (once; about 30-110 s)")
	cmd := exec.Command("sh", filepath.Join(repoRoot(), "scripts", "wpstack", "install-packages.sh"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: install-packages.sh: %v\n%s", ErrCannotProvision, err, out)
	}
	return nil
}

func (s *Site) startDatabase() error {
	data := filepath.Join(s.Dir, "db")
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"--user=root"} // mandatory as root
	}
	args := append([]string{"--no-defaults"}, user...)
	args = append(args, "--datadir="+data, "--auth-root-authentication-method=normal", "--skip-test-db", "--innodb-log-file-size=8M")
	if out, err := s.run("mariadb-install-db", args...); err != nil {
		return fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	bin := "/usr/sbin/mariadbd"
	if p, err := exec.LookPath("mariadbd"); err == nil {
		bin = p
	}
	args = append([]string{"--no-defaults"}, user...)
	args = append(args, "--datadir="+data, "--socket="+s.socket, "--pid-file="+filepath.Join(s.Dir, "mysqld.pid"),
		"--skip-networking", "--log-error="+filepath.Join(s.Dir, "mysqld.err"),
		"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=8M")
	s.db = exec.Command(bin, args...)
	s.db.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := s.db.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := s.run("mariadb-admin", "--no-defaults", "--socket="+s.socket, "-uroot", "ping"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "mysqld.err"))
			return fmt.Errorf("mariadbd not ready after 30 s:\n%s", tailLines(string(log), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err := s.sql("", "CREATE DATABASE wp CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "+
		"CREATE USER 'wp'@'localhost' IDENTIFIED BY 'wp-pass'; GRANT ALL ON wp.* TO 'wp'@'localhost';")
	return err
}

// writeFiles copies the core (dereferencing Debian's relative symlinks),
// writes wp-config.php, and copies the plugin and the test mu-plugins.
func (s *Site) writeFiles(o Options) error {
	if out, err := s.run("cp", "-rL", "/usr/share/wordpress", s.Root); err != nil {
		return fmt.Errorf("copy core: %w\n%s", err, out)
	}
	for _, p := range []string{"wp-config.php", ".htaccess", "wp-content"} {
		if err := os.RemoveAll(filepath.Join(s.Root, p)); err != nil {
			return err
		}
	}
	for _, d := range []string{"plugins", "themes", "uploads", "mu-plugins", "upgrade"} {
		if err := os.MkdirAll(filepath.Join(s.Root, "wp-content", d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Symlink("/usr/share/wordpress/wp-content/themes/twentytwentythree", filepath.Join(s.Root, "wp-content", "themes", "twentytwentythree")); err != nil {
		return err
	}
	if out, err := s.run("cp", "-r", o.PluginDir, filepath.Join(s.Root, "wp-content", "plugins", "wprelay")); err != nil {
		return fmt.Errorf("copy plugin: %w\n%s", err, out)
	}
	mu, _ := filepath.Glob(filepath.Join(repoRoot(), "scripts", "wpstack", "mu-plugins", "*.php"))
	for _, f := range mu {
		if out, err := s.run("cp", f, filepath.Join(s.Root, "wp-content", "mu-plugins")); err != nil {
			return fmt.Errorf("copy mu-plugin: %w\n%s", err, out)
		}
	}
	if err := s.writeConstants(o.Constants); err != nil {
		return err
	}
	var salts strings.Builder
	for _, k := range []string{"AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY", "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"} {
		fmt.Fprintf(&salts, "define( '%s', '%s' );\n", k, randomString(48))
	}
	cfg := fmt.Sprintf(`<?php
// Written by internal/wpstack for tests. Loopback only.
define( 'DB_NAME', 'wp' );
define( 'DB_USER', 'wp' );
define( 'DB_PASSWORD', 'wp-pass' );
define( 'DB_HOST', 'localhost:%[1]s' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
$table_prefix = 'wp_';
%[2]s
define( 'WP_HOME', '%[3]s' );
define( 'WP_SITEURL', '%[3]s' );
define( 'WP_CONTENT_DIR', __DIR__ . '/wp-content' );
define( 'WP_CONTENT_URL', '%[3]s/wp-content' );
define( 'WP_ENVIRONMENT_TYPE', 'local' );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );        // wp_remote_*() reach only loopback:
define( 'WP_ACCESSIBLE_HOSTS', '127.0.0.*' );   // the site and the sidecar
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_AUTO_UPDATE_CORE', false );
define( 'FS_METHOD', 'direct' );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_LOG', __DIR__ . '/wp-content/debug.log' );
define( 'WP_DEBUG_DISPLAY', false );
require __DIR__ . '/wpstack-constants.php';
if ( ! defined( 'DISABLE_WP_CRON' ) ) {
	define( 'DISABLE_WP_CRON', true );             // tests run cron explicitly, unless a test's constants say otherwise
}
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
`, s.socket, salts.String(), s.URL)
	return os.WriteFile(filepath.Join(s.Root, "wp-config.php"), []byte(cfg), 0o644)
}

// writeConstants (re)writes the file wp-config.php requires for the test's
// constants, atomically (a request may be reading it).
func (s *Site) writeConstants(c map[string]string) error {
	names := make([]string, 0, len(c))
	for k := range c {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("<?php\n// Test constants, written by internal/wpstack.\n")
	for _, k := range names {
		fmt.Fprintf(&b, "define( %s, %s );\n", phpString(k), phpString(c[k]))
	}
	path := filepath.Join(s.Root, "wpstack-constants.php")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// SetConstants replaces the test constants; the next request sees them.
func (s *Site) SetConstants(tb testing.TB, c map[string]string) {
	tb.Helper()
	if err := s.writeConstants(c); err != nil {
		tb.Fatal(err)
	}
}

func (s *Site) startServer(router string) error {
	log, err := os.Create(filepath.Join(s.Dir, "php.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	// opcache is on under the cli-server SAPI (opcache.enable_cli covers only
	// "cli") and by default trusts a cached file for 2 s: revalidate on every
	// request, so that SetConstants takes effect at once.
	s.php = exec.Command("php", "-d", "opcache.revalidate_freq=0", "-S", s.Host, "-t", s.Root, router)
	s.php.Env = append(os.Environ(), "PHP_CLI_SERVER_WORKERS=4")
	s.php.Stdout, s.php.Stderr = log, log
	s.php.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := s.php.Start(); err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(s.URL + "/wp-json/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := os.ReadFile(filepath.Join(s.Dir, "php.log"))
	return fmt.Errorf("not answering /wp-json/ after 20 s:\n%s", tailLines(string(out), 20))
}

// startWatchdog starts a process, in its own session, that stops both
// servers once this process is gone.
func (s *Site) startWatchdog() {
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done; kill -TERM -- -%d 2>/dev/null; kill -TERM %d 2>/dev/null; sleep 3; rm -rf %s`,
		os.Getpid(), s.php.Process.Pid, s.db.Process.Pid, shellQuote(s.Dir))
	s.watchdog = exec.Command("bash", "-c", script) // dash's kill takes no process group
	s.watchdog.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := s.watchdog.Start(); err != nil {
		s.watchdog = nil
	}
}

// Stop stops the servers (by PID) and removes the temp dir; set
// WPSTACK_KEEP=1 to keep the dir for a post-mortem.
func (s *Site) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	if s.watchdog != nil {
		_ = s.watchdog.Process.Kill()
		_ = s.watchdog.Wait()
	}
	if s.php != nil && s.php.Process != nil {
		_ = syscall.Kill(-s.php.Process.Pid, syscall.SIGTERM)
		waitOrKill(s.php, -s.php.Process.Pid, 5*time.Second)
	}
	if s.db != nil && s.db.Process != nil {
		_ = s.db.Process.Signal(syscall.SIGTERM)
		waitOrKill(s.db, s.db.Process.Pid, 15*time.Second)
	}
	if os.Getenv("WPSTACK_KEEP") != "1" {
		_ = os.RemoveAll(s.Dir)
	}
}

func waitOrKill(cmd *exec.Cmd, pid int, within time.Duration) {
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
	}
}

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
