// Command wprelay-bench is a load generator for wprelay's ingest path. It
// pre-signs unique Stripe-kind events before the clock starts, then sends
// them over C keep-alive connections (closed loop) or at a fixed rate (open
// loop, latency measured from the intended send time, so a stalled server
// is not hidden by coordinated omission), and reports throughput and
// latency percentiles as a table or JSON.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
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
)

func main() {
	fs := flag.NewFlagSet("wprelay-bench", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/hooks/stripe", "ingest URL of a stripe-kind source")
	secret := fs.String("secret", "", "the source's signing secret (or env WPRELAY_BENCH_SECRET)")
	n := fs.Int("n", 20000, "requests to send")
	conns := fs.Int("c", 64, "concurrent connections")
	rate := fs.Float64("rate", 0, "open loop: requests per second (0 = closed loop)")
	size := fs.Int("size", 1024, "body size in bytes")
	dupFrac := fs.Float64("dup", 0, "fraction of requests that repeat an earlier event (0..1)")
	prefix := fs.String("prefix", strconv.FormatInt(time.Now().UnixNano(), 36), "event id prefix (unique per run)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: wprelay-bench [flags]\n\nSend pre-signed Stripe-kind events to a wprelay ingest URL and report throughput and latency.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nExample:\n  WPRELAY_BENCH_SECRET=whsec_x wprelay-bench -url http://127.0.0.1:8080/hooks/stripe -n 20000 -c 64\n")
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *secret == "" {
		*secret = os.Getenv("WPRELAY_BENCH_SECRET")
	}
	if *secret == "" {
		fmt.Fprintln(os.Stderr, "wprelay-bench: set -secret or WPRELAY_BENCH_SECRET to the source's signing secret")
		os.Exit(2)
	}
	res := run(*url, *secret, *prefix, *n, *conns, *rate, *size, *dupFrac)
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	fmt.Printf("%-10s %8s %10s %8s %8s %8s %8s %8s %8s %7s\n", "mode", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9", "max ms", "errors", "status")
	fmt.Printf("%-10s %8d %10.0f %8.2f %8.2f %8.2f %8.2f %8.2f %8d %v\n", res.Mode, res.Requests, res.Throughput, res.P50, res.P90, res.P99, res.P999, res.Max, res.Errors, res.Statuses)
}

// Result is one run's figures; latencies in milliseconds.
type Result struct {
	Mode       string         `json:"mode"`
	Requests   int            `json:"requests"`
	Seconds    float64        `json:"seconds"`
	Throughput float64        `json:"throughput"`
	P50        float64        `json:"p50_ms"`
	P90        float64        `json:"p90_ms"`
	P99        float64        `json:"p99_ms"`
	P999       float64        `json:"p999_ms"`
	Max        float64        `json:"max_ms"`
	Errors     int            `json:"errors"`
	Statuses   map[string]int `json:"statuses"`
}

type signed struct {
	body []byte
	sig  string
}

func run(url, secret, prefix string, n, conns int, rate float64, size int, dupFrac float64) Result {
	// Sign everything before the clock starts.
	reqs := make([]signed, n)
	ts := time.Now().Unix()
	pad := ""
	for i := range reqs {
		id := i
		if dupFrac > 0 && i > 0 && float64(i%1000)/1000 < dupFrac {
			id = i / 2
		}
		body := fmt.Sprintf(`{"id":"evt_%s_%d","object":"event","type":"invoice.created","created":%d,"data":{"object":{"id":"in_%d","object":"invoice","pad":"%s"}}}`, prefix, id, ts, id, pad)
		if len(body) < size && i == 0 {
			pad = strings.Repeat("x", size-len(body))
			body = fmt.Sprintf(`{"id":"evt_%s_%d","object":"event","type":"invoice.created","created":%d,"data":{"object":{"id":"in_%d","object":"invoice","pad":"%s"}}}`, prefix, id, ts, id, pad)
		}
		m := hmac.New(sha256.New, []byte(secret))
		fmt.Fprintf(m, "%d.%s", ts, body)
		reqs[i] = signed{body: []byte(body), sig: fmt.Sprintf("t=%d,v1=%s", ts, hex.EncodeToString(m.Sum(nil)))}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}, Timeout: 30 * time.Second}
	lat := make([]time.Duration, n)
	status := make([]int, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	for range conns {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				intended := time.Now()
				if interval > 0 {
					intended = start.Add(time.Duration(i) * interval)
					if d := time.Until(intended); d > 0 {
						time.Sleep(d)
					}
				}
				req, _ := http.NewRequest("POST", url, bytes.NewReader(reqs[i].body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Stripe-Signature", reqs[i].sig)
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
	res := Result{Mode: "closed", Requests: n, Seconds: elapsed.Seconds(), Throughput: float64(n) / elapsed.Seconds(), Statuses: map[string]int{}}
	if rate > 0 {
		res.Mode = fmt.Sprintf("open@%.0f", rate)
	}
	for _, s := range status {
		if s == 0 {
			res.Errors++
		}
		res.Statuses[strconv.Itoa(s)]++
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e6 }
	res.P50, res.P90, res.P99, res.P999, res.Max = pct(0.50), pct(0.90), pct(0.99), pct(0.999), float64(lat[len(lat)-1])/1e6
	return res
}
