package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const benchIssuer = "http://bench.example"

// The suite's secrets are made when it runs: the sidecars it starts and the
// load it sends share them, and nothing else needs them.
var (
	benchStripeSecret = "whsec_" + randomB64(24)
	benchSiteJWT      = randomB64(32)
	benchSiteSigning  = "whsec_" + randomB64(24)
	benchAdminToken   = randomB64(24)
	benchEncKey       = randomB64(32) // AES-256
)

// randomB64 returns n random bytes in standard base64.
func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return base64.StdEncoding.EncodeToString(b)
}

// stepNames are the suite's steps in the order they run.
var stepNames = []string{"bare", "commit", "encryption", "wordpress", "open", "delivery", "e2e", "large"}

type suite struct {
	bin, dir     string
	out, log     io.Writer
	rounds, n, c int
	fillN        int
	results      []Result
	notes        []string
	procs        []*exec.Cmd
	bareURL      string
	mu           sync.Mutex
	deliveredAt  map[string]time.Time
	delivered    atomic.Int64
	gate         chan struct{}
	targetURL    string
	pids         map[string]int // server address → its process, for CPU figures
}

func cmdSuite(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("suite", "Run the side-by-side rounds behind BENCH.md against a wprelay binary: bare handler vs\n"+
		"ingest, commit modes, encryption, the WordPress kind, open loop at 2000/s, delivery\n"+
		"throughput, end-to-end latency, memory and start-up on a large store. Rounds alternate\n"+
		"A and B so drift on a shared machine hits both alike.",
		"  go build -o bin/wprelay ./cmd/wprelay && wprelay-bench suite -bin bin/wprelay -out bench-results.json")
	s := &suite{out: stdout, log: stderr, pids: map[string]int{}}
	fs.StringVar(&s.bin, "bin", "bin/wprelay", "the wprelay binary")
	fs.IntVar(&s.rounds, "rounds", 3, "A/B rounds per comparison")
	fs.IntVar(&s.n, "n", 20000, "requests per closed-loop run")
	fs.IntVar(&s.c, "c", 64, "connections")
	fs.IntVar(&s.fillN, "fill", 1_000_000, "events in the large store (memory and start-up); 0 skips")
	outPath := fs.String("out", "", "write every result as JSON here")
	only := fs.String("only", "", "run only these steps, comma-separated: "+strings.Join(stepNames, ","))
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "wprelay-bench-")
	if err != nil {
		return err
	}
	s.dir = dir
	defer os.RemoveAll(dir)
	defer s.stopAll()

	fmt.Fprintf(s.out, "machine: %d CPUs, %s/%s, Go %s; load generator on the same machine\n\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	steps := map[string]func() error{"bare": s.ingestVsBare, "commit": s.commitModes, "encryption": s.encryption,
		"wordpress": s.wordpressKind, "open": s.openLoop, "delivery": s.deliveryThroughput, "e2e": s.endToEnd, "large": s.largeStore}
	run := stepNames
	if *only != "" {
		run = strings.Split(*only, ",")
	}
	for _, name := range run {
		step, ok := steps[name]
		if !ok {
			return fmt.Errorf("no step %q; the steps are %s", name, strings.Join(stepNames, ", "))
		}
		if err := step(); err != nil {
			return err
		}
	}
	if *outPath != "" {
		data, _ := json.MarshalIndent(map[string]any{"results": s.results, "notes": s.notes}, "", "  ")
		if err := os.WriteFile(*outPath, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (s *suite) progress(format string, args ...any) { fmt.Fprintf(s.log, "… "+format+"\n", args...) }

func (s *suite) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	s.notes = append(s.notes, n)
	fmt.Fprintln(s.out, n)
}

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

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// ab runs A and B alternately for s.rounds rounds and prints both.
func (s *suite) ab(title string, a, b func(round int) (Result, error)) ([]Result, []Result, error) {
	var as, bs []Result
	for r := range s.rounds {
		first, second := a, b
		if r%2 == 1 {
			first, second = b, a
		}
		x, err := first(r)
		if err != nil {
			return nil, nil, err
		}
		y, err := second(r)
		if err != nil {
			return nil, nil, err
		}
		if r%2 == 1 {
			x, y = y, x
		}
		as, bs = append(as, x), append(bs, y)
	}
	fmt.Fprintf(s.out, "## %s\n", title)
	printTable(s.out, append(slices.Clone(as), bs...))
	return as, bs, nil
}

func field(rs []Result, f func(Result) float64) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}

func throughputs(rs []Result) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, r.Throughput)
	}
	return out
}

func p99s(rs []Result) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, r.P99)
	}
	return out
}

func (s *suite) ingestVsBare() error {
	s.progress("bare handler vs wprelay ingest (stripe kind, 1 KiB, %d connections)", s.c)
	bare, err := s.startBare()
	if err != nil {
		return err
	}
	p, err := s.startRelay("ingest", "loop", "", "")
	if err != nil {
		return err
	}
	defer p.stop()
	as, bs, err := s.ab("bare net/http handler vs wprelay ingest (durable, verified, deduped)",
		func(r int) (Result, error) {
			return s.load(fmt.Sprintf("bare handler r%d", r+1), bare, "stripe", s.n, 0, false)
		},
		func(r int) (Result, error) {
			return s.load(fmt.Sprintf("wprelay stripe r%d", r+1), "http://"+p.public+"/hooks/stripe", "stripe", s.n, 0, false)
		})
	if err != nil {
		return err
	}
	var ratios []float64
	for i := range as {
		ratios = append(ratios, bs[i].Throughput/as[i].Throughput)
	}
	s.note("ingest/bare throughput ratio: median %.0f%% (rounds: %s); bare median %.0f req/s, wprelay median %.0f req/s, wprelay p99 median %.2f ms\n"+
		"CPU per request (median): bare handler %.0f µs, wprelay %.0f µs; load generator %.0f µs (bare runs) and %.0f µs (wprelay runs); machine idle %.0f%% (bare) and %.0f%% (wprelay)\n",
		100*median(ratios), pcts(ratios), median(throughputs(as)), median(throughputs(bs)), median(p99s(bs)),
		median(field(as, func(r Result) float64 { return r.ServerCPU })), median(field(bs, func(r Result) float64 { return r.ServerCPU })),
		median(field(as, func(r Result) float64 { return r.ClientCPU })), median(field(bs, func(r Result) float64 { return r.ClientCPU })),
		median(field(as, func(r Result) float64 { return r.Idle })), median(field(bs, func(r Result) float64 { return r.Idle })))
	return nil
}

func msList(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.2f ms", x))
	}
	return strings.Join(parts, ", ")
}

func pcts(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.0f%%", 100*x))
	}
	return strings.Join(parts, ", ")
}

func (s *suite) commitModes() error {
	s.progress("commit modes: loop vs DB.Batch (1 ms and 10 ms windows) vs one Update per request")
	modes := []struct{ name, store string }{
		{"loop", "loop"},
		{"batch 1ms", "batch, batch_delay: 1ms"},
		{"batch 10ms", "batch, batch_delay: 10ms"},
		{"single", "single"},
	}
	procs := map[string]*relayProc{}
	for i, m := range modes {
		p, err := s.startRelay(fmt.Sprintf("commit-%d", i), m.store, "", "")
		if err != nil {
			return err
		}
		defer p.stop()
		procs[m.name] = p
	}
	var all []Result
	byMode := map[string][]Result{}
	for r := range s.rounds {
		for i := range modes {
			m := modes[(i+r)%len(modes)].name
			n := s.n
			if m == "single" {
				n = s.n / 4 // one fsync per request: keep the run short
			}
			res, err := s.load(fmt.Sprintf("commit=%s r%d", m, r+1), "http://"+procs[m].public+"/hooks/stripe", "stripe", n, 0, false)
			if err != nil {
				return err
			}
			all = append(all, res)
			byMode[m] = append(byMode[m], res)
		}
	}
	fmt.Fprintln(s.out, "## group commit: loop vs bbolt DB.Batch windows vs one Update per request")
	printTable(s.out, all)
	var parts []string
	for _, m := range modes {
		parts = append(parts, fmt.Sprintf("%s %.0f / %.2f", m.name, median(throughputs(byMode[m.name])), median(p99s(byMode[m.name]))))
	}
	s.note("commit modes (median req/s / p99 ms): %s\n", strings.Join(parts, ", "))
	return nil
}

func (s *suite) encryption() error {
	s.progress("encryption at rest on vs off")
	plain, err := s.startRelay("plain", "loop", "", "")
	if err != nil {
		return err
	}
	defer plain.stop()
	sealed, err := s.startRelay("sealed", "loop", fmt.Sprintf("encryption: {keys: [{id: bench, key: %q}]}\n", benchEncKey), "")
	if err != nil {
		return err
	}
	defer sealed.stop()
	as, bs, err := s.ab("encryption at rest (AES-256-GCM) off vs on",
		func(r int) (Result, error) {
			return s.load(fmt.Sprintf("plain r%d", r+1), "http://"+plain.public+"/hooks/stripe", "stripe", s.n, 0, false)
		},
		func(r int) (Result, error) {
			return s.load(fmt.Sprintf("encrypted r%d", r+1), "http://"+sealed.public+"/hooks/stripe", "stripe", s.n, 0, false)
		})
	if err != nil {
		return err
	}
	s.note("encryption: median %.0f req/s plain vs %.0f req/s encrypted (%.0f%%)\n",
		median(throughputs(as)), median(throughputs(bs)), 100*median(throughputs(bs))/median(throughputs(as)))
	return nil
}

func (s *suite) wordpressKind() error {
	s.progress("wordpress kind (JWT + Standard Webhooks + schema + jti replay cache)")
	p, err := s.startRelay("wordpress", "loop", "", "")
	if err != nil {
		return err
	}
	defer p.stop()
	var rs []Result
	for r := range s.rounds {
		res, err := s.load(fmt.Sprintf("wordpress kind r%d", r+1), "http://"+p.public+"/hooks/site", "wordpress", s.n, 0, false)
		if err != nil {
			return err
		}
		rs = append(rs, res)
	}
	fmt.Fprintln(s.out, "## WordPress-originated events")
	printTable(s.out, rs)
	s.note("wordpress kind: median %.0f req/s, p99 %.2f ms\n", median(throughputs(rs)), median(p99s(rs)))
	return nil
}

func (s *suite) openLoop() error {
	s.progress("open loop at 2000 requests/s for 10 s")
	p, err := s.startRelay("open", "loop", "", "")
	if err != nil {
		return err
	}
	defer p.stop()
	var rs []Result
	for r := range s.rounds {
		res, err := s.load(fmt.Sprintf("wprelay stripe open loop r%d", r+1), "http://"+p.public+"/hooks/stripe", "stripe", 20000, 2000, false)
		if err != nil {
			return err
		}
		rs = append(rs, res)
	}
	fmt.Fprintln(s.out, "## open loop (latency from the intended send time)")
	printTable(s.out, rs)
	var p50s []float64
	for _, r := range rs {
		p50s = append(p50s, r.P50)
	}
	s.note("open loop 2000/s: median p50 %.2f ms, median p99 %.2f ms (rounds: %s)\n", median(p50s), median(p99s(rs)), msList(p99s(rs)))
	return nil
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

func (s *suite) deliveryThroughput() error {
	s.progress("delivery throughput to a fast local target")
	if err := s.startTarget(); err != nil {
		return err
	}
	const conc = 64
	p, err := s.startRelay("deliver", "loop", s.deliveryConfig(conc), "")
	if err != nil {
		return err
	}
	defer p.stop()
	// Hold the target, queue N events, then let everything go at once.
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
	s.delivered.Store(0)
	if _, err := s.load("ingest for delivery", "http://"+p.public+"/hooks/stripe", "stripe", s.n, 0, false); err != nil {
		return err
	}
	start := time.Now()
	s.mu.Lock()
	close(s.gate)
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Minute)
	for s.delivered.Load() < int64(s.n) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(start)
	got := s.delivered.Load()
	rate := float64(got) / took.Seconds()
	fmt.Fprintf(s.out, "## delivery\n%d queued deliveries drained in %.2f s: %.0f deliveries/s (target concurrency %d, HTTP + JWT + signature + outcome committed)\n", got, took.Seconds(), rate, conc)
	s.results = append(s.results, Result{Name: "delivery drain", Mode: fmt.Sprintf("concurrency %d", conc), Requests: int(got), Seconds: took.Seconds(), Throughput: rate})
	s.note("delivery: %.0f deliveries/s draining %d queued (concurrency %d)\n", rate, got, conc)
	return nil
}

func (s *suite) endToEnd() error {
	s.progress("end-to-end latency, ingest → target received, open loop 500/s")
	p, err := s.startRelay("e2e", "loop", s.deliveryConfig(16), "")
	if err != nil {
		return err
	}
	defer p.stop()
	s.mu.Lock()
	s.deliveredAt = map[string]time.Time{}
	s.mu.Unlock()
	res, err := s.load("ingest (e2e) open loop", "http://"+p.public+"/hooks/stripe", "stripe", 5000, 500, true)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		s.mu.Lock()
		n := len(s.deliveredAt)
		s.mu.Unlock()
		if n >= len(res.Sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var lat []time.Duration
	s.mu.Lock()
	for id, sent := range res.Sent {
		if at, ok := s.deliveredAt[id]; ok {
			lat = append(lat, at.Sub(sent))
		}
	}
	s.mu.Unlock()
	p50, p90, p99, p999, mx := percentiles(lat)
	r := Result{Name: "end to end (ingest → target)", Mode: "open@500/s", Requests: len(lat), P50: p50, P90: p90, P99: p99, P999: p999, Max: mx}
	s.results = append(s.results, r)
	fmt.Fprintln(s.out, "## end-to-end latency")
	printTable(s.out, []Result{res, r})
	s.note("end to end at 500/s: p50 %.2f ms, p99 %.2f ms (%d of %d delivered)\n", p50, p99, len(lat), len(res.Sent))
	return nil
}

func (s *suite) largeStore() error {
	if s.fillN <= 0 {
		return nil
	}
	dataDir := filepath.Join(s.dir, "large", "data")
	s.progress("writing %d finished events into a store (memory and start-up)", s.fillN)
	start := time.Now()
	if err := fill(dataDir, s.fillN, s.log); err != nil {
		return err
	}
	fillTook := time.Since(start)
	fi, err := os.Stat(filepath.Join(dataDir, "wprelay.db"))
	if err != nil {
		return err
	}
	var readies []time.Duration
	var rssReady, rssLoad memory
	for r := range s.rounds {
		p, err := s.startRelay("large", "loop", "", dataDir)
		if err != nil {
			return err
		}
		readies = append(readies, p.ready)
		if r == 0 {
			rssReady = rss(p.cmd.Process.Pid)
			if _, err := s.load("ingest on the large store", "http://"+p.public+"/hooks/stripe", "stripe", s.n, 0, false); err != nil {
				return err
			}
			rssLoad = rss(p.cmd.Process.Pid)
		}
		p.stop()
	}
	slices.Sort(readies)
	fmt.Fprintf(s.out, "## large store\n%d events (%.1f GiB, %.0f bytes per event, written in %.0f s); start-up to ready: %s\nRSS at ready %s\nRSS after %d more requests %s\n",
		s.fillN, float64(fi.Size())/(1<<30), float64(fi.Size())/float64(s.fillN), fillTook.Seconds(), durations(readies), rssReady, s.n, rssLoad)
	s.note("large store: %d events, %.0f bytes/event; start-up to ready median %s; RSS at ready %s; after load %s\n",
		s.fillN, float64(fi.Size())/float64(s.fillN), readies[len(readies)/2].Round(time.Millisecond), rssReady, rssLoad)
	return nil
}

func durations(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Round(time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}

// memory is a process's resident set: all of it (VmRSS), its own memory
// (RssAnon: heap, stacks) and the file pages it has mapped (RssFile: for
// wprelay, pages of the bbolt file, which bbolt reads through mmap; they
// are page cache the kernel can drop at any time).
type memory struct{ rss, anon, file int64 }

func (m memory) String() string {
	return fmt.Sprintf("%.1f MiB (own %.1f MiB, mapped store file %.1f MiB)", mib(m.rss), mib(m.anon), mib(m.file))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func rss(pid int) memory {
	var m memory
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch name {
		case "VmRSS":
			m.rss = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	return m
}

// cpuSample is where the CPU clocks stood: the server's (utime+stime of
// its process), the load generator's (this process) and the machine's
// idle and total time.
type cpuSample struct {
	server, client time.Duration
	idle, total    uint64
}

func sampleCPU(pid int) cpuSample {
	var c cpuSample
	if pid > 0 {
		c.server = procCPU(fmt.Sprintf("/proc/%d/stat", pid))
	}
	c.client = procCPU("/proc/self/stat")
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseUint(f, 10, 64)
			c.total += v
			if i == 3 || i == 4 { // idle, iowait
				c.idle += v
			}
		}
	}
	return c
}

// procCPU is a process's user+system time from its stat file.
func procCPU(path string) time.Duration {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after its ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// cpu fills r's CPU figures from two samples around its run.
func (r *Result) cpu(a, b cpuSample) {
	if r.Requests == 0 {
		return
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(r.Requests) }
	if b.server > 0 {
		r.ServerCPU = per(b.server - a.server)
	}
	r.ClientCPU = per(b.client - a.client)
	if b.total > a.total {
		r.Idle = 100 * float64(b.idle-a.idle) / float64(b.total-a.total)
	}
}
