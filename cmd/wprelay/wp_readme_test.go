//go:build integration

package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The plugin's readme.txt example of a wprelay_event_{type} handler, loaded
// as written by the test mu-plugin, reads a real Stripe invoice.paid
// relayed by the sidecar: $event['data']['object'] is the invoice.
func TestWP_Readme_HandlerExampleRuns(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "10s"))
	site.PHP(t, `update_option( 'wpstack_readme_examples', '1' ); update_option( 'wpstack_readme_user', '1' ); delete_user_meta( 1, 'last_paid_invoice' );`)
	t.Cleanup(func() {
		site.PHP(t, `delete_option( 'wpstack_readme_examples' ); delete_user_meta( 1, 'last_paid_invoice' );`)
	})

	fixture, err := os.ReadFile("../../testdata/provider/stripe-invoice-paid.txt")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(fixture), "\n\n")
	r := post(t, sc.public+"/hooks/stripe", []byte(body), map[string]string{"Stripe-Signature": signStripe([]byte(body), stripeSecret, time.Now())})
	if r.Status != 202 {
		t.Fatalf("ingest: %d %v", r.Status, r.Body)
	}
	sc.waitEvent(r.Body["id"].(string), "delivered", 30*time.Second)
	site.RunCron(t)
	if got := strings.TrimSpace(site.PHP(t, `echo get_user_meta( 1, 'last_paid_invoice', true );`)); got != "in_1QYb7kLkdIwHu7ixGq3ZkT2m" {
		t.Fatalf("the readme's handler stored %q, want the invoice id", got)
	}
}
