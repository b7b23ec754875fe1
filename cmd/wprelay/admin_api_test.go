package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/config"
)

type apiErr struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func TestAdminAPI_TokenOnEverythingButProbes(t *testing.T) {
	e := newAdminEnv(t)
	id := e.github("auth-1", "push", `{"ref":"refs/heads/main"}`)
	routes := [][2]string{
		{"GET", "/admin/v1/events"}, {"GET", "/admin/v1/events/" + id}, {"GET", "/admin/v1/events/" + id + "/raw"},
		{"POST", "/admin/v1/events/" + id + "/replay"}, {"GET", "/admin/v1/dlq"}, {"POST", "/admin/v1/dlq/replay"},
		{"GET", "/admin/v1/stats"}, {"GET", "/admin/v1/export"}, {"POST", "/admin/v1/import"}, {"GET", "/debug/pprof/cmdline"},
	}
	for _, r := range routes {
		for _, auth := range []string{"", "Bearer ", "Bearer wrong", "Basic " + cliAdminToken, "Bearer " + cliAdminToken + "x", "bearer " + cliAdminToken} {
			req, _ := http.NewRequest(r[0], e.admin+r[1], nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body apiErr
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != 401 || body.Error != "unauthorized" || !strings.Contains(body.Message, "admin.token") ||
				resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with Authorization %q: %d %+v, want 401 unauthorized with a next step", r[0], r[1], auth, resp.StatusCode, body)
			}
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if st := e.apiToken("", "GET", p, "", nil); st != 200 {
			t.Errorf("%s without a token: %d, want 200", p, st)
		}
	}
	var h map[string]string
	if e.apiToken("", "GET", "/healthz", "", &h); h["status"] != "ok" || h["version"] == "" {
		t.Errorf("/healthz = %v, want status and version", h)
	}
	if st := e.api("GET", "/admin/v1/events", "", nil); st != 200 {
		t.Errorf("with the token: %d", st)
	}
}

func TestAdminAPI_Filters(t *testing.T) {
	e := newAdminEnv(t)
	before := time.Now().UTC()
	push := e.github("f-1", "push", `{"ref":"refs/heads/main"}`)
	inv := e.stripe("evt_f_2", "invoice.created")
	e.waitStatus(inv, "delivered")
	mid := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	charge := e.stripe("evt_f_3", "charge.succeeded") // no route
	e.crm.set(400, nil)
	dead := e.github("f-4", "push", `{"ref":"refs/heads/dev"}`)
	e.waitStatus(dead, "failed")
	e.waitStatus(push, "delivered")

	list := func(q string) []string {
		t.Helper()
		var page struct {
			Events     []admin.EventView `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
		if st := e.api("GET", "/admin/v1/events?"+q, "", &page); st != 200 {
			t.Fatalf("?%s: %d", q, st)
		}
		ids := []string{}
		for _, ev := range page.Events {
			ids = append(ids, ev.ID)
		}
		return ids
	}
	at := func(tm time.Time) string { return url.QueryEscape(tm.Format(time.RFC3339Nano)) }
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"", []string{dead, charge, inv, push}},
		{"status=delivered", []string{inv, push}},
		{"status=failed", []string{dead}},
		{"status=discarded", []string{charge}},
		{"status=queued", []string{}},
		{"source=gh", []string{dead, push}},
		{"source=stripe", []string{charge, inv}},
		{"tenant=acme", []string{charge, inv}},
		{"tenant=globex", []string{}},
		{"type=invoice.created", []string{inv}},
		{"type=push&status=failed", []string{dead}},
		{"since=" + at(mid), []string{dead, charge}},
		{"until=" + at(mid), []string{inv, push}},
		{"since=" + at(before) + "&until=" + at(mid) + "&source=gh", []string{push}},
		{"since=" + fmt.Sprint(before.Add(time.Hour).Unix()), []string{}},
	} {
		if got := list(c.q); !slices.Equal(got, c.want) {
			t.Errorf("?%s = %v, want %v", c.q, got, c.want)
		}
	}
	for _, q := range []string{"status=done", "staus=failed", "since=yesterday", "limit=0", "limit=1001", "cursor=!!"} {
		var body apiErr
		if st := e.api("GET", "/admin/v1/events?"+q, "", &body); st != 400 || body.Error != "bad_request" || body.Message == "" {
			t.Errorf("?%s: %d %+v, want 400 bad_request with a message", q, st, body)
		}
	}
	var body apiErr
	if st := e.api("GET", "/admin/v1/events/no-such-event", "", &body); st != 404 || body.Error != "not_found" || !strings.Contains(body.Message, "/admin/v1/events") {
		t.Errorf("unknown event: %d %+v", st, body)
	}
}

// Pages are stable while webhooks keep arriving: every event stored before
// the listing started is listed once, in order, and nothing twice.
func TestAdminAPI_PagingWhileInserting(t *testing.T) {
	e := newAdminEnv(t)
	var want []string
	for i := range 30 {
		want = append([]string{e.github(fmt.Sprintf("p-%d", i), "push", fmt.Sprintf(`{"n":%d}`, i))}, want...)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	inserted := 0
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.github(fmt.Sprintf("new-%d", i), "push", fmt.Sprintf(`{"new":%d}`, i))
			inserted++
		}
	})
	seen := map[string]int{}
	var got []string
	cursor := ""
	for pages := 0; pages < 100; pages++ {
		var page struct {
			Events     []admin.EventView `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
		if st := e.api("GET", "/admin/v1/events?limit=4&cursor="+cursor, "", &page); st != 200 {
			t.Fatalf("page %d: %d", pages, st)
		}
		for _, ev := range page.Events {
			seen[ev.ID]++
			got = append(got, ev.ID)
		}
		time.Sleep(2 * time.Millisecond) // let inserts land between pages
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	close(stop)
	wg.Wait()
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s listed %d times", id, n)
		}
	}
	var old []string
	for _, id := range got {
		if slices.Contains(want, id) {
			old = append(old, id)
		}
	}
	if !slices.Equal(old, want) {
		t.Fatalf("the %d events stored before paging came out as %d (in order: %v)", len(want), len(old), slices.Equal(old, want[:min(len(old), len(want))]))
	}
	if inserted == 0 {
		t.Fatal("nothing was inserted while paging")
	}
	t.Logf("paged %d events (%d stored before) while %d arrived", len(got), len(want), inserted)
}

func TestAdminAPI_ReplaySemantics(t *testing.T) {
	e := newAdminEnv(t)
	e.crm.set(400, nil)
	id := e.github("r-1", "push", `{"ref":"refs/heads/main"}`)
	v := e.waitStatus(id, "failed")
	d := v.Deliveries[0]
	if d.Status != "dead" || d.Attempts != 1 || d.IdempotencyKey != id+":crm" || !strings.Contains(d.Reason, "HTTP 400") ||
		len(d.History) != 1 || d.History[0].Status != 400 || d.History[0].Response != `{"ok":false}` || d.History[0].At.IsZero() {
		t.Fatalf("dead delivery = %+v", d)
	}
	var dlq struct {
		Deliveries []admin.DeadView `json:"deliveries"`
	}
	if e.api("GET", "/admin/v1/dlq", "", &dlq); len(dlq.Deliveries) != 1 || dlq.Deliveries[0].EventID != id ||
		dlq.Deliveries[0].Source != "gh" || dlq.Deliveries[0].Type != "push" || dlq.Deliveries[0].DeadAt.IsZero() || dlq.Deliveries[0].Reason == "" {
		t.Fatalf("dlq = %+v", dlq)
	}

	// A target the event has no delivery to: nothing_to_replay (409), naming
	// the event's targets and the backfill.
	var body apiErr
	if st := e.api("POST", "/admin/v1/events/"+id+"/replay?target=nope", "", &body); st != 409 || body.Error != "nothing_to_replay" ||
		!strings.Contains(body.Message, `no delivery to target "nope"; its targets: crm`) || !strings.Contains(body.Message, "Backfill a new target") {
		t.Fatalf("replay to a target without a delivery: %d %+v", st, body)
	}
	if st := e.api("POST", "/admin/v1/events/no-such/replay", "", &body); st != 404 {
		t.Fatalf("replay of an unknown event: %d %+v", st, body)
	}

	// The target is fixed; the replay is a new attempt with the same key.
	e.crm.set(200, nil)
	var rep map[string]any
	if st := e.api("POST", "/admin/v1/events/"+id+"/replay?target=crm", "", &rep); st != 202 || rep["replayed"] != 1.0 {
		t.Fatalf("replay: %d %v", st, rep)
	}
	v = e.waitStatus(id, "delivered")
	d = v.Deliveries[0]
	if d.Attempts != 2 || len(d.History) != 2 || d.History[1].Status != 200 || d.IdempotencyKey != id+":crm" {
		t.Fatalf("after the replay: %+v", d)
	}
	if got := e.crm.got(); !slices.Equal(got, []string{id + ":crm", id + ":crm"}) {
		t.Fatalf("the target got Idempotency-Keys %v, want the same key twice", got)
	}
	if e.api("GET", "/admin/v1/dlq", "", &dlq); len(dlq.Deliveries) != 0 {
		t.Fatalf("dlq after the replay: %+v", dlq)
	}

	// A delivered event can be replayed too: one more attempt, same key.
	if st := e.api("POST", "/admin/v1/events/"+id+"/replay", "", &rep); st != 202 {
		t.Fatalf("second replay: %d %v", st, rep)
	}
	e.wait(id, "a third attempt", func(v admin.EventView) bool { return v.Status == "delivered" && v.Deliveries[0].Attempts == 3 })
	if got := e.crm.got(); len(got) != 3 || got[2] != id+":crm" {
		t.Fatalf("keys after the second replay: %v", got)
	}

	// Bulk: dead letters of two sources; replay only one source's.
	e.crm.set(400, nil)
	e.wp.set(400, nil)
	gh := e.github("r-2", "push", `{"ref":"refs/heads/x"}`)
	st := e.stripe("evt_r_3", "invoice.created")
	e.waitStatus(gh, "failed")
	e.wait(st, "both deliveries dead", func(v admin.EventView) bool {
		return v.Status == "failed" && v.Deliveries[0].Status == "dead" && v.Deliveries[1].Status == "dead"
	})
	e.crm.set(200, nil)
	e.wp.set(200, nil)
	var n map[string]int
	if code := e.api("POST", "/admin/v1/dlq/replay", `{"source":"gh"}`, &n); code != 200 || n["replayed"] != 1 {
		t.Fatalf("dlq replay source gh: %d %v", code, n)
	}
	e.waitStatus(gh, "delivered")
	if code := e.api("POST", "/admin/v1/dlq/replay", `{"target":"wp","limit":5}`, &n); code != 200 || n["replayed"] != 1 {
		t.Fatalf("dlq replay target wp: %d %v", code, n)
	}
	v = e.wait(st, "wp delivered", func(v admin.EventView) bool { return v.Deliveries[1].Status == "succeeded" })
	if v.Status != "failed" || v.Deliveries[0].Status != "dead" {
		t.Fatalf("crm's delivery should still be dead: %+v", v)
	}
	if code := e.api("POST", "/admin/v1/dlq/replay", `{}`, &n); code != 200 || n["replayed"] != 1 {
		t.Fatalf("dlq replay all: %d %v", code, n)
	}
	e.waitStatus(st, "delivered")
	for _, bad := range []string{`{"sorce":"gh"}`, `{"since":"yesterday"}`, `{"limit":-1}`, `[]`} {
		if code := e.api("POST", "/admin/v1/dlq/replay", bad, &body); code != 400 || body.Message == "" {
			t.Errorf("dlq replay %s: %d %+v, want 400", bad, code, body)
		}
	}
}

func TestAdminAPI_DetailAndRaw(t *testing.T) {
	e := newAdminEnv(t)
	id := e.stripe("evt_d_1", "invoice.created")
	v := e.waitStatus(id, "delivered")
	if v.Source != "stripe" || v.Tenant != "acme" || v.Type != "invoice.created" || v.IdempotencyKey != "stripe:acme:evt_d_1" ||
		len(v.TraceID) != 32 || !strings.Contains(v.TraceParent, v.TraceID) || v.ReceivedAt.IsZero() {
		t.Errorf("detail = %+v", v)
	}
	var env map[string]any
	if err := json.Unmarshal(v.Envelope, &env); err != nil || env["id"] != id || env["type"] != "invoice.created" {
		t.Errorf("envelope = %s (%v)", v.Envelope, err)
	}
	if len(v.Deliveries) != 2 {
		t.Fatalf("deliveries = %+v", v.Deliveries)
	}
	for _, d := range v.Deliveries {
		a := d.History[0]
		if d.IdempotencyKey != id+":"+d.Target || a.Status != 200 || a.At.IsZero() || a.DurationMS < 0 || a.Response != `{"ok":true}` {
			t.Errorf("delivery %s = %+v", d.Target, d)
		}
	}
	var raw admin.RawView
	if st := e.api("GET", "/admin/v1/events/"+id+"/raw", "", &raw); st != 200 {
		t.Fatalf("raw: %d", st)
	}
	if raw.Method != "POST" || raw.Path != "/hooks/stripe" || raw.Headers["Stripe-Signature"][0] != "REDACTED" ||
		!strings.Contains(string(raw.Body), `"evt_d_1"`) || raw.Headers["Content-Type"][0] != "application/json" {
		t.Errorf("raw = %+v", raw)
	}
	if strings.Contains(fmt.Sprint(raw.Headers), "v1=") {
		t.Errorf("raw headers hold a signature: %v", raw.Headers)
	}
}

func TestAdminAPI_Stats(t *testing.T) {
	e := newAdminEnv(t, func(c *config.Config) {
		c.Targets[1].Breaker = config.Breaker{Failures: 1, Cooldown: config.Duration(time.Hour)}
	})
	e.wp.set(503, nil)
	e.crm.set(200, nil)
	a := e.stripe("evt_s_1", "invoice.created") // crm ok; wp 503 opens wp's breaker
	e.wait(a, "wp retrying", func(v admin.EventView) bool { return v.Deliveries[1].Status == "retrying" })
	b := e.stripe("evt_s_2", "invoice.paid") // wp's delivery waits behind the open breaker
	e.wait(b, "crm delivered", func(v admin.EventView) bool { return v.Deliveries[0].Status == "succeeded" })
	e.crm.set(400, nil)
	c := e.github("s-3", "push", `{}`)
	e.waitStatus(c, "failed")
	time.Sleep(20 * time.Millisecond)

	var s admin.StatsView
	if st := e.api("GET", "/admin/v1/stats", "", &s); st != 200 {
		t.Fatalf("stats: %d", st)
	}
	if s.Events["queued"] != 2 || s.Events["failed"] != 1 || s.Events["delivered"] != 0 {
		t.Errorf("events = %v", s.Events)
	}
	if s.Deliveries["succeeded"] != 2 || s.Deliveries["dead"] != 1 || s.Deliveries["retrying"]+s.Deliveries["pending"] != 2 {
		t.Errorf("deliveries = %v", s.Deliveries)
	}
	if s.QueueDepth != 2 || s.DeadLetter != 1 || s.OldestPendingAge == nil || s.OldestPending.IsZero() {
		t.Errorf("queue depth %d, dead %d, oldest pending %v (age %v)", s.QueueDepth, s.DeadLetter, s.OldestPending, s.OldestPendingAge)
	}
	crm, wp := s.Targets["crm"], s.Targets["wp"]
	if crm.Breaker != "closed" || crm.Attempts != 3 || crm.Succeeded != 2 || crm.SuccessRate == nil || fmt.Sprintf("%.3f", *crm.SuccessRate) != "0.667" {
		t.Errorf("crm = %+v", crm)
	}
	if wp.Breaker != "open" || wp.RetryAt.IsZero() || wp.Attempts != 1 || wp.Succeeded != 0 || wp.SuccessRate == nil || *wp.SuccessRate != 0 {
		t.Errorf("wp = %+v", wp)
	}
	if s.SuccessRateWindow != "since_start" || s.Version == "" || s.StartedAt.IsZero() || s.Now.Before(s.StartedAt) {
		t.Errorf("stats = %+v", s)
	}
}

// A replay that can schedule nothing says why: an event no route matched
// (discarded), or deliveries skipped by a dry-run route.
func TestAdminAPI_ReplayOfNothingSaysWhy(t *testing.T) {
	e := newAdminEnv(t, func(c *config.Config) {
		c.Routes = append(c.Routes, config.Route{Source: "gh", Types: []string{"issues.*"}, To: []string{"wp"}, DryRun: true})
	})
	discarded := e.github("n-1", "release", `{"action":"published"}`)
	e.waitStatus(discarded, "discarded")
	var body apiErr
	st := e.api("POST", "/admin/v1/events/"+discarded+"/replay", "", &body)
	if st != 409 || body.Error != "nothing_to_replay" || !strings.Contains(body.Message, "stored discarded because no route matched it") ||
		!strings.Contains(body.Message, `source "gh", type "release.published"`) || !strings.Contains(body.Message, "add a route for it") {
		t.Fatalf("replay of a discarded event: %d %+v", st, body)
	}
	if strings.Contains(body.Message, "in flight") {
		t.Errorf("the message blames attempts in flight: %s", body.Message)
	}
	// The CLI shows the same and exits 1.
	_, stderr, code := e.cli("events", "replay", discarded)
	if code != 1 || !strings.Contains(stderr, "no route matched it") {
		t.Fatalf("events replay: exit %d\n%s", code, stderr)
	}

	dry := e.github("n-2", "issues", `{"action":"opened"}`)
	e.wait(dry, "the dry run", func(v admin.EventView) bool { return len(v.Deliveries) == 1 && v.Deliveries[0].Status == "skipped" })
	if st := e.api("POST", "/admin/v1/events/"+dry+"/replay", "", &body); st != 409 || !strings.Contains(body.Message, "skipped by a dry-run route for wp") {
		t.Fatalf("replay of a dry run: %d %+v", st, body)
	}

	// A delivery with no attempt scheduled has no next_at, rather than
	// the zero time.
	var raw json.RawMessage
	e.api("GET", "/admin/v1/events/"+dry, "", &raw)
	if strings.Contains(string(raw), "0001-01-01") || strings.Contains(string(raw), `"next_at"`) {
		t.Fatalf("a skipped delivery shows next_at: %s", raw)
	}
}
