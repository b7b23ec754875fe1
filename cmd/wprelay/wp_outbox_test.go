//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// outboxRow is a row of wp_wprelay_outbox.
type outboxRow struct {
	ID, Key, Type, Ref, State, LastError string
	Attempts                             int
}

func outboxRows(t *testing.T, site *wpstack.Site, where string) []outboxRow {
	t.Helper()
	var out []outboxRow
	for _, r := range site.Query(t, "SELECT id, idempotency_key, event_type, object_ref, state, attempts, IFNULL(last_error, '') FROM wp_wprelay_outbox WHERE "+where+" ORDER BY id") {
		n, _ := strconv.Atoi(r[5])
		out = append(out, outboxRow{ID: r[0], Key: r[1], Type: r[2], Ref: r[3], State: r[4], Attempts: n, LastError: r[6]})
	}
	return out
}

// publishPost publishes a post through the REST API as the admin (a real
// request to the site) and returns its id and how long the request took.
func publishPost(t *testing.T, site *wpstack.Site, title string) (int, time.Duration) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"title": title, "content": "<p>Body of " + title + "</p>", "status": "publish"})
	req, _ := http.NewRequest("POST", site.URL+"/wp-json/wp/v2/posts", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(site.AdminUser, site.AppPass)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	var post struct {
		ID int `json:"id"`
	}
	if resp.StatusCode != 201 || json.Unmarshal(data, &post) != nil || post.ID == 0 {
		t.Fatalf("publish: %d %s", resp.StatusCode, data)
	}
	return post.ID, took
}

// A post published in WordPress reaches the sidecar from the outbox, signed,
// and the sidecar delivers it to a target.
func TestWP_Outbox_PostPublishedReachesTarget(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))

	id, _ := publishPost(t, site, "Hello from WordPress")
	ref := fmt.Sprintf("post:%d", id)
	waitFor(t, 10*time.Second, "the outbox row to be sent", func() bool {
		rows := outboxRows(t, site, "object_ref = '"+ref+"'")
		return len(rows) == 1 && rows[0].State == "sent"
	})
	row := outboxRows(t, site, "object_ref = '"+ref+"'")[0]
	if row.Type != "post.published" || row.Attempts != 1 {
		t.Fatalf("outbox row: %+v", row)
	}
	waitFor(t, 10*time.Second, "the fake target to receive the event", func() bool { return len(tg.delivered()) > 0 })
	tg.checkAuthentic()
	var got received
	tg.mu.Lock()
	for _, g := range tg.got {
		if g.Envelope["idempotency_key"] == "site::"+row.Key {
			got = g
		}
	}
	tg.mu.Unlock()
	// data is the event's data; the rest of the event is in the envelope.
	data, _ := got.Envelope["data"].(map[string]any)
	subject, _ := got.Envelope["subject"].(map[string]any)
	if got.Type != "post.published" || fmt.Sprintf("%v:%v", subject["type"], subject["id"]) != ref || data["title"] != "Hello from WordPress" || data["object_ref"] != nil {
		t.Fatalf("target got %+v", got.Envelope)
	}
	ev := sc.waitEvent(got.EventID, "delivered", 5*time.Second)
	if ev.Source != "site" {
		t.Fatalf("event: %+v", ev)
	}

	// Updating the published post emits post.updated; saving a draft emits nothing.
	site.PHP(t, fmt.Sprintf(`wp_update_post( array( 'ID' => %d, 'post_title' => 'Hello again' ) );
$draft = wp_insert_post( array( 'post_title' => 'draft', 'post_status' => 'draft' ) );
wp_update_post( array( 'ID' => $draft, 'post_content' => 'still a draft' ) );`, id))
	rows := outboxRows(t, site, "object_ref = '"+ref+"'")
	if len(rows) != 2 || rows[1].Type != "post.updated" || rows[1].State != "sent" {
		t.Fatalf("after an update: %+v", rows)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_outbox o JOIN wp_posts p ON o.object_ref = CONCAT('post:', p.ID) WHERE p.post_title = 'draft'"); n != 0 {
		t.Fatalf("a draft emitted %d events", n)
	}
}

// With the sidecar down, emitted events wait in the outbox; once it is back,
// WP-Cron sends them all, and the sidecar delivers each once.
func TestWP_Outbox_SidecarDownThenBack(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))
	sc.stop()

	out := site.PHP(t, `$ids = array();
for ( $i = 1; $i <= 3; $i++ ) {
	$ids[] = wp_insert_post( array( 'post_title' => 'While down ' . $i, 'post_status' => 'publish' ) );
}
echo implode( ',', $ids );`)
	var refs []string
	for _, id := range strings.Split(strings.TrimSpace(out), ",") {
		refs = append(refs, "'post:"+id+"'")
	}
	where := "object_ref IN (" + strings.Join(refs, ",") + ")"
	rows := outboxRows(t, site, where)
	if len(rows) != 3 {
		t.Fatalf("outbox: %+v", rows)
	}
	// The first send at shutdown meets a network error, which does not count
	// as an attempt, and the others wait for cron rather than knock on a
	// closed door.
	for i, r := range rows {
		if r.State != "pending" || i == 0 && (r.Attempts != 0 || !strings.Contains(r.LastError, "network")) {
			t.Fatalf("while down, want pending rows, the first with a network error: %+v", rows)
		}
	}

	// A cron run while it is still down sends nothing and loses nothing.
	site.Query(t, "UPDATE wp_wprelay_outbox SET next_at = UTC_TIMESTAMP() - INTERVAL 1 SECOND WHERE "+where)
	site.DueCron(t, "wprelay_outbox_flush")
	site.RunCron(t)
	if rows := outboxRows(t, site, where+" AND state = 'pending'"); len(rows) != 3 {
		t.Fatalf("after a cron run with the sidecar down: %+v", outboxRows(t, site, where))
	}

	sc.restartSame()
	site.Query(t, "UPDATE wp_wprelay_outbox SET next_at = UTC_TIMESTAMP() - INTERVAL 1 SECOND WHERE "+where)
	site.DueCron(t, "wprelay_outbox_flush")
	site.RunCron(t)
	rows = outboxRows(t, site, where)
	for _, r := range rows {
		if r.State != "sent" {
			t.Fatalf("after the sidecar is back: %+v", rows)
		}
	}
	keys := map[string]bool{}
	for _, r := range rows {
		keys["site::"+r.Key] = true
	}
	waitFor(t, 15*time.Second, "the target to receive the 3 events", func() bool {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		n := 0
		for _, g := range tg.got {
			if keys[g.Envelope["idempotency_key"].(string)] {
				n++
			}
		}
		return n == 3
	})
	tg.checkAuthentic()
	t.Logf("sidecar down: 3 posts → 3 pending rows; a cron run while down kept them; back: cron sent %d, the target received 3 (attempts %d, %d, %d)",
		len(rows), rows[0].Attempts, rows[1].Attempts, rows[2].Attempts)
}

// A 4xx answer (here: the sidecar refuses the site's token) fails the row
// with the reason instead of retrying it.
func TestWP_Outbox_4xxFailsWithReason(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))
	c := wpConstants(sc.public, sc.admin)
	c["WPRELAY_SITE_JWT_SECRET"] = "a-different-site-secret-that-is-long-enough"
	site.SetConstants(t, c)
	key := strings.TrimSpace(site.PHP(t, `echo wprelay_emit( 'test.rejected', 'test:1', array( 'x' => 1 ) );`))
	rows := outboxRows(t, site, "idempotency_key = '"+key+"'")
	if len(rows) != 1 || rows[0].State != "failed" || !strings.Contains(rows[0].LastError, "HTTP 401") || !strings.Contains(rows[0].LastError, "invalid_token") {
		t.Fatalf("row: %+v", rows)
	}
	if strings.Contains(site.DebugLog(), "a-different-site-secret") {
		t.Fatal("the secret is in debug.log")
	}
}

// Emitting costs the triggering request one outbox insert and no network
// round trip: the send happens after the response. The 200 rows emitted here
// are marked sent before the PHP process ends, so if wprelay_emit sent
// synchronously the sidecar would have stored them. The timings are logged
// as figures (speed targets are benchmarks, not timed tests: a loaded
// machine makes any threshold flaky).
func TestWP_Emit_NoRoundTrip(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))

	out := site.PHP(t, `$t = array();
for ( $i = 0; $i < 200; $i++ ) {
	$s = hrtime( true );
	wprelay_emit( 'test.overhead', 'test:' . $i, array( 'i' => $i, 'title' => str_repeat( 'x', 200 ) ) );
	$t[] = ( hrtime( true ) - $s ) / 1e6;
}
sort( $t );
global $wpdb;
$rows = (int) $wpdb->get_var( "SELECT COUNT(*) FROM {$wpdb->prefix}wprelay_outbox WHERE event_type = 'test.overhead'" );
echo wp_json_encode( array( 'p50' => $t[100], 'p95' => $t[190], 'max' => $t[199], 'rows' => $rows ) );
$wpdb->query( "UPDATE {$wpdb->prefix}wprelay_outbox SET state = 'sent' WHERE event_type = 'test.overhead'" );`)
	var emit struct {
		P50, P95, Max float64
		Rows          int
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &emit); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if emit.Rows != 200 {
		t.Fatalf("outbox rows for the 200 emits: %d", emit.Rows)
	}
	var list struct {
		Events []json.RawMessage `json:"events"`
	}
	if code := sc.adminDo("GET", "/admin/v1/events?type=test.overhead&limit=500", "", &list); code != 200 {
		t.Fatalf("events list: %d", code)
	}
	if len(list.Events) != 0 {
		t.Fatalf("wprelay_emit sent %d events during the calls; it must only write the outbox row", len(list.Events))
	}

	median := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	var on, off []time.Duration
	for i := 0; i < 5; i++ {
		_, d := publishPost(t, site, fmt.Sprintf("Timed post %d", i))
		on = append(on, d)
	}
	site.PHP(t, `update_option( 'wpstack_emit_off', '1' );`)
	for i := 0; i < 5; i++ {
		_, d := publishPost(t, site, fmt.Sprintf("Untimed post %d", i))
		off = append(off, d)
	}
	site.PHP(t, `delete_option( 'wpstack_emit_off' );`)
	t.Logf("emit overhead (figures, not asserted): wprelay_emit + outbox insert p50 %.2f ms, p95 %.2f ms, max %.2f ms (200 calls); "+
		"REST publish median %s with emitting (php -S has no fastcgi_finish_request, so this includes the send to the sidecar at shutdown) vs %s without",
		emit.P50, emit.P95, emit.Max, median(on).Round(100*time.Microsecond), median(off).Round(100*time.Microsecond))
}

// http_request_host_is_external and http_allowed_safe_ports let
// wp_safe_remote_*() reach exactly the sidecar's host and port.
func TestWP_HTTPAllowance_OnlySidecar(t *testing.T) {
	site := sharedSite(t)
	var hits atomic.Int32
	serve := func(addr string) string {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Write([]byte("ok"))
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	sidecar := serve(freeHostAddr(t, sidecarHost))
	port := sidecar[strings.LastIndexByte(sidecar, ':')+1:]
	otherPort := serve(sidecarHost + ":0")
	otherHost := serve("127.0.0.3:" + port)
	siteHost := serve("127.0.0.1:" + port)
	site.SetConstants(t, wpConstants("http://"+sidecar, "http://127.0.0.1:9"))

	probe := func(url string, filters bool) string {
		code := ""
		if !filters {
			code = `remove_all_filters( 'http_request_host_is_external' ); remove_all_filters( 'http_allowed_safe_ports' );`
		}
		out := site.PHP(t, code+fmt.Sprintf(`$r = wp_safe_remote_get( %q, array( 'timeout' => 3 ) );
echo is_wp_error( $r ) ? 'refused: ' . $r->get_error_message() : 'HTTP ' . wp_remote_retrieve_response_code( $r );`, url))
		return strings.TrimSpace(out)
	}
	cases := []struct {
		url     string
		filters bool
		want    string
	}{
		{"http://" + sidecar + "/healthz", true, "HTTP 200"},
		{"http://" + sidecar + "/healthz", false, "refused"},
		{"http://" + otherPort + "/", true, "refused"},
		{"http://" + otherHost + "/", true, "refused"},
		{"http://" + siteHost + "/", true, "refused"},
		{"https://" + sidecar + "/", true, "refused"},
	}
	for _, c := range cases {
		before := hits.Load()
		got := probe(c.url, c.filters)
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s (plugin filters %v): %q, want %s", c.url, c.filters, got, c.want)
		}
		if c.want == "refused" && hits.Load() != before {
			t.Errorf("%s: refused, yet the server got a request", c.url)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("servers got %d requests, want 1 (the sidecar's)", hits.Load())
	}
	// wp_http_validate_url agrees.
	out := site.PHP(t, fmt.Sprintf(`foreach ( array( %q, %q, %q ) as $u ) { echo false === wp_http_validate_url( $u ) ? 'no ' : 'yes '; }`,
		"http://"+sidecar+"/hooks/site", "http://"+otherPort+"/", "http://"+otherHost+"/"))
	if strings.TrimSpace(out) != "yes no no" {
		t.Errorf("wp_http_validate_url: %q, want yes no no", out)
	}
}
