package wpstack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DBOptions configure a MariaDB started alone (no WordPress).
type DBOptions struct {
	// Durable keeps MariaDB's default of one redo-log fsync per commit
	// (innodb_flush_log_at_trx_commit=1), for benchmarks. The default,
	// false, never syncs (flush_log_at_trx_commit=2, flush_method=nosync,
	// no doublewrite): the tests kill sidecars, never the database, so
	// they lose nothing, and creating tables is several times faster.
	Durable bool
	// BufferPool is innodb_buffer_pool_size; default 128M.
	BufferPool string
	// Logf receives progress lines; default: discard.
	Logf func(format string, args ...any)
}

// MariaDB is a MariaDB server running from a temp dir, reachable only on a
// unix socket (--skip-networking), with root allowed without a password.
// Store tests create one database each on it.
type MariaDB struct {
	Dir    string // temp dir holding everything
	Socket string // the unix socket
	// Version is what the server reports (e.g. 10.11.14-MariaDB-0+deb12u2).
	Version string
	// Start is how long installing and starting took.
	Start time.Duration

	cmd      *exec.Cmd
	watchdog *exec.Cmd
	mu       sync.Mutex
	stopped  bool
}

// StartMariaDB starts a MariaDB alone and stops it when tb's test ends. It
// provisions missing Debian packages as Start does, and fails (or, with
// WPRELAY_SKIP_WP=1, skips) the test when it cannot.
func StartMariaDB(tb testing.TB, o DBOptions) *MariaDB {
	tb.Helper()
	if o.Logf == nil {
		o.Logf = tb.Logf
	}
	m, err := NewMariaDB(o)
	if err != nil {
		Fail(tb, err)
	}
	tb.Cleanup(m.Stop)
	return m
}

// NewMariaDB starts a MariaDB alone. The caller must call Stop.
func NewMariaDB(o DBOptions) (*MariaDB, error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.BufferPool == "" {
		o.BufferPool = "128M"
	}
	t0 := time.Now()
	if err := ensureMariaDB(o.Logf); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wpstack-db-")
	if err != nil {
		return nil, err
	}
	m := &MariaDB{Dir: dir, Socket: filepath.Join(dir, "mysqld.sock")}
	ok := false
	defer func() {
		if !ok {
			m.Stop()
		}
	}()
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"--user=root"} // mandatory as root
	}
	data := filepath.Join(dir, "db")
	args := append([]string{"--no-defaults"}, user...)
	args = append(args, "--datadir="+data, "--auth-root-authentication-method=normal", "--skip-test-db", "--innodb-log-file-size=32M")
	if out, err := run(dir, "mariadb-install-db", args...); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	durability := []string{"--innodb-flush-log-at-trx-commit=2", "--innodb-flush-method=nosync", "--innodb-doublewrite=0", "--innodb-file-per-table=0"}
	if o.Durable {
		durability = []string{"--innodb-flush-log-at-trx-commit=1"}
	}
	args = append([]string{"--no-defaults"}, user...)
	args = append(args, "--datadir="+data, "--socket="+m.Socket, "--pid-file="+filepath.Join(dir, "mysqld.pid"),
		"--skip-networking", "--log-error="+filepath.Join(dir, "mysqld.err"),
		"--innodb-buffer-pool-size="+o.BufferPool, "--innodb-log-file-size=32M",
		"--max-connections=500")
	args = append(args, durability...)
	m.cmd = exec.Command(mariadbd(), args...)
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := run(dir, "mariadb-admin", "--no-defaults", "--socket="+m.Socket, "-uroot", "version")
		if err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) >= 3 && f[0] == "Server" && f[1] == "version" {
					m.Version = f[2]
				}
			}
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "mysqld.err"))
			return nil, fmt.Errorf("mariadbd not ready after 30 s:\n%s", tailLines(string(log), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.startWatchdog()
	m.Start = time.Since(t0)
	o.Logf("wpstack: MariaDB %s on %s in %s", m.Version, m.Socket, m.Start.Round(10*time.Millisecond))
	ok = true
	return m, nil
}

// DSN returns a go-sql-driver/mysql DSN for database name as root.
func (m *MariaDB) DSN(name string) string {
	return "root@unix(" + m.Socket + ")/" + name
}

// CreateDatabase creates database name (utf8mb4) if it does not exist.
func (m *MariaDB) CreateDatabase(name string) error {
	if strings.ContainsAny(name, "`'\\ ") {
		return fmt.Errorf("database name %q: only letters, digits and _", name)
	}
	return m.Exec("CREATE DATABASE IF NOT EXISTS `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
}

// Exec runs SQL statements as root with the mariadb client.
func (m *MariaDB) Exec(sql string) error {
	out, err := exec.Command("mariadb", "--no-defaults", "--socket="+m.Socket, "-uroot", "-N", "-B", "-e", sql).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Query runs SQL as root in database db and returns the rows of the last
// statement, each a slice of column values (NULL as "NULL").
func (m *MariaDB) Query(db, sql string) ([][]string, error) {
	out, err := exec.Command("mariadb", "--no-defaults", "--socket="+m.Socket, "-uroot", "-N", "-B", "-e", sql, db).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows, nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 15 s) and removes the
// temp dir; set WPSTACK_KEEP=1 to keep it.
func (m *MariaDB) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.stopped = true
	if m.watchdog != nil {
		_ = m.watchdog.Process.Kill()
		_ = m.watchdog.Wait()
	}
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		waitOrKill(m.cmd, m.cmd.Process.Pid, 15*time.Second)
	}
	if os.Getenv("WPSTACK_KEEP") != "1" {
		_ = os.RemoveAll(m.Dir)
	}
}

// startWatchdog stops the server once this process is gone without
// calling Stop (a panic, a -timeout).
func (m *MariaDB) startWatchdog() {
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done; kill -TERM %d 2>/dev/null; sleep 5; rm -rf %s`,
		os.Getpid(), m.cmd.Process.Pid, shellQuote(m.Dir))
	m.watchdog = exec.Command("bash", "-c", script)
	m.watchdog.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := m.watchdog.Start(); err != nil {
		m.watchdog = nil
	}
}

// ensureMariaDB installs the Debian packages when MariaDB is missing.
func ensureMariaDB(logf func(string, ...any)) error {
	missing := false
	for _, bin := range []string{"mariadbd", "mariadb", "mariadb-install-db", "mariadb-admin"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat(filepath.Join("/usr/sbin", bin)); err != nil {
				missing = true
			}
		}
	}
	if !missing {
		return nil
	}
	return ensurePackages(logf) // the whole stack's packages: MariaDB is one of them
}

func mariadbd() string {
	if p, err := exec.LookPath("mariadbd"); err == nil {
		return p
	}
	return "/usr/sbin/mariadbd"
}

func run(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return out, fmt.Errorf("%w: %s not found", ErrCannotProvision, name)
	}
	return out, err
}
