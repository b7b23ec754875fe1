//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// privacyTool runs every page of the plugin's personal-data exporter or
// eraser for an email, as Tools → Export/Erase Personal Data does, and
// returns the pages' answers.
func privacyTool(t *testing.T, site *wpstack.Site, kind, email string) []map[string]any {
	t.Helper()
	out := site.PHP(t, fmt.Sprintf(`
$tools = apply_filters( 'wp_privacy_personal_data_%[1]ss', array() );
$pages = array();
for ( $page = 1; $page <= 20; $page++ ) {
	$res     = call_user_func( $tools['wprelay']['callback'], %[2]q, $page );
	$pages[] = $res;
	if ( ! empty( $res['done'] ) ) {
		break;
	}
}
echo wp_json_encode( $pages );`, kind, email))
	var pages []map[string]any
	if err := json.Unmarshal([]byte(out), &pages); err != nil {
		t.Fatalf("%s: %v\n%s", kind, err, out)
	}
	return pages
}

// The personal-data exporter finds a person's outbox rows, receipts and
// results by email and by user id; the eraser deletes the rows and
// results and blanks the receipts' events (keeping them for dedupe);
// another person's data is untouched. The privacy-policy guide has the
// plugin's suggested text.
func TestWP_Privacy_ExportAndErase(t *testing.T) {
	site := sharedSite(t)
	site.SetConstants(t, wpConstants("http://"+sidecarHost+":9", "http://127.0.0.1:9"))
	tag := uuid.NewString()[:8]
	email, other := "jane."+tag+"@example.test", "john."+tag+"@example.test"

	// Jane registers (user.registered names her email), an event about her
	// arrives from a CRM, and a CRM answer about her is stored as a result.
	uid := strings.TrimSpace(site.PHP(t, fmt.Sprintf(`echo wp_insert_user( array( 'user_login' => 'jane%[1]s', 'user_email' => %[2]q, 'user_pass' => wp_generate_password() ) );`, tag, email)))
	site.PHP(t, fmt.Sprintf(`wp_insert_user( array( 'user_login' => 'john%[1]s', 'user_email' => %[2]q, 'user_pass' => wp_generate_password() ) );`, tag, other))
	evJane, evJohn := uuid.NewString(), uuid.NewString()
	for ev, who := range map[string]string{evJane: email, evJohn: other} {
		if r := (wpCall{Route: "events", Body: envelope(ev, "contact.updated", map[string]any{"email": who})}).send(t, site); r.Status != 202 {
			t.Fatalf("deliver: %d %s", r.Status, r.Raw)
		}
	}
	site.RunCron(t) // dispatch the receipts: done, erasable
	if r := (wpCall{Route: "results", Body: envelope(uuid.NewString(), "contact.scored.result", map[string]any{"title": "Score", "summary": "Lead score 87", "object_ref": "user:" + uid})}).send(t, site); r.Status != 200 {
		t.Fatalf("result: %d %s", r.Status, r.Raw)
	}
	// Her rows are sent or failed (the sidecar is not there): mark them sent.
	site.Query(t, "UPDATE wp_wprelay_outbox SET state = 'sent', sent_at = UTC_TIMESTAMP() WHERE object_ref = 'user:"+uid+"' OR payload LIKE '%"+other+"%'")

	groups := func(pages []map[string]any) map[string]int {
		n := map[string]int{}
		for _, p := range pages {
			for _, item := range p["data"].([]any) {
				n[item.(map[string]any)["group_id"].(string)]++
			}
		}
		return n
	}
	exp := privacyTool(t, site, "exporter", email)
	g := groups(exp)
	if g["wprelay-outbox"] < 1 || g["wprelay-receipts"] != 1 || g["wprelay-results"] != 1 || exp[len(exp)-1]["done"] != true {
		t.Fatalf("export of %s: groups %v, pages %v", email, g, exp)
	}
	raw, _ := json.Marshal(exp)
	if strings.Contains(string(raw), other) || !strings.Contains(string(raw), "Lead score 87") {
		t.Fatalf("export of %s holds another person's data, or lacks the result:\n%s", email, raw)
	}

	er := privacyTool(t, site, "eraser", email)
	if last := er[len(er)-1]; er[0]["items_removed"] != true || last["done"] != true {
		t.Fatalf("erase: %v", er)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_outbox WHERE object_ref = 'user:"+uid+"' OR payload LIKE '%"+email+"%'"); n != 0 {
		t.Fatalf("%d outbox rows about %s left", n, email)
	}
	if rows := site.Query(t, "SELECT event FROM wp_wprelay_receipts WHERE event_id = '"+evJane+"'"); len(rows) != 1 || rows[0][0] != `{"erased":true}` {
		t.Fatalf("Jane's receipt after erasure: %v (want the row, its event blanked)", rows)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_postmeta WHERE meta_key = '_wprelay_object_ref' AND meta_value = 'user:"+uid+"'"); n != 0 {
		t.Fatalf("%d results about user %s left", n, uid)
	}
	if g := groups(privacyTool(t, site, "exporter", email)); len(g) != 0 {
		t.Fatalf("export after erasure still finds %v", g)
	}
	if g := groups(privacyTool(t, site, "exporter", other)); g["wprelay-receipts"] != 1 || g["wprelay-outbox"] < 1 {
		t.Fatalf("John's data after Jane's erasure: %v", g)
	}
	// A delivery of the same event again is still a duplicate.
	if again := (wpCall{Route: "events", Body: envelope(evJane, "contact.updated", map[string]any{"email": email})}).send(t, site); again.Status != 202 && again.Status != 200 {
		t.Fatalf("redelivery: %d %s", again.Status, again.Raw)
	}

	policy := site.PHP(t, `
require_once ABSPATH . 'wp-admin/includes/admin.php';
wp_set_current_user( 1 );
set_current_screen( 'options-privacy' ); // is_admin(): the guide is built in wp-admin
do_action( 'admin_init' );
echo WP_Privacy_Policy_Content::get_suggested_policy_text() ? wp_json_encode( WP_Privacy_Policy_Content::get_suggested_policy_text() ) : '';`)
	if !strings.Contains(policy, "Webhook Relay") || !strings.Contains(policy, "30 days") {
		t.Fatalf("no suggested privacy-policy text from Webhook Relay:\n%s", tail(policy, 10))
	}
}

// The daily retention job deletes sent outbox rows after 7 days, failed
// ones, receipts (once dispatched) and results after 30, in batches; a
// receipt still waiting for dispatch is kept; the filter changes the days.
func TestWP_Retention_PrunesInBatches(t *testing.T) {
	site := sharedSite(t)
	tag := uuid.NewString()[:8]
	ins := func(state string, daysAgo int) {
		site.Query(t, fmt.Sprintf("INSERT INTO wp_wprelay_outbox (idempotency_key, event_type, object_ref, payload, state, attempts, next_at, created_at, sent_at) "+
			"VALUES (UUID(), 'test.retention', 'ret:%[1]s', '{}', '%[2]s', 1, UTC_TIMESTAMP(), UTC_TIMESTAMP() - INTERVAL %[3]d DAY, IF('%[2]s' = 'sent', UTC_TIMESTAMP() - INTERVAL %[3]d DAY, NULL))", tag, state, daysAgo))
	}
	for i := 0; i < 5; i++ {
		ins("sent", 8)
	}
	ins("sent", 6)
	ins("failed", 31)
	ins("failed", 20)
	rec := func(status string, daysAgo int) {
		// A stored receipt is due an hour from now: the cron run below
		// must not dispatch it.
		site.Query(t, fmt.Sprintf("INSERT INTO wp_wprelay_receipts (idempotency_key, route, event_id, event_type, event, received_at, status, next_at) "+
			"VALUES (UUID(), 'events', 'ret-%[1]s', 'test.retention', '{}', UTC_TIMESTAMP() - INTERVAL %[3]d DAY, '%[2]s', IF('%[2]s' = 'stored', UTC_TIMESTAMP() + INTERVAL 1 HOUR, NULL))", tag, status, daysAgo))
	}
	rec("done", 31)
	rec("applied", 31)
	rec("stored", 31) // not dispatched yet: kept
	rec("done", 29)
	old := strings.TrimSpace(site.PHP(t, `echo wp_insert_post( array( 'post_type' => 'wprelay_result', 'post_status' => 'private', 'post_title' => 'old', 'post_date_gmt' => gmdate( 'Y-m-d H:i:s', time() - 31 * DAY_IN_SECONDS ), 'post_date' => gmdate( 'Y-m-d H:i:s', time() - 31 * DAY_IN_SECONDS ) ) );`))
	recent := strings.TrimSpace(site.PHP(t, `echo wp_insert_post( array( 'post_type' => 'wprelay_result', 'post_status' => 'private', 'post_title' => 'recent' ) );`))

	site.PHP(t, `update_option( 'wpstack_retention_batch', '2' );`)
	defer site.PHP(t, `delete_option( 'wpstack_retention_batch' ); delete_option( 'wpstack_retention_days' );`)
	if next := strings.TrimSpace(site.PHP(t, `echo wp_next_scheduled( 'wprelay_retention' ) ? 'scheduled' : 'no';`)); next != "scheduled" {
		t.Fatalf("the daily retention job is not scheduled: %s", next)
	}
	site.DueCron(t, "wprelay_retention")
	site.RunCron(t)

	count := func(where string) int {
		return site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_outbox WHERE object_ref = 'ret:"+tag+"' AND "+where)
	}
	if a, b, c, d := count("state = 'sent' AND sent_at < UTC_TIMESTAMP() - INTERVAL 7 DAY"), count("state = 'sent'"), count("state = 'failed'"), count("1"); a != 0 || b != 1 || c != 1 || d != 2 {
		t.Fatalf("outbox after retention: %d old sent, %d sent, %d failed, %d in all; want 0, 1, 1, 2", a, b, c, d)
	}
	left := site.Query(t, "SELECT status FROM wp_wprelay_receipts WHERE event_id = 'ret-"+tag+"' ORDER BY id")
	if len(left) != 2 || left[0][0] != "stored" || left[1][0] != "done" {
		t.Fatalf("receipts after retention: %v, want the undispatched one and the recent one", left)
	}
	posts := site.Query(t, "SELECT ID FROM wp_posts WHERE ID IN ("+old+","+recent+")")
	if len(posts) != 1 || posts[0][0] != recent {
		t.Fatalf("results after retention: %v, want only %s", posts, recent)
	}

	// The filter: keep sent rows 5 days.
	site.PHP(t, `update_option( 'wpstack_retention_days', '{"outbox_sent":5}' );`)
	site.DueCron(t, "wprelay_retention")
	site.RunCron(t)
	if n := count("state = 'sent'"); n != 0 {
		t.Fatalf("%d sent rows 6 days old left with outbox_sent = 5 days", n)
	}
}
