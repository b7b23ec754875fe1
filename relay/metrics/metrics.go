// Package metrics holds wprelay's Prometheus metrics. Names follow the
// Prometheus conventions (wprelay_ prefix, _total counters, base units) and
// every label value comes from a bounded set: configured source and target
// names, error codes, status classes — never event ids.
package metrics

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wprelay/wprelay/relay"
)

// Unknown is the label value for a source that is not configured.
const Unknown = "_unknown"

// Metrics is the registry and every metric wprelay exports.
type Metrics struct {
	reg *prometheus.Registry

	sources map[string]bool
	targets map[string]bool

	ingest      *prometheus.CounterVec
	ingestTime  *prometheus.HistogramVec
	events      *prometheus.CounterVec
	attempts    *prometheus.CounterVec
	attemptTime *prometheus.HistogramVec
	outcomes    *prometheus.CounterVec
	commitTime  prometheus.Histogram
	commitOps   prometheus.Histogram

	tally map[string]*tally // per configured target, for the admin API's stats
}

// tally counts one target's attempts since the process started.
type tally struct{ ok, all atomic.Int64 }

// AttemptCounts are a target's delivery attempts since the process
// started: all of them, and those whose outcome was success.
type AttemptCounts struct {
	Attempts  int64
	Succeeded int64
}

// Latency buckets from 0.5 ms to 10 s: ingest answers in milliseconds,
// deliveries in tens to thousands of them.
var buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New registers every metric for the given sources and targets.
func New(sources, targets []string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), sources: map[string]bool{}, targets: map[string]bool{}, tally: map[string]*tally{}}
	for _, s := range sources {
		m.sources[s] = true
	}
	for _, t := range targets {
		m.targets[t] = true
		m.tally[t] = &tally{}
	}
	m.ingest = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wprelay_ingest_requests_total",
		Help: "Webhook requests by source, outcome (queued, duplicate, handshake, rejected) and error code.",
	}, []string{"source", "outcome", "code"})
	m.ingestTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wprelay_ingest_duration_seconds", Help: "Time to answer a webhook request, by source.", Buckets: buckets,
	}, []string{"source"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wprelay_events_total", Help: "Events committed by source and outcome (queued, duplicate).",
	}, []string{"source", "outcome"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wprelay_delivery_attempts_total",
		Help: "Delivery attempts by target and answer class (2xx, 3xx, 4xx, 5xx, network).",
	}, []string{"target", "class"})
	m.attemptTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wprelay_delivery_duration_seconds", Help: "Duration of delivery attempts, by target.", Buckets: buckets,
	}, []string{"target"})
	m.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wprelay_deliveries_total",
		Help: "Attempt outcomes by target: succeeded, retrying (a retry was scheduled) or dead (dead-lettered).",
	}, []string{"target", "outcome"})
	m.commitTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "wprelay_store_commit_duration_seconds", Help: "Duration of store commits (including fsync).", Buckets: buckets,
	})
	m.commitOps = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wprelay_store_commit_ops",
		Help:    "Writes per store commit (group commit: concurrent requests share one fsync).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
	})
	m.reg.MustRegister(m.ingest, m.ingestTime, m.events, m.attempts, m.attemptTime, m.outcomes, m.commitTime, m.commitOps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Pre-create the common series so dashboards and rate() see zeros.
	for s := range m.sources {
		m.ingest.WithLabelValues(s, "queued", "")
		m.ingest.WithLabelValues(s, "duplicate", "")
	}
	for t := range m.targets {
		for _, o := range []string{relay.DeliverySucceeded, relay.DeliveryRetrying, relay.DeliveryDead} {
			m.outcomes.WithLabelValues(t, o)
		}
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Register adds another collector (e.g. Gauges).
func (m *Metrics) Register(c prometheus.Collector) { m.reg.MustRegister(c) }

// Request records one answered webhook request. Methods are no-ops on a
// nil *Metrics. code is the error code of a
// rejection ("" otherwise).
func (m *Metrics) Request(source, outcome, code string, took time.Duration) {
	if m == nil {
		return
	}
	if !m.sources[source] {
		source = Unknown
	}
	m.ingest.WithLabelValues(source, outcome, code).Inc()
	m.ingestTime.WithLabelValues(source).Observe(took.Seconds())
}

// Events records committed events of one request.
func (m *Metrics) Events(source string, queued, duplicates int) {
	if m == nil {
		return
	}
	if !m.sources[source] {
		source = Unknown
	}
	if queued > 0 {
		m.events.WithLabelValues(source, "queued").Add(float64(queued))
	}
	if duplicates > 0 {
		m.events.WithLabelValues(source, "duplicate").Add(float64(duplicates))
	}
}

// Attempt records one delivery attempt: its HTTP status (0 for a network
// error), its duration and the resulting delivery status.
func (m *Metrics) Attempt(target string, status int, took time.Duration, outcome string) {
	if m == nil {
		return
	}
	if !m.targets[target] {
		return
	}
	m.attempts.WithLabelValues(target, Class(status)).Inc()
	m.attemptTime.WithLabelValues(target).Observe(took.Seconds())
	m.outcomes.WithLabelValues(target, outcome).Inc()
	tl := m.tally[target]
	tl.all.Add(1)
	if outcome == relay.DeliverySucceeded {
		tl.ok.Add(1)
	}
}

// Attempts returns each configured target's attempt counts since the
// process started (nil on a nil *Metrics).
func (m *Metrics) Attempts() map[string]AttemptCounts {
	if m == nil {
		return nil
	}
	out := make(map[string]AttemptCounts, len(m.tally))
	for t, tl := range m.tally {
		out[t] = AttemptCounts{Attempts: tl.all.Load(), Succeeded: tl.ok.Load()}
	}
	return out
}

// Commit records one store commit.
func (m *Metrics) Commit(ops int, took time.Duration) {
	if m == nil {
		return
	}
	m.commitOps.Observe(float64(ops))
	m.commitTime.Observe(took.Seconds())
}

// Class is an HTTP status's class label: "2xx" … "5xx", or "network".
func Class(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "2xx"
	case status >= 300 && status < 400:
		return "3xx"
	case status >= 400 && status < 500:
		return "4xx"
	case status >= 500 && status < 600:
		return "5xx"
	}
	return "network"
}

// Gauges reads queue and store state at scrape time.
type Gauges struct {
	Stats    func(ctx context.Context) (relay.Stats, error)
	Size     func() int64
	Breakers func() map[string]string // target → closed | open | half_open
	Now      func() time.Time
}

var (
	descDepth   = prometheus.NewDesc("wprelay_queue_depth", "Deliveries not yet final (pending, in flight or retrying).", nil, nil)
	descOldest  = prometheus.NewDesc("wprelay_queue_oldest_age_seconds", "Age of the oldest due delivery that is waiting (0 when none).", nil, nil)
	descDead    = prometheus.NewDesc("wprelay_dead_letters", "Deliveries currently in the dead-letter queue.", nil, nil)
	descEvents  = prometheus.NewDesc("wprelay_events", "Stored events by status.", []string{"status"}, nil)
	descSize    = prometheus.NewDesc("wprelay_store_size_bytes", "Size of the store file.", nil, nil)
	descBreaker = prometheus.NewDesc("wprelay_breaker_state", "Circuit breaker state per target (1 for the current state).", []string{"target", "state"}, nil)
)

// Describe implements prometheus.Collector.
func (g *Gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDepth, descOldest, descDead, descEvents, descSize, descBreaker} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (g *Gauges) Collect(ch chan<- prometheus.Metric) {
	if g.Stats != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := g.Stats(ctx)
		cancel()
		if err == nil {
			ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(s.Pending))
			age := 0.0
			if !s.OldestDue.IsZero() {
				age = max(0, g.Now().Sub(s.OldestDue).Seconds())
			}
			ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age)
			ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(s.Dead))
			for st, n := range s.Events {
				ch <- prometheus.MustNewConstMetric(descEvents, prometheus.GaugeValue, float64(n), st)
			}
		}
	}
	if g.Size != nil {
		ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(g.Size()))
	}
	if g.Breakers != nil {
		for target, state := range g.Breakers() {
			for _, s := range []string{"closed", "open", "half_open"} {
				v := 0.0
				if s == state {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, v, target, s)
			}
		}
	}
}
