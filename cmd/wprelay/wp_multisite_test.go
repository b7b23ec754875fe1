//go:build integration

package main

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// Uninstall on a single site removes the tables, options and capabilities.
// Then, on a two-site network (subdirectories, made with WP-CLI's
// multisite-convert): network activation creates each site's tables, a
// site created later gets its own, each site emits into its own outbox and
// signs as its own home_url(), deleting a site drops its tables, and
// uninstall removes every site's.
func TestWP_Multisite_Network(t *testing.T) {
	site := wpstack.Start(t, wpstack.Options{Logf: t.Logf})
	wp := func(args ...string) string {
		t.Helper()
		r := site.WP(t, args...)
		if r.Code != 0 {
			t.Fatalf("wp %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
		}
		return strings.TrimSpace(r.Stdout)
	}
	tables := func() []string {
		var out []string
		for _, r := range site.Query(t, "SHOW TABLES LIKE '%wprelay%'") {
			out = append(out, r[0])
		}
		sort.Strings(out)
		return out
	}
	adminCan := func() string {
		return wp("eval", `echo get_role( 'administrator' )->has_cap( 'edit_wprelay_results' ) ? 'yes' : 'no';`)
	}

	// Single site first: uninstall removes the tables, the options and the
	// result capabilities.
	if got, can := strings.Join(tables(), " "), adminCan(); got != "wp_wprelay_outbox wp_wprelay_receipts" || can != "yes" {
		t.Fatalf("single site, activated: tables %s, administrator can edit results: %s", got, can)
	}
	wp("plugin", "deactivate", "wprelay")
	wp("plugin", "uninstall", "wprelay", "--skip-delete")
	if got, can := tables(), adminCan(); len(got) != 0 || can != "no" || site.QueryInt(t, "SELECT COUNT(*) FROM wp_options WHERE option_name LIKE 'wprelay%'") != 0 {
		t.Fatalf("single site, uninstalled: tables %v, administrator can edit results: %s, options %v", got, can, site.Query(t, "SELECT option_name FROM wp_options WHERE option_name LIKE 'wprelay%'"))
	}

	wp("core", "multisite-convert", "--skip-config", "--title=wprelay network")
	c := wpConstants("http://"+sidecarHost+":9", "http://127.0.0.1:9")
	c["MULTISITE"] = "1"
	c["SUBDOMAIN_INSTALL"] = ""
	c["DOMAIN_CURRENT_SITE"] = site.Host
	c["PATH_CURRENT_SITE"] = "/"
	c["SITE_ID_CURRENT_SITE"] = "1"
	c["BLOG_ID_CURRENT_SITE"] = "1"
	site.SetConstants(t, c)
	// WordPress multisite does not expect a port in a domain, and `wp site
	// create` drops the colon of 127.0.0.1:PORT: put it back.
	createSite := func(slug string) {
		t.Helper()
		id := wp("site", "create", "--slug="+slug, "--title="+slug, "--porcelain")
		site.Query(t, "UPDATE wp_blogs SET domain = '"+site.Host+"' WHERE blog_id = "+id)
		site.Query(t, "UPDATE wp_"+id+"_options SET option_value = '"+site.URL+"/"+slug+"/' WHERE option_name IN ('home', 'siteurl')")
	}
	createSite("two")

	if got := tables(); len(got) != 0 {
		t.Fatalf("before network activation: %v", got)
	}
	wp("plugin", "activate", "wprelay", "--network")
	want := "wp_2_wprelay_outbox wp_2_wprelay_receipts wp_wprelay_outbox wp_wprelay_receipts"
	if got := strings.Join(tables(), " "); got != want {
		t.Fatalf("after network activation: %s, want %s", got, want)
	}
	createSite("three")
	if got := strings.Join(tables(), " "); !strings.Contains(got, "wp_3_wprelay_outbox wp_3_wprelay_receipts") {
		t.Fatalf("a site created after network activation has no tables: %s", got)
	}

	// Each site emits into its own outbox and signs as its own home_url().
	issuer := func(url string) (string, string) {
		t.Helper()
		out := wp("--url="+url, "eval", `
global $wpdb;
$key    = wprelay_emit( 'test.network', 'test:1', array() );
$outbox = new WPRelay_Outbox( $wpdb, new WPRelay_Schema( $wpdb ) );
$row    = $wpdb->get_row( $wpdb->prepare( "SELECT * FROM {$wpdb->prefix}wprelay_outbox WHERE idempotency_key = %s", $key ), ARRAY_A );
$req    = ( new WPRelay_Sender( new WPRelay_Config(), new WPRelay_Crypto(), $outbox ) )->request( $row, time() );
echo $wpdb->prefix, ' ', explode( '.', substr( $req['args']['headers']['Authorization'], 7 ) )[1];`)
		f := strings.Fields(out)
		claims, err := base64.RawURLEncoding.DecodeString(f[len(f)-1])
		var v struct {
			Iss string `json:"iss"`
		}
		if err != nil || json.Unmarshal(claims, &v) != nil {
			t.Fatalf("token claims: %v\n%s", err, out)
		}
		return f[len(f)-2], v.Iss
	}
	for url, want := range map[string][2]string{
		site.URL + "/":     {"wp_", site.URL},
		site.URL + "/two/": {"wp_2_", site.URL + "/two"},
	} {
		prefix, iss := issuer(url)
		if prefix != want[0] || iss != want[1] {
			t.Errorf("site %s: outbox prefix %s, iss %s; want %s and %s", url, prefix, iss, want[0], want[1])
		}
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_2_wprelay_outbox WHERE event_type = 'test.network'"); n != 1 {
		t.Fatalf("site two's outbox has %d rows, want 1", n)
	}

	// Deleting a site drops its tables; uninstall drops every site's.
	wp("site", "delete", "3", "--yes")
	if got := strings.Join(tables(), " "); got != want {
		t.Fatalf("after deleting site 3: %s, want %s", got, want)
	}
	wp("plugin", "deactivate", "wprelay", "--network")
	wp("plugin", "uninstall", "wprelay", "--skip-delete")
	if got := tables(); len(got) != 0 {
		t.Fatalf("after uninstall: %v", got)
	}
	if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_options WHERE option_name = 'wprelay_db_version'") + site.QueryInt(t, "SELECT COUNT(*) FROM wp_2_options WHERE option_name = 'wprelay_db_version'"); n != 0 {
		t.Fatalf("%d wprelay_db_version options left after uninstall", n)
	}
}
