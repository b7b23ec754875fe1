// The processes a suite runs: wprelay binaries, the bare handler, the
// target, and the load generator against them.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// relayProc is a running sidecar.
type relayProc struct {
	cmd           *exec.Cmd
	public, admin string
	dataDir       string
	ready         time.Duration
}

// startRelay writes a config and starts the binary; extra is appended YAML.
func (s *suite) startRelay(name, commit, extra, dataDir string) (*relayProc, error) {
	d := filepath.Join(s.dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	if dataDir == "" {
		dataDir = filepath.Join(d, "data")
	}
	cfg := fmt.Sprintf(`admin: {token: %q}
data_dir: %q
log: {format: json, level: info}
store: {kind: bbolt, commit: %s}
sources:
  - {name: stripe, kind: stripe, secrets: [%q]}
  - {name: site, kind: wordpress, issuer: %q, jwt_secret: %q, secrets: [%q]}
%s`, benchAdminToken, dataDir, commit, benchStripeSecret, benchIssuer, benchSiteJWT, benchSiteSigning, extra)
	if err := os.WriteFile(filepath.Join(d, "wprelay.yaml"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(d, "log"))
	if err != nil {
		return nil, err
	}
	p := &relayProc{public: freeAddr(), admin: freeAddr(), dataDir: dataDir}
	p.cmd = exec.Command(s.bin, "serve", "--config", filepath.Join(d, "wprelay.yaml"), "--listen", p.public, "--admin-listen", p.admin)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p.cmd)
	s.pids[p.public] = p.cmd.Process.Pid
	for time.Since(start) < 60*time.Second {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				p.ready = time.Since(start)
				return p, nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return nil, fmt.Errorf("%s did not become ready; see %s", name, filepath.Join(d, "log"))
}

func (p *relayProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
}

func (s *suite) stopAll() {
	for _, c := range s.procs {
		if c.ProcessState == nil {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
}

func (s *suite) startBare() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	addr := freeAddr()
	cmd := exec.Command(self, "bare", "-listen", addr)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	s.procs = append(s.procs, cmd)
	s.pids[addr] = cmd.Process.Pid
	for i := 0; i < 1000; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr + "/", nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "", fmt.Errorf("bare handler did not start")
}

// startTarget runs a fast local delivery target that records when each
// event arrived; while gate is closed it holds requests.
func (s *suite) startTarget() error {
	s.deliveredAt = map[string]time.Time{}
	s.gate = make(chan struct{})
	close(s.gate)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		gate := s.gate
		s.mu.Unlock()
		<-gate
		var env struct {
			Data struct {
				ID             string `json:"id"`
				IdempotencyKey string `json:"idempotency_key"`
			} `json:"data"`
		}
		_ = json.NewDecoder(bufio.NewReader(r.Body)).Decode(&env)
		now := time.Now()
		s.mu.Lock()
		if _, seen := s.deliveredAt[env.Data.ID]; !seen {
			s.deliveredAt[env.Data.ID] = now
			s.delivered.Add(1)
		}
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	s.targetURL = "http://" + ln.Addr().String() + "/hook"
	return nil
}

func (s *suite) deliveryConfig(concurrency int) string {
	return fmt.Sprintf(`targets:
  - {name: fast, kind: http, url: %q, allow_private: true, timeout: 60s, concurrency: %d}
routes:
  - {source: stripe, to: [fast]}
`, s.targetURL, concurrency)
}

func (s *suite) load(name, url, kind string, n int, rate float64, track bool) (Result, error) {
	l := Load{URL: url, Kind: kind, Secret: benchStripeSecret, N: n, Conns: s.c, Rate: rate, Size: 1024}
	if kind == "wordpress" {
		l.Secret, l.JWTSecret, l.Issuer = benchSiteSigning, benchSiteJWT, benchIssuer
	}
	pid := 0
	if u, err := neturl.Parse(url); err == nil {
		pid = s.pids[u.Host]
	}
	before := sampleCPU(pid)
	r, err := l.Run(context.Background(), name, track)
	if err != nil {
		return r, err
	}
	r.cpu(before, sampleCPU(pid))
	if r.Errors > 0 {
		return r, fmt.Errorf("%s: %d errors: %v", name, r.Errors, r.Statuses)
	}
	s.results = append(s.results, r)
	return r, nil
}
