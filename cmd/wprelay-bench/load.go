package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/wprelay/wprelay/relay/provider"
)

// Load describes one load run.
type Load struct {
	URL       string
	Kind      string // stripe or wordpress
	Secret    string // the source's signing secret
	JWTSecret string // wordpress: the site's JWT secret
	Issuer    string // wordpress: the site URL
	N         int
	Conns     int
	Rate      float64 // requests/s; 0 = closed loop
	Size      int     // body bytes
	DupFrac   float64 // share of requests repeating an earlier event
	Prefix    string  // makes event ids unique per run
}

// Result is one run's figures; latencies in milliseconds.
type Result struct {
	Name       string  `json:"name"`
	Mode       string  `json:"mode"`
	Requests   int     `json:"requests"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p999_ms"`
	Max        float64 `json:"max_ms"`
	Errors     int     `json:"errors"`
	// CPU per request, in microseconds, of the server and of the load
	// generator, and the machine's idle share (%) during the run; the
	// suite fills them (clock ticks of 10 ms: rough on short runs).
	ServerCPU float64        `json:"server_cpu_us"`
	ClientCPU float64        `json:"client_cpu_us"`
	Idle      float64        `json:"idle_pct"`
	Statuses  map[string]int `json:"statuses"`
	// Sent maps idempotency-relevant event ids to their send times, for
	// end-to-end latency (filled only when asked).
	Sent map[string]time.Time `json:"-"`
}

type signedReq struct {
	id     string
	body   []byte
	header http.Header
}

// prepare signs every request before the clock starts.
func (l *Load) prepare() ([]signedReq, error) {
	if l.Prefix == "" {
		l.Prefix = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	reqs := make([]signedReq, l.N)
	now := time.Now()
	var wp *provider.WordPress
	var wpKey []byte
	if l.Kind == "wordpress" {
		v, err := provider.NewWordPress(provider.Options{Kind: "wordpress", Issuer: l.Issuer, JWTSecret: l.JWTSecret, Tolerance: 5 * time.Minute})
		if err != nil {
			return nil, err
		}
		if wpKey, err = v.Key(l.Secret); err != nil {
			return nil, err
		}
		wp = v
	}
	for i := range reqs {
		n := i
		if l.DupFrac > 0 && i > 0 && float64(i%1000) < l.DupFrac*1000 {
			n = i / 2 // an event sent before
		}
		switch l.Kind {
		case "wordpress":
			key := uuid.NewSHA1(uuid.NameSpaceOID, []byte(l.Prefix+strconv.Itoa(n))).String()
			body := padJSON(fmt.Sprintf(`{"event_type":"post.published","object_ref":"post:%d","idempotency_key":%q,"occurred_at":%q,"data":{"title":"Post %d","pad":"`,
				n, key, now.UTC().Format(time.RFC3339), n), l.Size)
			r := &provider.Request{Method: "POST", Header: http.Header{"Content-Type": {"application/json"}}, Body: body, Now: now}
			if err := wp.Sign(r, wpKey, ""); err != nil {
				return nil, err
			}
			reqs[i] = signedReq{id: key, body: body, header: r.Header}
		default:
			id := fmt.Sprintf("evt_%s_%d", l.Prefix, n)
			body := padJSON(fmt.Sprintf(`{"id":%q,"object":"event","type":"invoice.created","created":%d,"data":{"object":{"id":"in_%d","object":"invoice","pad":"`,
				id, now.Unix(), n), l.Size)
			m := hmac.New(sha256.New, []byte(l.Secret))
			fmt.Fprintf(m, "%d.%s", now.Unix(), body)
			reqs[i] = signedReq{id: id, body: body, header: http.Header{
				"Content-Type":     {"application/json"},
				"Stripe-Signature": {fmt.Sprintf("t=%d,v1=%s", now.Unix(), hex.EncodeToString(m.Sum(nil)))},
			}}
		}
	}
	return reqs, nil
}

// padJSON closes an object opened by prefix (which ends inside a "pad"
// string) so that the body is about size bytes.
func padJSON(prefix string, size int) []byte {
	tail := `"}}}`
	if strings.HasPrefix(prefix, `{"event_type"`) {
		tail = `"}}`
	}
	pad := max(0, size-len(prefix)-len(tail))
	return []byte(prefix + strings.Repeat("x", pad) + tail)
}

// Run sends the load and returns its figures. With track, Sent records when
// each event was first sent.
func (l *Load) Run(ctx context.Context, name string, track bool) (Result, error) {
	reqs, err := l.prepare()
	if err != nil {
		return Result{}, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: l.Conns, MaxConnsPerHost: l.Conns, DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	lat := make([]time.Duration, l.N)
	status := make([]int, l.N)
	sentAt := make([]time.Time, l.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(0)
	if l.Rate > 0 {
		interval = time.Duration(float64(time.Second) / l.Rate)
	}
	start := time.Now()
	for range l.Conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= l.N {
					return
				}
				intended := time.Now()
				if interval > 0 {
					intended = start.Add(time.Duration(i) * interval)
					if d := time.Until(intended); d > 0 {
						time.Sleep(d)
					}
				}
				sentAt[i] = time.Now()
				req, _ := http.NewRequestWithContext(ctx, "POST", l.URL, bytes.NewReader(reqs[i].body))
				req.Header = reqs[i].header.Clone()
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status[i] = resp.StatusCode
				}
				lat[i] = time.Since(intended)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := Result{Name: name, Mode: "closed", Requests: l.N, Seconds: elapsed.Seconds(), Throughput: float64(l.N) / elapsed.Seconds(), Statuses: map[string]int{}}
	if l.Rate > 0 {
		res.Mode = fmt.Sprintf("open@%.0f/s", l.Rate)
	}
	for _, s := range status {
		if s == 0 || s >= 300 && s != 200 {
			res.Errors++
		}
		res.Statuses[strconv.Itoa(s)]++
	}
	res.P50, res.P90, res.P99, res.P999, res.Max = percentiles(lat)
	if track {
		res.Sent = make(map[string]time.Time, l.N)
		for i, r := range reqs {
			if _, ok := res.Sent[r.id]; !ok {
				res.Sent[r.id] = sentAt[i]
			}
		}
	}
	return res, nil
}

// percentiles returns p50, p90, p99, p99.9 and max in milliseconds.
func percentiles(d []time.Duration) (p50, p90, p99, p999, mx float64) {
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) float64 { return float64(s[min(len(s)-1, int(p*float64(len(s))))]) / 1e6 }
	return at(0.50), at(0.90), at(0.99), at(0.999), float64(s[len(s)-1]) / 1e6
}

func cmdLoad(args []string, stdout io.Writer) error {
	fs := newFlags("load", "Send pre-signed events to a wprelay ingest URL and report throughput and latency.\nSecrets come from the environment (WPRELAY_BENCH_SECRET, WPRELAY_BENCH_JWT_SECRET).",
		"  WPRELAY_BENCH_SECRET=whsec_x wprelay-bench load -url http://127.0.0.1:8080/hooks/stripe -n 20000 -c 64\n"+
			"  wprelay-bench load -kind wordpress -issuer https://example.com -url http://127.0.0.1:8080/hooks/wordpress -rate 2000 -n 20000")
	l := Load{}
	fs.StringVar(&l.URL, "url", "http://127.0.0.1:8080/hooks/stripe", "ingest URL")
	fs.StringVar(&l.Kind, "kind", "stripe", "stripe or wordpress")
	fs.StringVar(&l.Issuer, "issuer", "http://localhost", "wordpress: the source's issuer")
	fs.IntVar(&l.N, "n", 20000, "requests")
	fs.IntVar(&l.Conns, "c", 64, "concurrent connections")
	fs.Float64Var(&l.Rate, "rate", 0, "open loop at this many requests/s (0 = closed loop)")
	fs.IntVar(&l.Size, "size", 1024, "body size in bytes")
	fs.Float64Var(&l.DupFrac, "dup", 0, "fraction of requests repeating an earlier event (0..1)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l.Secret, l.JWTSecret = os.Getenv("WPRELAY_BENCH_SECRET"), os.Getenv("WPRELAY_BENCH_JWT_SECRET")
	if l.Secret == "" {
		return fmt.Errorf("set WPRELAY_BENCH_SECRET to the source's signing secret")
	}
	res, err := l.Run(context.Background(), "load", false)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	printTable(stdout, []Result{res})
	return nil
}

func printTable(w io.Writer, rs []Result) {
	fmt.Fprintf(w, "%-34s %-11s %8s %9s %8s %8s %8s %8s %8s %6s %7s %7s %5s\n", "run", "mode", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9", "max ms", "errors", "srv µs", "gen µs", "idle")
	for _, r := range rs {
		fmt.Fprintf(w, "%-34s %-11s %8d %9.0f %8.2f %8.2f %8.2f %8.2f %8.2f %6d %7.0f %7.0f %4.0f%%\n", r.Name, r.Mode, r.Requests, r.Throughput, r.P50, r.P90, r.P99, r.P999, r.Max, r.Errors, r.ServerCPU, r.ClientCPU, r.Idle)
	}
}
