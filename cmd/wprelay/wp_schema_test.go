//go:build integration

package main

import (
	"os"
	"strings"
	"testing"

	"github.com/wprelay/wprelay/internal/wpstack"
)

// The schema version option is autoloaded (it is read on every request),
// also after an upgrade from a version-1 install whose option was not, and
// the upgrade adds the indexes the retention job deletes by.
func TestWP_Schema_UpgradeAutoloadsVersion(t *testing.T) {
	site := sharedSite(t)
	autoload := func() string {
		return site.Query(t, "SELECT autoload FROM wp_options WHERE option_name = 'wprelay_db_version'")[0][0]
	}
	if a := autoload(); a != "yes" && a != "on" {
		t.Fatalf("after activation: autoload %q, want yes (on in WordPress 6.6+)", a)
	}
	site.Query(t, "UPDATE wp_options SET option_value = '1', autoload = 'no' WHERE option_name = 'wprelay_db_version'")
	site.Query(t, "ALTER TABLE wp_wprelay_receipts DROP INDEX received_at")
	site.PHP(t, `wp_cache_flush(); echo get_option( 'wprelay_db_version' );`) // plugins_loaded upgrades
	if v := site.Query(t, "SELECT option_value FROM wp_options WHERE option_name = 'wprelay_db_version'")[0][0]; v == "1" {
		t.Fatalf("the schema was not upgraded: version %s", v)
	}
	if a := autoload(); a != "yes" && a != "on" {
		t.Fatalf("after the upgrade: autoload %q, want yes", a)
	}
	idx := site.Query(t, "SHOW INDEX FROM wp_wprelay_receipts WHERE Key_name = 'received_at'")
	out := site.Query(t, "SHOW INDEX FROM wp_wprelay_outbox WHERE Key_name = 'state_sent'")
	if len(idx) == 0 || len(out) == 0 {
		t.Fatalf("retention indexes missing after the upgrade: receipts.received_at %d, outbox.state_sent %d", len(idx), len(out))
	}
	if strings.Contains(site.DebugLog(), "WordPress database error") {
		t.Fatalf("database errors during the upgrade:\n%s", tail(site.DebugLog(), 20))
	}
}

// The WordPress suites run on the version `make integration` asks for
// (WPRELAY_WP_EXPECT: 6.1, Debian 12's, then 6.8 from wordpress-current).
func TestWP_Version(t *testing.T) {
	site := sharedSite(t)
	want := os.Getenv("WPRELAY_WP_EXPECT")
	t.Logf("WordPress %s (expected: %q)", site.Version, want)
	if site.Version == "" || want != "" && !strings.HasPrefix(site.Version, want+".") {
		t.Fatalf("the site runs WordPress %q, want %s.x (%s)", site.Version, want, wpstack.CoreEnv)
	}
	if got := strings.TrimSpace(site.PHP(t, `echo get_bloginfo( 'version' );`)); got != site.Version {
		t.Fatalf("WordPress says it is %s, its files say %s", got, site.Version)
	}
}
