package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
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

func durations(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Round(time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}
