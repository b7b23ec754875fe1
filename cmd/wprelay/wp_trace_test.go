//go:build integration

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestWP_Trace_IDReachesWordPress: the trace id a provider sends at ingress
// is the one WordPress records with the stored event.
func TestWP_Trace_IDReachesWordPress(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))

	traceID := strings.ReplaceAll(uuid.NewString(), "-", "")
	evt := "evt_wp_trace_" + traceID[:8]
	body := stripeEvent(evt, "invoice.created")
	r := post(t, sc.public+"/hooks/stripe", body, map[string]string{
		"Stripe-Signature": signStripe(body, stripeSecret, time.Now()),
		"Traceparent":      "00-" + traceID + "-00f067aa0ba902b7-01",
	})
	if r.Status != 202 {
		t.Fatalf("ingest: %d %v", r.Status, r.Body)
	}
	id := r.Body["id"].(string)
	sc.waitEvent(id, "delivered", 20*time.Second)
	got := site.Query(t, fmt.Sprintf("SELECT trace_id FROM wp_wprelay_receipts WHERE event_id = '%s'", id))
	if len(got) != 1 || got[0][0] != traceID {
		t.Fatalf("WordPress recorded trace id %v, want %s", got, traceID)
	}
}
