// The processes of a site: MariaDB, PHP's built-in server, the watchdog
// that stops them when the test process dies, and Stop.

package wpstack

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

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
