//go:build integration

package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// wpJSON runs a `wp wprelay …` command whose --format=json output decodes
// into v, and returns its exit code.
func wpJSON(t *testing.T, site *wpstack.Site, v any, args ...string) int {
	t.Helper()
	r := site.WP(t, append(args, "--format=json")...)
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.Stdout)), v); err != nil {
		t.Fatalf("wp %v: exit %d, output is not JSON (%v):\n%s\n%s", args, r.Code, err, r.Stdout, r.Stderr)
	}
	return r.Code
}

// checkRows turns `status`/`health` JSON rows into id → status.
func checkRows(rows []map[string]any, key string) map[string]string {
	out := map[string]string{}
	for _, r := range rows {
		out[fmt.Sprint(r[key])] = fmt.Sprint(r["status"])
	}
	return out
}

// The `wp wprelay` commands, run through WP-CLI's phar against the real
// site and sidecar: status and health with the sidecar up (exit 0) and
// down (exit 1, critical), events from the receipts and from the sidecar,
// replay, dead letters, and the outbox's list, retry and purge, in every
// --format.
func TestWP_CLI_Commands(t *testing.T) {
	site := sharedSite(t)
	refuse := func(int, string) answer { return answer{status: 400} }
	tg := newTarget(t, refuse)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))

	// Other tests leave failed and pending rows behind: send the pending
	// ones and purge the failed ones (older than 0 days).
	if r := site.WP(t, "wprelay", "outbox", "retry", "--pending"); r.Code != 0 {
		t.Fatalf("outbox retry --pending: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := site.WP(t, "wprelay", "outbox", "purge", "--state=failed", "--yes"); r.Code != 0 || !strings.Contains(r.Stdout, "Success: Deleted") {
		t.Fatalf("outbox purge --state=failed: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	t.Run("status and health, sidecar up", func(t *testing.T) {
		var rows []map[string]any
		code := wpJSON(t, site, &rows, "wprelay", "status")
		st := checkRows(rows, "check")
		if code != 0 || st["sidecar_reachable"] != "good" || st["sidecar_ready"] != "good" || st["constants"] != "good" || st["clock_skew"] != "good" || st["loopback_allowance"] != "good" {
			t.Fatalf("status: exit %d, %v", code, rows)
		}
		if _, ok := st["outbox_pending"]; !ok {
			t.Fatalf("status has no outbox counts: %v", rows)
		}
		var health []map[string]any
		if code := wpJSON(t, site, &health, "wprelay", "health"); code != 0 || len(health) < 8 {
			t.Fatalf("health: exit %d, %v", code, health)
		}
		for _, h := range health {
			if h["status"] != "good" || h["description"] == "" {
				t.Errorf("health check %v", h)
			}
		}
		// yaml and csv through WP-CLI's formatter; table is the default.
		y := site.WP(t, "wprelay", "health", "--format=yaml")
		var yrows []map[string]any
		if err := yaml.Unmarshal([]byte(y.Stdout), &yrows); err != nil || len(yrows) != len(health) || y.Code != 0 {
			t.Fatalf("health --format=yaml: exit %d, %v\n%s", y.Code, err, y.Stdout)
		}
		c := site.WP(t, "wprelay", "status", "--format=csv")
		recs, err := csv.NewReader(strings.NewReader(c.Stdout)).ReadAll()
		if err != nil || len(recs) != len(rows)+1 || strings.Join(recs[0], ",") != "check,status,value" {
			t.Fatalf("status --format=csv: %v\n%s", err, c.Stdout)
		}
		tbl := site.WP(t, "wprelay", "status")
		// Without a terminal, WP-CLI prints a table as tab-separated lines.
		if !strings.HasPrefix(tbl.Stdout, "check\tstatus\tvalue\n") || !strings.Contains(tbl.Stdout, "sidecar_reachable\tgood\treachable") {
			t.Fatalf("status (table):\n%s", tbl.Stdout)
		}
	})

	t.Run("events from the receipts", func(t *testing.T) {
		evID := uuid.NewString()
		if r := (wpCall{Route: "events", Body: envelope(evID, "invoice.created", map[string]any{"id": "in_cli"})}).send(t, site); r.Status != 202 {
			t.Fatalf("deliver: %d %s", r.Status, r.Raw)
		}
		var rows []map[string]any
		if code := wpJSON(t, site, &rows, "wprelay", "events", "list", "--type=invoice.created", "--limit=50"); code != 0 {
			t.Fatalf("events list: exit %d", code)
		}
		found := false
		for _, r := range rows {
			found = found || r["event_id"] == evID && r["route"] == "events"
		}
		if !found {
			t.Fatalf("events list does not show %s: %v", evID, rows)
		}
		var show map[string]any
		if code := wpJSON(t, site, &show, "wprelay", "events", "show", evID); code != 0 || show["type"] != "invoice.created" {
			t.Fatalf("events show: exit %d, %v", code, show)
		}
		rec, _ := show["receipts"].([]any)
		if len(rec) != 1 || rec[0].(map[string]any)["route"] != "events" {
			t.Fatalf("events show receipts: %v", show["receipts"])
		}
		if r := site.WP(t, "wprelay", "events", "show", "no-such-event"); r.Code != 1 || !strings.Contains(r.Stderr, "Error: No event no-such-event") {
			t.Fatalf("events show of an unknown id: exit %d\n%s", r.Code, r.Stderr)
		}
	})

	var deadID string
	t.Run("sidecar events, replay and dead letters", func(t *testing.T) {
		// The site emits an event; the sidecar routes it to the target, which
		// refuses it with a 400: a dead letter at once.
		key := strings.TrimSpace(site.PHP(t, `echo wprelay_emit( 'test.cli', 'test:cli', array( 'n' => 1 ) );`))
		var ev eventView
		waitFor(t, 15*time.Second, "the event to die", func() bool {
			var page struct {
				Events []eventView `json:"events"`
			}
			sc.adminDo("GET", "/admin/v1/events?type=test.cli", "", &page)
			for _, e := range page.Events {
				if e.Status == "failed" {
					ev = e
					return true
				}
			}
			return false
		})
		deadID = ev.ID
		var remote []map[string]any
		if code := wpJSON(t, site, &remote, "wprelay", "events", "list", "--remote", "--type=test.cli"); code != 0 || len(remote) != 1 || remote[0]["id"] != deadID || remote[0]["status"] != "failed" {
			t.Fatalf("events list --remote: exit %d, %v (key %s)", code, remote, key)
		}
		var dead []map[string]any
		if code := wpJSON(t, site, &dead, "wprelay", "dlq", "list", "--target=fake"); code != 0 || len(dead) == 0 || dead[0]["event_id"] != deadID {
			t.Fatalf("dlq list: exit %d, %v", code, dead)
		}
		var health []map[string]any
		code := wpJSON(t, site, &health, "wprelay", "health")
		if hs := checkRows(health, "id"); code != 2 || hs["dead_letters"] != "recommended" {
			t.Fatalf("health with a dead letter: exit %d (want 2), %v", code, health)
		}
		if r := site.WP(t, "wprelay", "dlq", "replay", "--target=fake"); r.Code != 0 || !strings.Contains(r.Stdout, "Success: 1 dead delivery replayed.") {
			t.Fatalf("dlq replay: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		if r := site.WP(t, "wprelay", "events", "replay", deadID, "--target=fake"); r.Code != 0 || !strings.Contains(r.Stdout, "Success:") {
			t.Fatalf("events replay: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		if r := site.WP(t, "wprelay", "events", "replay", "no-such-event"); r.Code != 1 || !strings.Contains(r.Stderr, "not_found") {
			t.Fatalf("events replay of an unknown id: exit %d\n%s", r.Code, r.Stderr)
		}
	})

	t.Run("outbox list, retry and purge; sidecar down", func(t *testing.T) {
		sent := strings.TrimSpace(site.PHP(t, `echo wprelay_emit( 'test.sent', 'test:sent', array() );`))
		var rows []map[string]any
		if code := wpJSON(t, site, &rows, "wprelay", "outbox", "list", "--state=sent", "--limit=100"); code != 0 {
			t.Fatalf("outbox list: exit %d", code)
		}
		found := false
		for _, r := range rows {
			found = found || r["idempotency_key"] == sent
		}
		if !found {
			t.Fatalf("outbox list --state=sent does not show %s", sent)
		}

		sc.stop()
		key := strings.TrimSpace(site.PHP(t, `echo wprelay_emit( 'test.later', 'test:later', array() );`))
		id := site.Query(t, "SELECT id FROM wp_wprelay_outbox WHERE idempotency_key = '"+key+"'")[0][0]
		var st []map[string]any
		code := wpJSON(t, site, &st, "wprelay", "status")
		if s := checkRows(st, "check"); code != 1 || s["sidecar_reachable"] != "critical" || s["sidecar_ready"] != "critical" {
			t.Fatalf("status with the sidecar down: exit %d (want 1), %v", code, st)
		}
		if r := site.WP(t, "wprelay", "outbox", "retry", id); r.Code != 1 || !strings.Contains(r.Stderr, "network") {
			t.Fatalf("outbox retry while down: exit %d (want 1)\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		if r := site.WP(t, "wprelay", "events", "list", "--remote"); r.Code != 1 || !strings.Contains(r.Stderr, "wprelay_unreachable") {
			t.Fatalf("events list --remote while down: exit %d (want 1)\n%s", r.Code, r.Stderr)
		}

		sc.restartSame()
		if r := site.WP(t, "wprelay", "outbox", "retry", "--pending"); r.Code != 0 || !strings.Contains(r.Stdout, "Row "+id+": sent") {
			t.Fatalf("outbox retry --pending: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		if r := site.WP(t, "wprelay", "outbox", "purge", "--yes"); r.Code != 0 || !strings.Contains(r.Stdout, "Success: Deleted") {
			t.Fatalf("outbox purge: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_outbox WHERE state = 'sent'"); n != 0 {
			t.Fatalf("%d sent rows after purge", n)
		}
	})
	tg.checkAuthentic()
}
