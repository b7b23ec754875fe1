//go:build integration

package main

// Exactly-once database effects of wprelay_event handlers (issue 20), in a
// real WordPress: handlers that write a row and then throw, exit, hit a
// fatal error or are killed on their first attempts; after WP-Cron (or the
// Action Scheduler stand-in) runs, each event's row exists once and its
// receipt is done.

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// exactlyHandlers is the test's mu-plugin: a wprelay_event handler for
// types "exactly.*" that inserts a row (event id, attempt) into the table
// the event names, registers an after-commit callback, and then fails as
// the event's data says on its first `failures` attempts. Options set the
// retry delays and the lease.
const exactlyHandlers = `<?php
add_filter( 'wprelay_dispatch_retry_delays', function ( $d ) {
	$o = get_option( 'exactly_delays', '' );
	return '' === $o ? $d : array_map( 'intval', explode( ',', $o ) );
} );
add_filter( 'wprelay_dispatch_lease', function ( $l ) {
	$o = get_option( 'exactly_lease', '' );
	return '' === $o ? $l : (int) $o;
} );
add_action( 'wprelay_event', function ( $event, $meta ) {
	if ( 0 !== strpos( (string) $event['type'], 'exactly.' ) ) {
		return;
	}
	global $wpdb;
	$d = $event['data'];
	$wpdb->insert( $wpdb->prefix . ( $d['table'] ?? 'exactly_rows' ), array( 'event_id' => $event['id'], 'attempt' => $meta['attempt'] ) );
	if ( ! empty( $d['count'] ) ) {
		update_option( 'exactly_counter', (int) get_option( 'exactly_counter', 0 ) + 1 );
	}
	wprelay_after_commit( function () use ( $event, $meta ) {
		file_put_contents( WP_CONTENT_DIR . '/exactly-after.log', $event['id'] . ' ' . $meta['attempt'] . "\n", FILE_APPEND );
	} );
	if ( ! empty( $d['sleep'] ) ) {
		file_put_contents( WP_CONTENT_DIR . '/exactly-spans.log', $event['id'] . ' start ' . getmypid() . "\n", FILE_APPEND );
		sleep( (int) $d['sleep'] );
	}
	if ( $meta['attempt'] > (int) ( $d['failures'] ?? 0 ) || get_option( 'exactly_healed' ) ) {
		return;
	}
	switch ( $d['fail'] ?? '' ) {
		case 'throw':
			throw new RuntimeException( 'planned failure' );
		case 'exit':
			exit( 0 );
		case 'fatal':
			ini_set( 'memory_limit', '64M' );
			$GLOBALS['exactly_waste'] = str_repeat( 'x', 256 * 1024 * 1024 );
			break;
		case 'kill':
			posix_kill( getmypid(), 9 );
			sleep( 5 );
			break;
		case 'commit':
			$wpdb->query( 'COMMIT' );
			throw new RuntimeException( 'planned failure after COMMIT' );
	}
}, 10, 2 );
`

// exactlySite returns the shared site with the test handlers, an InnoDB
// table exactly_rows and a MyISAM table exactly_myisam (both emptied),
// retry delays of 0 s and a 1 s lease.
func exactlySite(t *testing.T) *wpstack.Site {
	t.Helper()
	site := sharedSite(t)
	site.SetConstants(t, wpConstants("http://"+sidecarHost+":9", "http://127.0.0.1:9"))
	site.MuPlugin(t, "exactly-handlers.php", exactlyHandlers)
	site.Query(t, `CREATE TABLE IF NOT EXISTS wp_exactly_rows (id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, event_id varchar(64) NOT NULL, attempt int NOT NULL) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS wp_exactly_myisam (id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, event_id varchar(64) NOT NULL, attempt int NOT NULL) ENGINE=MyISAM;
TRUNCATE wp_exactly_rows; TRUNCATE wp_exactly_myisam;`)
	site.PHP(t, `update_option( 'exactly_delays', '0,0,0,0,0' ); update_option( 'exactly_lease', '1' );`)
	_ = os.Remove(filepath.Join(site.Root, "wp-content", "exactly-after.log"))
	_ = os.Remove(filepath.Join(site.Root, "wp-content", "exactly-spans.log"))
	t.Cleanup(func() {
		site.PHP(t, `delete_option( 'exactly_delays' ); delete_option( 'exactly_lease' ); delete_option( 'exactly_healed' ); delete_option( 'exactly_counter' );`)
		// Nothing of this test stays due, or failed, for the next one.
		site.Query(t, "DELETE FROM wp_wprelay_receipts WHERE event_type IN ('exactly.test', 'invoice.paid') AND status IN ('stored', 'dispatching', 'failed')")
	})
	return site
}

// exactlyEvent delivers an "exactly.test" event about subject (none when
// ""), signed as the sidecar signs it, and returns its id.
func exactlyEvent(t *testing.T, site *wpstack.Site, subject string, data map[string]any) string {
	t.Helper()
	id := uuid.NewString()
	d, _ := json.Marshal(data)
	now := time.Now().UTC().Format(time.RFC3339)
	body, _ := json.Marshal(map[string]any{
		"id": id, "source": "crm", "tenant": "", "type": "exactly.test", "idempotency_key": "crm::" + id,
		"occurred_at": now, "received_at": now, "actor": map[string]string{"id": "", "email": ""},
		"subject": map[string]string{"id": subject, "type": "thing"},
		"action":  map[string]string{"type": "", "reason": ""}, "data": json.RawMessage(d),
	})
	if r := (wpCall{Route: "events", Body: body}).send(t, site); r.Status != 202 {
		t.Fatalf("deliver %s: %d %s", id, r.Status, r.Raw)
	}
	return id
}

// cronOnce makes the dispatch job, the minutely outbox job and the Action
// Scheduler queue runner due and runs WP-Cron once, in one PHP process;
// WP-Cron's own lock, which a run whose process died leaves for
// WP_CRON_LOCK_TIMEOUT (60 s), is cleared first, as if that time had
// passed.
func cronOnce(t *testing.T, site *wpstack.Site) {
	t.Helper()
	_, _ = site.PHPErr(`
delete_transient( 'doing_cron' );
$crons = _get_cron_array();
$out   = array();
foreach ( $crons as $ts => $hooks ) {
	foreach ( $hooks as $name => $events ) {
		$at = in_array( $name, array( 'wprelay_dispatch', 'wprelay_outbox_flush', 'action_scheduler_run_queue' ), true ) ? time() - 1 : $ts;
		foreach ( $events as $key => $event ) {
			$out[ $at ][ $name ][ $key ] = $event;
		}
	}
}
ksort( $out );
_set_cron_array( $out );
require ABSPATH . 'wp-cron.php';`) // A handler may end the process on purpose.
}

// settle runs WP-Cron until no receipt of ids is stored or dispatching.
func settle(t *testing.T, site *wpstack.Site, ids []string, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	runs := 0
	for {
		open := site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_receipts WHERE status IN ('stored', 'dispatching') AND event_id IN ("+sqlList(ids)+")")
		if open == 0 {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d receipts still open after %d cron runs: %v", open, runs,
				site.Query(t, "SELECT event_id, status, attempts, next_at, lease_until, last_error FROM wp_wprelay_receipts WHERE status IN ('stored', 'dispatching') AND event_id IN ("+sqlList(ids)+") LIMIT 5"))
		}
		cronOnce(t, site)
		runs++
		if site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_receipts WHERE status = 'dispatching' AND event_id IN ("+sqlList(ids)+")") > 0 {
			time.Sleep(1100 * time.Millisecond) // a killed runner's lease
		}
	}
}

func sqlList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + strings.ReplaceAll(id, "'", "") + "'"
	}
	return strings.Join(q, ",")
}

// assertOnce checks that every event of ids has exactly one row in table,
// written by its last attempt, a done receipt, and ran its after-commit
// callback once.
func assertOnce(t *testing.T, site *wpstack.Site, table string, ids []string) {
	t.Helper()
	rows := map[string]int{}
	for _, r := range site.Query(t, "SELECT event_id, COUNT(*) FROM "+table+" WHERE event_id IN ("+sqlList(ids)+") GROUP BY event_id") {
		var n int
		fmt.Sscan(r[1], &n)
		rows[r[0]] = n
	}
	status := map[string]string{}
	for _, r := range site.Query(t, "SELECT event_id, status, attempts FROM wp_wprelay_receipts WHERE event_id IN ("+sqlList(ids)+")") {
		status[r[0]] = r[1] + " after " + r[2] + " attempts"
	}
	after := map[string]int{}
	log, _ := os.ReadFile(filepath.Join(site.Root, "wp-content", "exactly-after.log"))
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			after[f[0]]++
		}
	}
	bad := 0
	for _, id := range ids {
		if rows[id] != 1 || !strings.HasPrefix(status[id], "done ") || after[id] != 1 {
			if bad++; bad <= 5 {
				t.Errorf("event %s: %d rows, receipt %q, after-commit ran %d times; want 1 row, done, 1", id, rows[id], status[id], after[id])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d events not applied exactly once", bad, len(ids))
	}
}

func TestWP_Exactly_FailedAttemptsAreRolledBackAndRetried(t *testing.T) {
	site := exactlySite(t)
	var ids []string
	for _, mode := range []string{"none", "throw", "exit", "fatal", "kill"} {
		for failures := 1; failures <= 2; failures++ {
			ids = append(ids, exactlyEvent(t, site, "", map[string]any{"fail": mode, "failures": failures}))
		}
	}
	runs := settle(t, site, ids, 90*time.Second)
	assertOnce(t, site, "wp_exactly_rows", ids)
	attempts := site.Query(t, "SELECT JSON_VALUE(event, '$.data.fail'), JSON_VALUE(event, '$.data.failures'), attempts FROM wp_wprelay_receipts WHERE event_id IN ("+sqlList(ids)+") ORDER BY id")
	for _, a := range attempts {
		want := "1"
		if a[0] != "none" {
			want = fmt.Sprint(int(a[1][0]-'0') + 1)
		}
		if a[2] != want {
			t.Errorf("%s × %s: %s attempts, want %s", a[0], a[1], a[2], want)
		}
	}
	// The killed runner's receipt was taken back after its lease, and says so.
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_receipts WHERE event_id IN ("+sqlList(ids)+") AND last_error LIKE '%did not finish%'"); n != 2 {
		t.Errorf("%d receipts record a killed attempt, want 2", n)
	}
	t.Logf("10 events (none, throw, exit, fatal, kill; failing 1 or 2 times): applied once each after %d cron runs", runs)
	log := site.DebugLog()
	for _, want := range []string{"planned failure", "Allowed memory size", "the PHP process ended (exit or die) inside a handler", "its writes were rolled back"} {
		if !strings.Contains(log, want) {
			t.Errorf("debug.log lacks %q", want)
		}
	}
}

// cronJobs counts the wprelay_dispatch events in WP-Cron's table.
func cronJobs(t *testing.T, site *wpstack.Site) int {
	t.Helper()
	var n int
	fmt.Sscan(site.PHP(t, `$n = 0; foreach ( _get_cron_array() as $hooks ) { $n += count( $hooks['wprelay_dispatch'] ?? array() ); } echo $n;`), &n)
	return n
}

// A burst of 200 events whose handlers fail at random (throw, exit, fatal
// error, kill; up to twice) leaves exactly 200 rows. The burst schedules
// one dispatch job, not one WP-Cron event per event (issue 17).
func TestWP_Exactly_BurstWithRandomFailures(t *testing.T) {
	site := exactlySite(t)
	rng := rand.New(rand.NewSource(20))
	modes := []string{"none", "none", "none", "none", "none", "throw", "throw", "throw", "exit", "fatal", "kill"}
	ids := make([]string, 200)
	count := map[string]int{}
	for i := range ids {
		mode := modes[rng.Intn(len(modes))]
		count[mode]++
		failures := 1 + rng.Intn(2) // a throw fails once or twice, a dying process once
		if mode != "throw" {
			failures = 1
		}
		ids[i] = exactlyEvent(t, site, "", map[string]any{"fail": mode, "failures": failures})
	}
	if n := cronJobs(t, site); n != 1 {
		t.Errorf("200 deliveries scheduled %d wprelay_dispatch WP-Cron events, want 1", n)
	}
	start := time.Now()
	runs := settle(t, site, ids, 5*time.Minute)
	assertOnce(t, site, "wp_exactly_rows", ids)
	var attempts int
	fmt.Sscan(site.Query(t, "SELECT SUM(attempts) FROM wp_wprelay_receipts WHERE event_id IN ("+sqlList(ids)+")")[0][0], &attempts)
	modeList := make([]string, 0, len(count))
	for m, n := range count {
		modeList = append(modeList, fmt.Sprintf("%s %d", m, n))
	}
	sort.Strings(modeList)
	t.Logf("burst: 200 events (%s), %d attempts, %d cron runs in %s: 200 rows, 200 done receipts, 200 after-commit callbacks",
		strings.Join(modeList, ", "), attempts, runs, time.Since(start).Round(time.Second))
}

// A later event about the same subject waits while an earlier one is
// being retried; another subject's event does not.
func TestWP_Exactly_OrderPerSubject(t *testing.T) {
	site := exactlySite(t)
	site.PHP(t, `update_option( 'exactly_delays', '2,2,2,2,2' );`)
	subject := "s-" + uuid.NewString()[:8]
	first := exactlyEvent(t, site, subject, map[string]any{"fail": "throw", "failures": 1})
	second := exactlyEvent(t, site, subject, map[string]any{})
	other := exactlyEvent(t, site, "o-"+uuid.NewString()[:8], map[string]any{})
	cronOnce(t, site)
	state := func(id string) string {
		r := site.Query(t, "SELECT status, attempts FROM wp_wprelay_receipts WHERE event_id = '"+id+"'")
		return r[0][0] + "/" + r[0][1]
	}
	if a, b, c := state(first), state(second), state(other); a != "stored/1" || b != "stored/0" || c != "done/1" {
		t.Fatalf("after one run: first %s (want stored/1: retrying), second %s (want stored/0: waiting), other subject %s (want done/1)", a, b, c)
	}
	settle(t, site, []string{first, second, other}, time.Minute)
	assertOnce(t, site, "wp_exactly_rows", []string{first, second, other})
	order := site.Query(t, "SELECT event_id FROM wp_exactly_rows WHERE event_id IN ('"+first+"','"+second+"') ORDER BY id")
	if len(order) != 2 || order[0][0] != first || order[1][0] != second {
		t.Fatalf("rows in order %v, want the first event's before the second's", order)
	}
}

// A handler that keeps failing: the attempt and its error are recorded,
// retries back off, the receipt ends failed, and a replay applies it once.
func TestWP_Exactly_BackoffThenFailedThenReplay(t *testing.T) {
	site := exactlySite(t)
	site.PHP(t, `delete_option( 'exactly_delays' );`) // the default delays
	id := exactlyEvent(t, site, "", map[string]any{"fail": "throw", "failures": 99})
	cronOnce(t, site)
	r := site.Query(t, "SELECT status, attempts, last_error, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), next_at) FROM wp_wprelay_receipts WHERE event_id = '"+id+"'")[0]
	var wait int
	fmt.Sscan(r[3], &wait)
	if r[0] != "stored" || r[1] != "1" || !strings.Contains(r[2], "attempt 1: RuntimeException: planned failure") || wait < 5 || wait > 10 {
		t.Fatalf("after a throw: %v; want stored, 1 attempt, the error, due again in about 10 s", r)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_exactly_rows WHERE event_id = '"+id+"'"); n != 0 {
		t.Fatalf("%d rows after a rolled-back attempt", n)
	}
	site.PHP(t, `update_option( 'exactly_delays', '0,0' );`)
	site.Query(t, "UPDATE wp_wprelay_receipts SET next_at = UTC_TIMESTAMP() WHERE event_id = '"+id+"'") // as if 10 s had passed
	settle(t, site, []string{id}, time.Minute)
	r = site.Query(t, "SELECT status, attempts, id FROM wp_wprelay_receipts WHERE event_id = '"+id+"'")[0]
	if r[0] != "failed" || r[1] != "3" {
		t.Fatalf("after the last delay: %v, want failed after 3 attempts", r)
	}
	// Visible: the plugin page (its Received tab, and a notice on every
	// tab), Site Health, WP-CLI.
	page := adminPage(t, site, "received")
	if !strings.Contains(page, id) || !strings.Contains(page, "planned failure") || !strings.Contains(page, `id="wprelay-failed-received_failed"`) {
		t.Fatalf("the plugin page does not show the failed event %s:\n%s", id, page)
	}
	tests, _ := siteHealth(t, site)
	if h := tests["wprelay_received_failed"]; h["status"] != "critical" || !strings.Contains(fmt.Sprint(h["description"]), "wp wprelay events replay --failed") {
		t.Fatalf("Site Health: %v, want critical, naming the replay command", h)
	}
	var listed []map[string]any
	if code := wpJSON(t, site, &listed, "wprelay", "events", "list", "--status=failed"); code != 0 || !containsEvent(listed, id, "3") {
		t.Fatalf("wp wprelay events list --status=failed: exit %d, %v; want the event with 3 attempts", code, listed)
	}
	// Replayed (after the handler was fixed) from WP-CLI: applied once.
	site.PHP(t, `update_option( 'exactly_healed', '1' );`)
	if r := site.WP(t, "wprelay", "events", "replay", id); r.Code != 0 || !strings.Contains(r.Stdout, "1 failed receipts are due again") {
		t.Fatalf("wp wprelay events replay %s: exit %d\n%s%s", id, r.Code, r.Stdout, r.Stderr)
	}
	settle(t, site, []string{id}, time.Minute)
	assertOnce(t, site, "wp_exactly_rows", []string{id})
}

// What cannot be exactly-once falls back to at-least-once, with a log
// line: a write to a MyISAM table, a handler that commits by itself, a
// dispatch inside a transaction that was already open.
func TestWP_Exactly_FallbacksAreLogged(t *testing.T) {
	site := exactlySite(t)
	myisam := exactlyEvent(t, site, "", map[string]any{"fail": "throw", "failures": 1, "table": "exactly_myisam"})
	commit := exactlyEvent(t, site, "", map[string]any{"fail": "commit", "failures": 1})
	settle(t, site, []string{myisam, commit}, time.Minute)
	rows := func(table, id string) int {
		return site.QueryInt(t, "SELECT COUNT(*) FROM "+table+" WHERE event_id = '"+id+"'")
	}
	if n := rows("wp_exactly_myisam", myisam); n != 2 {
		t.Errorf("MyISAM: %d rows, want 2 (the failed attempt's write is not rolled back)", n)
	}
	if n := rows("wp_exactly_rows", commit); n != 2 {
		t.Errorf("handler COMMIT: %d rows, want 2 (it committed its first attempt's write)", n)
	}
	site.Query(t, "DELETE FROM wp_wprelay_receipts WHERE event_type = 'exactly.test' AND status IN ('stored', 'dispatching')")
	nested := exactlyEvent(t, site, "", map[string]any{})
	site.PHP(t, `global $wpdb; $wpdb->query( 'START TRANSACTION' );
$id = (int) $wpdb->get_var( "SELECT id FROM {$wpdb->prefix}wprelay_receipts WHERE event_id = '`+nested+`'" );
echo $GLOBALS['wprelay']->dispatcher()->dispatch( $id ); $wpdb->query( 'COMMIT' );`)
	assertOnce(t, site, "wp_exactly_rows", []string{nested})
	log := site.DebugLog()
	for _, want := range []string{
		"falls back to at-least-once: a handler wrote to wp_exactly_myisam, a MyISAM table",
		"falls back to at-least-once: a handler ran COMMIT",
		"falls back to at-least-once: a transaction was already open",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("debug.log lacks %q", want)
		}
	}
}

// asStandIn is a minimal stand-in for Action Scheduler, which is not
// obtainable on this machine (no Debian package, not on npm or the Go
// proxy): the functions the plugin calls (as_enqueue_async_action,
// as_schedule_single_action, as_next_scheduled_action,
// as_unschedule_all_actions), the action_scheduler_init action, a table of
// actions, and a queue runner on WP-Cron's action_scheduler_run_queue
// hook, as Action Scheduler runs its queue. Like Action Scheduler, it
// marks an action whose runner died failed after a timeout (here 2 s).
const asStandIn = `<?php
function asstub_table() { global $wpdb; return $wpdb->prefix . 'asstub_actions'; }
function as_schedule_single_action( $ts, $hook, $args = array(), $group = '', $unique = false, $priority = 10 ) {
	global $wpdb;
	$wpdb->insert( asstub_table(), array( 'hook' => $hook, 'args' => wp_json_encode( $args ), 'grp' => $group, 'scheduled' => (int) $ts, 'status' => 'pending', 'claimed' => 0 ) );
	return (int) $wpdb->insert_id;
}
function as_enqueue_async_action( $hook, $args = array(), $group = '', $unique = false, $priority = 10 ) {
	return as_schedule_single_action( time(), $hook, $args, $group );
}
function as_next_scheduled_action( $hook, $args = null, $group = '' ) {
	global $wpdb;
	$t = asstub_table();
	if ( $wpdb->get_var( $wpdb->prepare( "SELECT id FROM $t WHERE hook = %s AND status = 'in-progress'", $hook ) ) ) {
		return true;
	}
	$ts = $wpdb->get_var( $wpdb->prepare( "SELECT MIN(scheduled) FROM $t WHERE hook = %s AND status = 'pending'", $hook ) );
	return null === $ts ? false : (int) $ts;
}
function as_unschedule_all_actions( $hook, $args = array(), $group = '' ) {
	global $wpdb;
	$wpdb->delete( asstub_table(), array( 'hook' => $hook, 'status' => 'pending' ) );
}
add_action( 'init', function () {
	do_action( 'action_scheduler_init' );
	if ( ! wp_next_scheduled( 'action_scheduler_run_queue' ) ) {
		wp_schedule_event( time(), 'hourly', 'action_scheduler_run_queue' );
	}
}, 1 );
add_action( 'action_scheduler_run_queue', function () {
	global $wpdb;
	$t = asstub_table();
	$wpdb->query( $wpdb->prepare( "UPDATE $t SET status = 'failed' WHERE status = 'in-progress' AND claimed < %d", time() - 2 ) );
	$due = $wpdb->get_results( $wpdb->prepare( "SELECT * FROM $t WHERE status = 'pending' AND scheduled <= %d ORDER BY id LIMIT 25", time() ), ARRAY_A );
	foreach ( $due as $a ) {
		if ( 1 !== (int) $wpdb->query( $wpdb->prepare( "UPDATE $t SET status = 'in-progress', claimed = %d WHERE id = %d AND status = 'pending'", time(), $a['id'] ) ) ) {
			continue;
		}
		do_action_ref_array( $a['hook'], json_decode( $a['args'], true ) );
		$wpdb->update( $t, array( 'status' => 'complete' ), array( 'id' => $a['id'] ) );
	}
} );
`

// With Action Scheduler active, dispatch jobs go through it, not WP-Cron
// single events, and the guarantee is the same.
func TestWP_Exactly_ActionScheduler(t *testing.T) {
	site := exactlySite(t)
	site.Query(t, `CREATE TABLE IF NOT EXISTS wp_asstub_actions (id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, hook varchar(191) NOT NULL, args text NOT NULL, grp varchar(191) NOT NULL, scheduled bigint NOT NULL, status varchar(20) NOT NULL, claimed bigint NOT NULL) ENGINE=InnoDB; TRUNCATE wp_asstub_actions;`)
	site.MuPlugin(t, "as-standin.php", asStandIn)
	t.Cleanup(func() { site.PHP(t, `wp_clear_scheduled_hook( 'action_scheduler_run_queue' );`) })
	site.PHP(t, `wp_clear_scheduled_hook( 'wprelay_dispatch' );`)
	var ids []string
	for _, mode := range []string{"none", "throw", "exit", "fatal", "kill"} {
		ids = append(ids, exactlyEvent(t, site, "", map[string]any{"fail": mode, "failures": 1}))
	}
	if n := cronJobs(t, site); n != 0 {
		t.Fatalf("%d wprelay_dispatch WP-Cron events with Action Scheduler active, want 0", n)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_asstub_actions WHERE hook = 'wprelay_dispatch' AND grp = 'wprelay' AND status = 'pending'"); n != 1 {
		t.Fatalf("5 deliveries enqueued %d pending Action Scheduler actions, want 1", n)
	}
	runs := settle(t, site, ids, 2*time.Minute)
	assertOnce(t, site, "wp_exactly_rows", ids)
	if n := cronJobs(t, site); n != 0 {
		t.Errorf("%d wprelay_dispatch WP-Cron events after the retries, want 0 (all through Action Scheduler)", n)
	}
	ran := site.QueryInt(t, "SELECT COUNT(*) FROM wp_asstub_actions WHERE hook = 'wprelay_dispatch' AND status IN ('complete', 'failed')")
	t.Logf("Action Scheduler stand-in: 5 events applied once each after %d queue runs, %d wprelay_dispatch actions", runs, ran)
}

// An upgrade from a schema without transactional dispatch marks the
// receipts it left "dispatching" failed (they may be half applied), and
// drops the per-IP rate limit rows of earlier versions.
func TestWP_Exactly_UpgradeShowsInterruptedDispatches(t *testing.T) {
	site := exactlySite(t)
	id := uuid.NewString()
	site.Query(t, "INSERT INTO wp_wprelay_receipts (idempotency_key, route, event_id, event_type, event, received_at, status) VALUES ('"+id+":wordpress', 'events', '"+id+"', 'exactly.test', '{}', UTC_TIMESTAMP(), 'dispatching')")
	site.Query(t, "INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('wprelay_rate_0123456789abcdef_1', '5', 'no')")
	site.Query(t, "UPDATE wp_options SET option_value = '2' WHERE option_name = 'wprelay_db_version'")
	site.PHP(t, `wp_cache_flush();`)
	r := site.Query(t, "SELECT status, last_error FROM wp_wprelay_receipts WHERE event_id = '"+id+"'")[0]
	if r[0] != "failed" || !strings.Contains(r[1], "interrupted before the upgrade") {
		t.Fatalf("a dispatching receipt after the upgrade: %v, want failed with the reason", r)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_options WHERE option_name LIKE 'wprelay\\_rate\\_%'"); n != 0 {
		t.Fatalf("%d per-IP rate limit rows left after the upgrade", n)
	}
}

// WordPress's object cache holds what a rolled-back attempt wrote: it is
// flushed, so that the next handler in the same process reads the
// database. Two events in one batch each add one to an option; the first
// throws once. The option ends at 2.
func TestWP_Exactly_RollbackLeavesNoStaleCache(t *testing.T) {
	site := exactlySite(t)
	site.PHP(t, `update_option( 'exactly_delays', '1,1,1,1,1' ); update_option( 'exactly_counter', 0 );`)
	first := exactlyEvent(t, site, "", map[string]any{"fail": "throw", "failures": 1, "count": true})
	second := exactlyEvent(t, site, "", map[string]any{"count": true})
	settle(t, site, []string{first, second}, time.Minute)
	assertOnce(t, site, "wp_exactly_rows", []string{first, second})
	if v := site.Query(t, "SELECT option_value FROM wp_options WHERE option_name = 'exactly_counter'")[0][0]; v != "2" {
		t.Fatalf("counter %s after two events that add one each, want 2", v)
	}
}

// exampleHandler returns the handler example of README.md (between the
// exactly-once-example markers) and checks that wpplugin/readme.txt shows
// the same code.
func exampleHandler(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	begin, end := strings.Index(s, "<!-- exactly-once-example:begin -->\n```php\n"), strings.Index(s, "```\n<!-- exactly-once-example:end -->")
	if begin < 0 || end < begin {
		t.Fatal("README.md has no ```php block between <!-- exactly-once-example:begin --> and <!-- exactly-once-example:end -->")
	}
	code := s[begin+len("<!-- exactly-once-example:begin -->\n```php\n") : end]
	txt, err := os.ReadFile("../../wpplugin/readme.txt")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	for _, line := range strings.Split(string(txt), "\n") {
		switch {
		case len(block) == 0 && strings.HasPrefix(line, "    add_action( 'wprelay_event_invoice.paid', function ( array $event, array $meta ) {"),
			len(block) > 0 && (strings.HasPrefix(line, "    ") || line == ""):
			block = append(block, strings.TrimPrefix(line, "    "))
		case len(block) > 0:
			goto done
		}
	}
done:
	norm := func(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "\t", "    ")) }
	if norm(strings.Join(block, "\n")) != norm(code) {
		t.Fatalf("readme.txt's handler example differs from README.md's:\n%s\n---\n%s", strings.Join(block, "\n"), code)
	}
	return code
}

// The handler example of README.md and readme.txt (docs that run): an
// invoice for a customer with no user yet is rolled back and retried, and
// applied once when the user exists; mail goes out once per invoice.
func TestWP_Exactly_ReadmeExample(t *testing.T) {
	site := exactlySite(t)
	site.MuPlugin(t, "readme-example.php", "<?php\n"+exampleHandler(t))
	tag := uuid.NewString()[:8]
	alice, bob := "alice-"+tag+"@example.test", "bob-"+tag+"@example.test"
	site.PHP(t, `wp_insert_user( array( 'user_login' => 'alice-`+tag+`', 'user_email' => '`+alice+`', 'user_pass' => wp_generate_password() ) );`)
	mailLog := filepath.Join(site.Root, "wp-content", "mail.log")
	_ = os.Remove(mailLog)
	invoice := func(email, id string) string {
		evt := uuid.NewString()
		body := envelope(evt, "invoice.paid", map[string]any{"object": map[string]any{"id": id, "number": "N-" + id, "customer_email": email}})
		if r := (wpCall{Route: "events", Body: body}).send(t, site); r.Status != 202 {
			t.Fatalf("deliver: %d %s", r.Status, r.Raw)
		}
		return evt
	}
	a1, b1, a2 := invoice(alice, "in_a1"), invoice(bob, "in_b1"), invoice(alice, "in_a2")
	cronOnce(t, site)
	st := func(id string) string {
		return site.Query(t, "SELECT CONCAT(status, '/', attempts) FROM wp_wprelay_receipts WHERE event_id = '"+id+"'")[0][0]
	}
	if x, y, z := st(a1), st(b1), st(a2); x != "done/1" || y != "stored/1" || z != "done/1" {
		t.Fatalf("after one run: %s %s %s, want done/1, stored/1 (no user yet: retried), done/1", x, y, z)
	}
	site.PHP(t, `wp_insert_user( array( 'user_login' => 'bob-`+tag+`', 'user_email' => '`+bob+`', 'user_pass' => wp_generate_password() ) );`)
	site.Query(t, "UPDATE wp_wprelay_receipts SET next_at = UTC_TIMESTAMP() WHERE event_id = '"+b1+"'") // as if 10 s had passed
	settle(t, site, []string{b1}, time.Minute)
	meta := func(email, key string) []string {
		var out []string
		for _, r := range site.Query(t, "SELECT m.meta_value FROM wp_usermeta m JOIN wp_users u ON u.ID = m.user_id WHERE u.user_email = '"+email+"' AND m.meta_key = '"+key+"' ORDER BY m.umeta_id") {
			out = append(out, r[0])
		}
		return out
	}
	if p, inv := meta(alice, "invoices_paid"), meta(alice, "paid_invoice"); strings.Join(p, ",") != "2" || strings.Join(inv, ",") != "in_a1,in_a2" {
		t.Errorf("alice: invoices_paid %v, paid_invoice %v; want [2] and [in_a1 in_a2]", p, inv)
	}
	if p, inv := meta(bob, "invoices_paid"), meta(bob, "paid_invoice"); strings.Join(p, ",") != "1" || strings.Join(inv, ",") != "in_b1" {
		t.Errorf("bob: invoices_paid %v, paid_invoice %v; want [1] and [in_b1]", p, inv)
	}
	mails, _ := os.ReadFile(mailLog)
	if a, b := strings.Count(string(mails), alice), strings.Count(string(mails), bob); a != 2 || b != 1 {
		t.Errorf("mails: %d to alice, %d to bob; want 2 and 1\n%s", a, b, mails)
	}
}

// containsEvent tells whether WP-CLI's receipt rows list event id with
// that many attempts.
func containsEvent(rows []map[string]any, id, attempts string) bool {
	for _, r := range rows {
		if fmt.Sprint(r["event_id"]) == id && fmt.Sprint(r["attempts"]) == attempts {
			return true
		}
	}
	return false
}

// Two runners at once, with handlers that outlast the lease: the second
// runner sees the first one's receipts as due (lease expired) but waits on
// their row lock and finds them done; each handler runs once.
func TestWP_Exactly_TwoRunnersNeverRunOneEventTwice(t *testing.T) {
	site := exactlySite(t)
	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, exactlyEvent(t, site, "", map[string]any{"sleep": 2}))
	}
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			time.Sleep(time.Duration(r) * 1500 * time.Millisecond) // the second starts after the first's 1 s lease expired
			_, _ = site.PHPErr(`$GLOBALS['wprelay']->dispatcher()->run();`)
		}(r)
	}
	wg.Wait()
	settle(t, site, ids, time.Minute)
	assertOnce(t, site, "wp_exactly_rows", ids)
	spans, _ := os.ReadFile(filepath.Join(site.Root, "wp-content", "exactly-spans.log"))
	pids := map[string]bool{}
	for _, id := range ids {
		if n := strings.Count(string(spans), id+" start "); n != 1 {
			t.Errorf("event %s: its handler started %d times, want 1\n%s", id, n, spans)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(spans)), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			pids[f[2]] = true
		}
	}
	if n := site.QueryInt(t, "SELECT SUM(attempts) FROM wp_wprelay_receipts WHERE event_id IN ("+sqlList(ids)+")"); n != 3 {
		t.Errorf("%d attempts for 3 events, want 3 (the second runner never claimed a receipt the first held)", n)
	}
	t.Logf("two runners: 3 handlers of 2 s with a 1 s lease ran once each, in %d processes", len(pids))
}

// A handler whose process is killed on every attempt does not run
// forever: after the last attempt the receipt is failed, not run again.
func TestWP_Exactly_KilledEveryTimeEndsFailed(t *testing.T) {
	site := exactlySite(t)
	site.PHP(t, `update_option( 'exactly_delays', '0' );`) // two attempts
	id := exactlyEvent(t, site, "", map[string]any{"fail": "kill", "failures": 99})
	settle(t, site, []string{id}, time.Minute)
	r := site.Query(t, "SELECT status, attempts, last_error FROM wp_wprelay_receipts WHERE event_id = '"+id+"'")[0]
	if r[0] != "failed" || r[1] != "3" || !strings.Contains(r[2], "not run: the PHP process of every earlier attempt was killed") {
		t.Fatalf("killed on every attempt: %v, want failed after 2 attempts run (the 3rd not run)", r)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_exactly_rows WHERE event_id = '"+id+"'"); n != 0 {
		t.Fatalf("%d rows from killed attempts", n)
	}
}
