package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wprelay/wprelay/relay/config"
)

// scrape returns every sample of /metrics keyed "name{label=value,...}".
func scrape(t *testing.T, m *Main) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + m.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, mt := range f.Metric {
			var labels []string
			for _, l := range mt.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = mt.Counter.GetValue()
			case dto.MetricType_GAUGE:
				out[key] = mt.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func TestMetrics_OutcomesMoveCounters(t *testing.T) {
	status := 200
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer target.Close()
	cfg := config.Default()
	cfg.Admin.Token = "metrics-admin-token-123456"
	cfg.Sources = []config.Source{{Name: "gh", Kind: "github", Secrets: []config.Secret{"gh-secret"}}}
	cfg.Targets = []config.Target{{Name: "crm", Kind: "http", URL: target.URL, AllowPrivate: true, MaxAttempts: 1}}
	cfg.Routes = []config.Route{{Source: "gh", To: []string{"crm"}}}
	m := MustRunMain(t, cfg)
	base := "http://" + m.PublicAddr()

	send := func(body, delivery, secret string) int {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		req, _ := http.NewRequest("POST", base+"/hooks/gh", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", delivery)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(key string, want float64) map[string]float64 {
		t.Helper()
		var s map[string]float64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if s = scrape(t, m); s[key] >= want {
				return s
			}
		}
		t.Fatalf("%s = %v, want %v", key, s[key], want)
		return nil
	}

	before := scrape(t, m)
	if before["wprelay_ingest_requests_total{code=,outcome=queued,source=gh}"] != 0 {
		t.Fatalf("pre-created series not zero: %v", before)
	}
	if got := send(`{"n":1}`, "m1", "gh-secret"); got != 202 {
		t.Fatalf("valid: %d", got)
	}
	send(`{"n":1}`, "m1", "gh-secret") // duplicate
	send(`{"n":2}`, "m2", "wrong")     // invalid signature
	http.Post(base+"/hooks/nope", "application/json", strings.NewReader("{}"))
	waitFor("wprelay_deliveries_total{outcome=succeeded,target=crm}", 1)
	// A scrape gathers families concurrently, so one taken while an attempt
	// was being counted may show part of it: take a fresh one.
	after := scrape(t, m)

	for key, want := range map[string]float64{
		"wprelay_ingest_requests_total{code=,outcome=queued,source=gh}":                       1,
		"wprelay_ingest_requests_total{code=,outcome=duplicate,source=gh}":                    1,
		"wprelay_ingest_requests_total{code=invalid_signature,outcome=rejected,source=gh}":    1,
		"wprelay_ingest_requests_total{code=unknown_source,outcome=rejected,source=_unknown}": 1,
		"wprelay_events_total{outcome=queued,source=gh}":                                      1,
		"wprelay_events_total{outcome=duplicate,source=gh}":                                   1,
		"wprelay_delivery_attempts_total{class=2xx,target=crm}":                               1,
		"wprelay_ingest_duration_seconds{source=gh}_count":                                    3,
		"wprelay_delivery_duration_seconds{target=crm}_count":                                 1,
	} {
		if got := after[key] - before[key]; got != want {
			t.Errorf("%s moved by %v, want %v", key, got, want)
		}
	}
	if after["wprelay_store_commit_ops{}_count"] < 1 || after["wprelay_store_size_bytes{}"] <= 0 {
		t.Errorf("store metrics: commits %v size %v", after["wprelay_store_commit_ops{}_count"], after["wprelay_store_size_bytes{}"])
	}
	if after["wprelay_breaker_state{state=closed,target=crm}"] != 1 {
		t.Errorf("breaker gauge: %v", after["wprelay_breaker_state{state=closed,target=crm}"])
	}

	// A dead letter moves the dead counters and the DLQ gauge.
	status = 400
	send(`{"n":3}`, "m3", "gh-secret")
	waitFor("wprelay_deliveries_total{outcome=dead,target=crm}", 1)
	// The gauge reads the store, where the outcome is committed with the
	// dispatcher's next claim or at most deliver.settleLinger later.
	waitFor("wprelay_dead_letters{}", 1)
	after = scrape(t, m)
	if after["wprelay_delivery_attempts_total{class=4xx,target=crm}"] != 1 || after["wprelay_dead_letters{}"] != 1 {
		t.Errorf("4xx attempts %v, dead letters %v", after["wprelay_delivery_attempts_total{class=4xx,target=crm}"], after["wprelay_dead_letters{}"])
	}

	// Label values stay bounded: a thousand unknown sources make one series.
	for i := range 50 {
		resp, err := http.Post(fmt.Sprintf("%s/hooks/random-%d", base, i), "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
	}
	series := 0
	for key := range scrape(t, m) {
		if strings.HasPrefix(key, "wprelay_ingest_requests_total{") {
			series++
		}
		if strings.Contains(key, "random-") {
			t.Fatalf("unbounded label value: %s", key)
		}
	}
	if series > 10 {
		t.Errorf("%d ingest series", series)
	}
}
