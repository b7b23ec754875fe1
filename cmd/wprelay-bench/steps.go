// The suite's steps, one function each (stepNames): what each measures and
// how.

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

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
