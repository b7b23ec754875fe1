package metrics

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// exported returns every metric name the registry exports, with the
// _bucket/_sum/_count series of histograms.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := New([]string{"s"}, []string{"t"})
	m.Register(&Gauges{
		Stats: func(context.Context) (relay.Stats, error) {
			return relay.Stats{Events: map[string]int{"queued": 1}, OldestDue: time.Now()}, nil
		},
		Size:     func() int64 { return 1 },
		Breakers: func() map[string]string { return map[string]string{"t": "closed"} },
		Now:      time.Now,
	})
	m.Request("s", "queued", "", time.Millisecond)
	m.Events("s", 1, 0)
	m.Attempt("t", 200, time.Millisecond, relay.DeliverySucceeded)
	m.Commit(3, time.Millisecond)
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	return names
}

var metricRE = regexp.MustCompile(`\bwprelay_[a-z_]+`)

func checkExprs(t *testing.T, where string, exprs []string, names map[string]bool) {
	t.Helper()
	if len(exprs) == 0 {
		t.Fatalf("%s: no expressions found", where)
	}
	for _, e := range exprs {
		for _, name := range metricRE.FindAllString(e, -1) {
			if !names[name] {
				t.Errorf("%s uses %s, which wprelay does not export", where, name)
			}
		}
	}
}

func TestDashboard_UsesExportedMetrics(t *testing.T) {
	data, err := os.ReadFile("../../deploy/grafana/wprelay-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || len(d.Panels) < 8 {
		t.Fatalf("dashboard uid %q with %d panels", d.UID, len(d.Panels))
	}
	names := exported(t)
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	checkExprs(t, "the dashboard", exprs, names)
}

func TestAlertRules_UseExportedMetrics(t *testing.T) {
	data, err := os.ReadFile("../../deploy/prometheus/wprelay-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The rules are also checked by promtool in make test; here, only that
	// every metric they name exists.
	var exprs []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "wprelay_") && !strings.Contains(line, "summary:") && !strings.Contains(line, "description:") {
			exprs = append(exprs, line)
		}
	}
	checkExprs(t, "the alert rules", exprs, exported(t))
}

func TestClass(t *testing.T) {
	for status, want := range map[int]string{0: "network", 200: "2xx", 204: "2xx", 302: "3xx", 404: "4xx", 429: "4xx", 503: "5xx", 600: "network"} {
		if got := Class(status); got != want {
			t.Errorf("Class(%d) = %q, want %q", status, got, want)
		}
	}
}
