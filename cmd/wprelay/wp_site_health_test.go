//go:build integration

package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// siteHealth runs the plugin's Site Health tests the way Tools → Site
// Health does (WP_Site_Health::get_tests(), direct tests) and returns them
// by test id, with the Info section the plugin adds.
func siteHealth(t *testing.T, site *wpstack.Site) (map[string]map[string]any, map[string]any) {
	t.Helper()
	out := site.PHP(t, `
require_once ABSPATH . 'wp-admin/includes/class-wp-site-health.php';
$results = array();
foreach ( WP_Site_Health::get_tests()['direct'] as $id => $test ) {
	if ( 0 === strpos( $id, 'wprelay_' ) ) {
		$results[ $id ] = call_user_func( $test['test'] );
	}
}
$info = apply_filters( 'debug_information', array() );
echo wp_json_encode( array( 'tests' => $results, 'info' => $info['wprelay'] ?? null ) );`)
	var v struct {
		Tests map[string]map[string]any `json:"tests"`
		Info  map[string]any            `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("site health: %v\n%s", err, out)
	}
	return v.Tests, v.Info
}

// adminPage renders Tools → Webhook Relay as the administrator.
func adminPage(t *testing.T, site *wpstack.Site, tab string) string {
	t.Helper()
	return site.PHP(t, `
wp_set_current_user( 1 );
require_once ABSPATH . 'wp-admin/includes/admin.php';
$_GET['page'] = 'wprelay';
$_GET['tab']  = '`+tab+`';
do_action( 'admin_menu' );
do_action( get_plugin_page_hookname( 'wprelay', 'tools.php' ) );`)
}

// Site Health shows the plugin's tests: all good with the sidecar up;
// with it down, reachability and readiness are critical and say what to
// change; a row that failed for good is critical in Site Health and a
// notice on the plugin's page. The Info section shows versions and URLs,
// never a secret.
func TestWP_SiteHealth_UpAndDown(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))
	site.Query(t, "DELETE FROM wp_wprelay_outbox WHERE state <> 'sent'")

	tests, info := siteHealth(t, site)
	want := []string{"sidecar_reachable", "sidecar_ready", "constants", "loopback_allowance", "clock_skew", "outbox_backlog", "outbox_failed", "dead_letters"}
	for _, id := range want {
		r, ok := tests["wprelay_"+id]
		if !ok {
			t.Fatalf("no Site Health test wprelay_%s; have %v", id, keys(tests))
		}
		if r["status"] != "good" || r["test"] != "wprelay_"+id || r["label"] == "" || !strings.HasPrefix(r["description"].(string), "<p>") {
			t.Errorf("sidecar up: %s = %v", id, r)
		}
	}
	fields, _ := info["fields"].(map[string]any)
	for _, f := range []string{"version", "db_version", "issuer", "sidecar_url", "admin_url", "sidecar_version", "wprelay_site_jwt_secret", "outbox_pending"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("Site Health Info has no %s field: %v", f, keys(fields))
		}
	}
	raw, _ := json.Marshal(info)
	for _, secret := range []string{siteJWTSecret, siteSigning, wpJWTSecret, wpSigning, adminToken} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("Site Health Info contains a secret")
		}
	}
	if v := fields["wprelay_site_jwt_secret"].(map[string]any)["value"]; v != "set" {
		t.Errorf("constant shown as %v, want set", v)
	}
	if v := fields["issuer"].(map[string]any)["value"]; v != site.URL {
		t.Errorf("issuer %v, want %s", v, site.URL)
	}

	sc.stop()
	tests, _ = siteHealth(t, site)
	for id, must := range map[string]string{"sidecar_reachable": "WPRELAY_SIDECAR_URL", "sidecar_ready": "WPRELAY_ADMIN_URL"} {
		r := tests["wprelay_"+id]
		if r["status"] != "critical" || !strings.Contains(r["description"].(string), must) || !strings.Contains(r["actions"].(string), "tools.php?page=wprelay") {
			t.Errorf("sidecar down: %s = %v", id, r)
		}
	}
	if r := tests["wprelay_constants"]; r["status"] != "good" {
		t.Errorf("sidecar down: constants = %v", r)
	}

	// A missing constant is critical and named.
	c := wpConstants(sc.public, sc.admin)
	delete(c, "WPRELAY_SITE_SIGNING_SECRET")
	site.SetConstants(t, c)
	tests, _ = siteHealth(t, site)
	if r := tests["wprelay_constants"]; r["status"] != "critical" || !strings.Contains(r["description"].(string), "WPRELAY_SITE_SIGNING_SECRET") {
		t.Errorf("missing constant: %v", r)
	}
	// A sidecar URL WordPress refuses (a host that does not resolve): the
	// loopback allowance test is critical and names the constant.
	c = wpConstants(sc.public, sc.admin)
	c["WPRELAY_SIDECAR_URL"] = "http://sidecar.invalid:8080"
	site.SetConstants(t, c)
	tests, _ = siteHealth(t, site)
	if r := tests["wprelay_loopback_allowance"]; r["status"] != "critical" || !strings.Contains(r["description"].(string), "WPRELAY_SIDECAR_URL") {
		t.Errorf("refused sidecar URL: %v", r)
	}
	site.SetConstants(t, wpConstants(sc.public, sc.admin))

	// A row refused for good: critical in Site Health, a notice on the page.
	sc.restartSame()
	site.Query(t, "INSERT INTO wp_wprelay_outbox (idempotency_key, event_type, object_ref, payload, state, attempts, next_at, last_error, created_at) "+
		"VALUES (UUID(), 'test.refused', 'test:1', '{}', 'failed', 1, UTC_TIMESTAMP(), 'HTTP 401: invalid_token', UTC_TIMESTAMP())")
	tests, _ = siteHealth(t, site)
	if r := tests["wprelay_outbox_failed"]; r["status"] != "critical" || !strings.Contains(r["description"].(string), "wp wprelay outbox retry --failed") {
		t.Errorf("failed row: %v", r)
	}
	for _, tab := range []string{"events", "outbox"} {
		if page := adminPage(t, site, tab); !strings.Contains(page, `id="wprelay-failed-outbox_failed"`) {
			t.Errorf("the %s tab shows no notice about the failed row", tab)
		}
	}
	site.Query(t, "DELETE FROM wp_wprelay_outbox WHERE event_type = 'test.refused'")
	if page := adminPage(t, site, "outbox"); strings.Contains(page, `id="wprelay-failed-outbox_failed"`) {
		t.Errorf("the notice stays after the failed row is gone")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A clock off by more than the tokens' 30 s is critical in Site Health
// and makes `wp wprelay status` exit 1. The sidecar's admin API is reached
// through a proxy that shifts its Date header by two minutes.
func TestWP_SiteHealth_ClockSkew(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))
	admin, _ := url.Parse(sc.admin)
	proxy := httputil.NewSingleHostReverseProxy(admin)
	proxy.ModifyResponse = func(r *http.Response) error {
		r.Header.Set("Date", time.Now().Add(-2*time.Minute).UTC().Format(http.TimeFormat))
		return nil
	}
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	site.SetConstants(t, wpConstants(sc.public, "http://"+ln.Addr().String()))
	t.Cleanup(func() { site.SetConstants(t, wpConstants(sc.public, sc.admin)) })

	tests, _ := siteHealth(t, site)
	r := tests["wprelay_clock_skew"]
	if r["status"] != "critical" || !strings.Contains(r["description"].(string), "NTP") {
		t.Fatalf("clock skew of 120 s: %v", r)
	}
	var rows []map[string]any
	code := wpJSON(t, site, &rows, "wprelay", "status")
	if st := checkRows(rows, "check"); code != 1 || st["clock_skew"] != "critical" {
		t.Fatalf("wp wprelay status with a skewed clock: exit %d, %v", code, rows)
	}
}
