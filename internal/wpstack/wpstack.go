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
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SkipEnv, set to 1, makes Start skip the test when the stack cannot be
// provisioned, instead of failing it.
const SkipEnv = "WPRELAY_SKIP_WP"

// CoreEnv names the WordPress directory sites run by default (see
// Options.Core).
const CoreEnv = "WPRELAY_WP_CORE"

// DebianCore is Debian 12's WordPress (6.1).
const DebianCore = "/usr/share/wordpress"

// Options configure a site.
type Options struct {
	// Constants are define()d in wp-config.php (string values), e.g. the
	// WPRELAY_* secrets. SetConstants replaces them later.
	Constants map[string]string
	// PluginDir is the plugin to install as wp-content/plugins/wprelay;
	// default: the repository's wpplugin/.
	PluginDir string
	// Core is the WordPress to run (a directory like /usr/share/wordpress,
	// its default theme under wp-content/themes); default: $WPRELAY_WP_CORE,
	// else Debian 12's /usr/share/wordpress (6.1). `make deps` puts 6.8 in
	// bin/wordpress-current/wordpress with ../shared/tools/wordpress-current.
	Core string
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
	Version   string // WordPress's version, from wp-includes/version.php
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
	if o.Core == "" {
		o.Core = os.Getenv(CoreEnv)
	}
	if o.Core == "" {
		o.Core = DebianCore
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
	o.Logf("wpstack: WordPress %s at %s: %s", s.Version, s.URL, tm)
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

// writeFiles copies the core (dereferencing Debian's relative symlinks),
// writes wp-config.php, and copies the plugin and the test mu-plugins.
func (s *Site) writeFiles(o Options) error {
	if _, err := os.Stat(filepath.Join(o.Core, "wp-settings.php")); err != nil {
		return fmt.Errorf("no WordPress in %s (%s): %w", o.Core, CoreEnv, err)
	}
	if out, err := s.run("cp", "-rL", o.Core, s.Root); err != nil {
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
	themes, _ := filepath.Glob(filepath.Join(o.Core, "wp-content", "themes", "twenty*"))
	if len(themes) == 0 {
		return fmt.Errorf("no default theme in %s/wp-content/themes", o.Core)
	}
	for _, theme := range themes {
		if err := os.Symlink(theme, filepath.Join(s.Root, "wp-content", "themes", filepath.Base(theme))); err != nil {
			return err
		}
	}
	if data, err := os.ReadFile(filepath.Join(o.Core, "wp-includes", "version.php")); err == nil {
		if m := versionRE.FindSubmatch(data); m != nil {
			s.Version = string(m[1])
		}
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
require __DIR__ . '/wpstack-constants.php';
if ( ! defined( 'MULTISITE' ) ) {              // on a network each site has its own URLs
	define( 'WP_HOME', '%[3]s' );
	define( 'WP_SITEURL', '%[3]s' );
}
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

// versionRE finds the version in wp-includes/version.php.
var versionRE = regexp.MustCompile(`\$wp_version = '([^']+)'`)
