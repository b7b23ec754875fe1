//go:build integration

package main

import (
	"fmt"
	"testing"
	"time"
)

// Past its daily request budget a paid API gets nothing more: the rest wait
// (queued, not dead) until the budget resets, across a restart; the admin
// stats show the budget and why deliveries wait.
func TestAutomation_Budget_RestWaitVisibleInStats(t *testing.T) {
	h := newHook(t, nil)
	sc := startSidecar(t, t.TempDir(), automationConfig(`
  - {name: ai, kind: http, url: "`+h.srv.URL+`/ai", allow_private: true, daily_budget: 3, rate_per_minute: 6000, concurrency: 2}`, `
  - {source: crm, to: [ai]}`))
	var ids []string
	for i := range 5 {
		ids = append(ids, sendStandard(t, sc.public+"/hooks/crm", wpSigning, crmEvent("doc.created", fmt.Sprint("d_", i), time.Now(), nil)))
	}
	waitFor(t, 10*time.Second, "3 requests", func() bool { return h.count("/ai") >= 3 })
	time.Sleep(300 * time.Millisecond)
	if n := h.count("/ai"); n != 3 {
		t.Fatalf("%d requests with a daily budget of 3", n)
	}
	check := func(when string) {
		t.Helper()
		st := sc.targetStats("ai")
		b, _ := st["budget"].(map[string]any)
		resets, _ := time.Parse(time.RFC3339, fmt.Sprint(b["resets_at"]))
		if b["daily"] != 3.0 || b["used"] != 3.0 || b["remaining"] != 0.0 || b["exhausted"] != true || st["waiting"] != "budget" ||
			!resets.Equal(time.Now().UTC().Truncate(24*time.Hour).Add(24*time.Hour)) {
			t.Fatalf("%s: target stats %v", when, st)
		}
		queued := 0
		for _, id := range ids {
			ev, _ := sc.detail(id)
			switch ev.Status {
			case "queued":
				queued++
				if d := ev.delivery("ai"); d.Status != "pending" || d.Attempts != 0 {
					t.Fatalf("%s: a waiting delivery is %s with %d attempts", when, d.Status, d.Attempts)
				}
			case "delivered":
			default:
				t.Fatalf("%s: event %s is %s", when, id, ev.Status)
			}
		}
		if queued != 2 {
			t.Fatalf("%s: %d events wait, want 2", when, queued)
		}
		t.Logf("%s: ai budget %v, waiting %v", when, b, st["waiting"])
	}
	check("after 5 events")

	// A restart does not bring a fresh budget.
	sc.stop()
	sc.restartSame()
	time.Sleep(300 * time.Millisecond)
	if n := h.count("/ai"); n != 3 {
		t.Fatalf("%d requests after a restart, want still 3", n)
	}
	check("after a restart")
}
