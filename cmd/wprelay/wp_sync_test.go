//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// /user-sync upserts by email, idempotently, stores only sanitized text,
// and never grants or touches administrator.
func TestWP_UserSync_IdempotentSanitizedNeverAdmin(t *testing.T) {
	site := sharedSite(t)
	site.SetConstants(t, wpConstants("http://"+sidecarHost+":9", "http://127.0.0.1:9"))
	email := "jane." + uuid.NewString()[:8] + "@example.test"
	data := map[string]any{
		"email":        email,
		"first_name":   "<script>alert(1)</script>Jane",
		"last_name":    "Doe<b>bold</b>",
		"display_name": `<img src=x onerror=alert(1)>Jane "JD" Doe`,
		"description":  `<a href="javascript:alert(1)">bio</a> line`,
		"user_url":     "javascript:alert(1)",
		"role":         "subscriber",
	}
	key := uuid.NewString() + ":usersync"
	evID := uuid.NewString()
	r := wpCall{Route: "user-sync", Key: key, Body: envelope(evID, "contact.updated", data)}.send(t, site)
	if r.Status != 200 || r.Body["created"] != true {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	uid := int(r.Body["user_id"].(float64))
	again := wpCall{Route: "user-sync", Key: key, Body: envelope(evID, "contact.updated", data)}.send(t, site)
	if again.Status != 200 || again.Body["duplicate"] != true {
		t.Fatalf("same delivery again: %d %s", again.Status, again.Raw)
	}
	data["first_name"] = "Janet"
	upd := wpCall{Route: "user-sync", Body: envelope(uuid.NewString(), "contact.updated", data)}.send(t, site)
	if upd.Status != 200 || upd.Body["created"] != false || int(upd.Body["user_id"].(float64)) != uid {
		t.Fatalf("update: %d %s", upd.Status, upd.Raw)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_users WHERE user_email = '"+email+"'"); n != 1 {
		t.Fatalf("%d users with %s", n, email)
	}
	row := site.Query(t, fmt.Sprintf("SELECT display_name, user_url FROM wp_users WHERE ID = %d", uid))[0]
	meta := site.Query(t, fmt.Sprintf("SELECT meta_key, meta_value FROM wp_usermeta WHERE user_id = %d AND meta_key IN ('first_name','last_name','description','wp_capabilities')", uid))
	stored := strings.Join(row, " ")
	for _, m := range meta {
		stored += " " + m[1]
	}
	t.Logf("stored user fields: %q", stored)
	for _, bad := range []string{"<script", "<img", "onerror", "<b>", "javascript:", "<a "} {
		if strings.Contains(stored, bad) {
			t.Errorf("stored user fields contain %q: %s", bad, stored)
		}
	}
	if !strings.Contains(stored, "Janet") || !strings.Contains(stored, `"subscriber"`) {
		t.Errorf("stored user fields: %s", stored)
	}
	if n := site.QueryInt(t, fmt.Sprintf("SELECT COUNT(*) FROM wp_wprelay_outbox WHERE object_ref = 'user:%d'", uid)); n != 0 {
		t.Errorf("user-sync emitted %d events for the user it changed (echo)", n)
	}

	adminEmail := "adm." + uuid.NewString()[:8] + "@example.test"
	for _, c := range []struct {
		name, roles, role, email string
		status                   int
	}{
		{"administrator is refused", "", "administrator", adminEmail, 422},
		{"administrator is refused even when the filter allows it", "administrator,editor", "administrator", adminEmail, 422},
		// An editor has unfiltered_html: privileged, like edit_theme_options.
		{"a filtered-in editor is refused (unfiltered_html)", "administrator,editor", "editor", "ed." + uuid.NewString()[:8] + "@example.test", 422},
		{"a filtered-in author is allowed", "administrator,author", "author", "au." + uuid.NewString()[:8] + "@example.test", 200},
		{"the site's admin is never modified", "", "subscriber", "admin@example.test", 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.roles != "" {
				site.PHP(t, fmt.Sprintf(`update_option( 'wpstack_user_sync_roles', %q );`, c.roles))
				defer site.PHP(t, `delete_option( 'wpstack_user_sync_roles' );`)
			}
			r := wpCall{Route: "user-sync", Body: envelope(uuid.NewString(), "contact.updated", map[string]any{"email": c.email, "role": c.role, "display_name": "Changed"})}.send(t, site)
			if r.Status != c.status {
				t.Fatalf("%d %s, want %d", r.Status, r.Raw, c.status)
			}
		})
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_users WHERE user_email = '"+adminEmail+"'"); n != 0 {
		t.Fatalf("a user was created with role administrator")
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_usermeta WHERE meta_key = 'wp_capabilities' AND meta_value LIKE '%administrator%'"); n != 1 {
		t.Fatalf("%d administrators, want the site's one", n)
	}
	if name := site.Query(t, "SELECT display_name FROM wp_users WHERE user_email = 'admin@example.test'")[0][0]; name == "Changed" {
		t.Fatal("user-sync changed the administrator")
	}
	if r := (wpCall{Route: "user-sync", Body: envelope(uuid.NewString(), "contact.updated", map[string]any{"email": "not an email"})}).send(t, site); r.Status != 422 || r.Body["code"] != "wprelay_invalid_event" {
		t.Fatalf("bad email: %d %s", r.Status, r.Raw)
	}
}

// /results upserts one private wprelay_result post per event id, sanitized,
// and links it to the post it is about.
func TestWP_Results_IdempotentSanitizedLinked(t *testing.T) {
	site := sharedSite(t)
	site.SetConstants(t, wpConstants("http://"+sidecarHost+":9", "http://127.0.0.1:9"))
	origin := strings.TrimSpace(site.PHP(t, `remove_all_actions( 'transition_post_status' ); echo wp_insert_post( array( 'post_title' => 'Origin', 'post_status' => 'publish' ) );`))
	evID := uuid.NewString()
	data := map[string]any{
		"title":      "<script>alert(1)</script>Summary of Origin",
		"summary":    `<p>Good <strong>post</strong>.</p><script>alert(1)</script><img src=x onerror="alert(1)">`,
		"object_ref": "post:" + origin,
		"model":      "test-model",
	}
	key := uuid.NewString() + ":results"
	r := wpCall{Route: "results", Key: key, Body: envelope(evID, "post.published.result", data)}.send(t, site)
	if r.Status != 200 || r.Body["created"] != true || r.Body["object_ref"] != "post:"+origin {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	pid := int(r.Body["post_id"].(float64))
	if again := (wpCall{Route: "results", Key: key, Body: envelope(evID, "post.published.result", data)}).send(t, site); again.Status != 200 || again.Body["duplicate"] != true {
		t.Fatalf("same delivery again: %d %s", again.Status, again.Raw)
	}
	data["title"] = "Revised summary"
	upd := wpCall{Route: "results", Body: envelope(evID, "post.published.result", data)}.send(t, site)
	if upd.Status != 200 || upd.Body["created"] != false || int(upd.Body["post_id"].(float64)) != pid {
		t.Fatalf("same event, new delivery: %d %s", upd.Status, upd.Raw)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_postmeta WHERE meta_key = '_wprelay_event_id' AND meta_value = '"+evID+"'"); n != 1 {
		t.Fatalf("%d result posts for event %s", n, evID)
	}
	post := site.Query(t, fmt.Sprintf("SELECT post_title, post_content, post_status, post_type FROM wp_posts WHERE ID = %d", pid))[0]
	t.Logf("stored result: title %q content %q", post[0], post[1])
	if post[0] != "Revised summary" || post[2] != "private" || post[3] != "wprelay_result" {
		t.Fatalf("result post: %v", post)
	}
	if !strings.Contains(post[1], "<strong>post</strong>") || strings.Contains(post[1], "<script") || strings.Contains(post[1], "onerror") {
		t.Fatalf("result content not sanitized as post HTML: %q", post[1])
	}
	link := site.QueryInt(t, "SELECT meta_value FROM wp_postmeta WHERE meta_key = '_wprelay_result_id' AND post_id = "+origin)
	back := site.Query(t, fmt.Sprintf("SELECT meta_value FROM wp_postmeta WHERE meta_key = '_wprelay_object_ref' AND post_id = %d", pid))
	if link != pid || len(back) != 1 || back[0][0] != "post:"+origin {
		t.Fatalf("link: origin → %d, result → %v; want %d and post:%s", link, back, pid, origin)
	}
	// Without data.object_ref, the sidecar's normalized subject names the origin.
	var env map[string]any
	_ = json.Unmarshal(envelope(uuid.NewString(), "post.published.result", map[string]any{"title": "From the subject"}), &env)
	env["subject"] = map[string]string{"type": "post", "id": origin}
	b, _ := json.Marshal(env)
	if r := (wpCall{Route: "results", Body: b}).send(t, site); r.Status != 200 || r.Body["object_ref"] != "post:"+origin {
		t.Fatalf("subject link: %d %s", r.Status, r.Raw)
	}
	// The result page is not public.
	if out := site.PHP(t, fmt.Sprintf(`echo is_post_publicly_viewable( %d ) ? 'public' : 'private';`, pid)); strings.TrimSpace(out) != "private" {
		t.Fatalf("result post is %s", out)
	}
	// Results have a capability type of their own: the administrator may
	// read and edit them, an editor (who may edit every post) may not.
	caps := strings.TrimSpace(site.PHP(t, fmt.Sprintf(`
$editor = get_user_by( 'login', 'wpstack-editor' );
if ( ! $editor ) {
	$editor = get_user_by( 'id', wp_insert_user( array( 'user_login' => 'wpstack-editor', 'user_pass' => wp_generate_password(), 'user_email' => 'wpstack-editor@example.test', 'role' => 'editor' ) ) );
}
$admin = get_user_by( 'id', 1 );
$out   = array();
foreach ( array( 'admin' => $admin, 'editor' => $editor ) as $who => $u ) {
	foreach ( array( 'read_post', 'edit_post', 'delete_post' ) as $cap ) {
		$out[] = $who . ':' . $cap . '=' . ( user_can( $u, $cap, %d ) ? 'yes' : 'no' );
	}
}
echo implode( ' ', $out );`, pid)))
	if want := "admin:read_post=yes admin:edit_post=yes admin:delete_post=yes editor:read_post=no editor:edit_post=no editor:delete_post=no"; caps != want {
		t.Fatalf("result capabilities:\n got %s\nwant %s", caps, want)
	}
}
