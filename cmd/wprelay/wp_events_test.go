//go:build integration

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// A Stripe webhook sent twice reaches WordPress through the sidecar, whose
// first attempt times out (WordPress answers slowly after storing it) and
// is retried: WordPress stores it once and runs wprelay_event once.
func TestWP_Events_ExactlyOnceThroughSidecar(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "1s"))
	site.PHP(t, `update_option( 'wpstack_slow_first', '2.5' );`)
	t.Cleanup(func() { site.PHP(t, `delete_option( 'wpstack_slow_first' );`) })

	evt := "evt_wp_once_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	body := stripeEvent(evt, "invoice.created")
	url := sc.public + "/hooks/stripe"
	first := post(t, url, body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
	second := post(t, url, body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
	if first.Status != 202 || second.Status != 200 || second.Body["status"] != "duplicate" {
		t.Fatalf("provider sends: %d %v, then %d %v", first.Status, first.Body, second.Status, second.Body)
	}
	id := first.Body["id"].(string)

	ev := sc.waitEvent(id, "delivered", 30*time.Second)
	d := ev.Deliveries[0]
	if d.Attempts < 2 || d.History[0].Status == 200 {
		t.Fatalf("want a first attempt that timed out and a retry; delivery %+v", d)
	}
	last := d.History[len(d.History)-1]

	// The slow first request is still sleeping after the sidecar gave up on
	// it; it has stored the event before it slept.
	receipts := func() int {
		return site.QueryInt(t, fmt.Sprintf("SELECT COUNT(*) FROM wp_wprelay_receipts WHERE event_id = '%s'", id))
	}
	if n := receipts(); n != 1 {
		t.Fatalf("%d receipts for event %s, want 1", n, id)
	}
	time.Sleep(2 * time.Second) // let the slow request finish before counting actions
	site.RunCron(t)
	site.RunCron(t)
	actions := func(hook string) int {
		return site.QueryInt(t, fmt.Sprintf("SELECT COUNT(*) FROM wp_wpstack_actions WHERE event_id = '%s' AND hook = '%s'", id, hook))
	}
	ran, ranTyped := actions("wprelay_event"), actions("wprelay_event_invoice.created")
	status := site.Query(t, fmt.Sprintf("SELECT status, route, event_type FROM wp_wprelay_receipts WHERE event_id = '%s'", id))
	t.Logf("exactly-once counts: provider sends 2 (202, then 200 duplicate); sidecar events 1; sidecar attempts %d (first: %q, last: HTTP %d); "+
		"WordPress receipts %d (status %v); wprelay_event ran %d, wprelay_event_invoice.created ran %d",
		d.Attempts, d.History[0].Error, last.Status, receipts(), status, ran, ranTyped)
	if ran != 1 || ranTyped != 1 {
		t.Fatalf("wprelay_event ran %d times and wprelay_event_invoice.created %d, want 1 and 1", ran, ranTyped)
	}
	if len(status) != 1 || status[0][0] != "done" || status[0][1] != "events" || status[0][2] != "invoice.created" {
		t.Fatalf("receipt: %v", status)
	}

	// A replay from the sidecar carries the same Idempotency-Key: a duplicate.
	var rep map[string]any
	if st := sc.adminDo("POST", "/admin/v1/events/"+id+"/replay?target=wordpress", "", &rep); st != 202 {
		t.Fatalf("replay: %d %v", st, rep)
	}
	waitFor(t, 15*time.Second, "the replay to be delivered", func() bool {
		var ev eventView
		sc.adminDo("GET", "/admin/v1/events/"+id, "", &ev)
		return len(ev.Deliveries) == 1 && ev.Deliveries[0].Attempts > d.Attempts && ev.Status == "delivered"
	})
	site.RunCron(t)
	if n, a := receipts(), actions("wprelay_event"); n != 1 || a != 1 {
		t.Fatalf("after a replay: %d receipts and %d actions, want 1 and 1", n, a)
	}
}

// Requests without valid credentials get 401 and store nothing.
func TestWP_Events_RejectsBadCredentials(t *testing.T) {
	site := sharedSite(t)
	site.SetConstants(t, wpConstants("http://"+sidecarHost+":9", "http://127.0.0.1:9"))
	body := envelope(uuid.NewString(), "invoice.created", map[string]any{"id": "in_1"})
	now := time.Now()
	cases := []struct {
		name string
		call wpCall
		code string
	}{
		{"no token", wpCall{NoToken: true}, "wprelay_invalid_token"},
		{"wrong JWT secret", wpCall{JWTSecret: "not-the-secret-not-the-secret-0000"}, "wprelay_invalid_token"},
		{"alg none", wpCall{Method: jwt.SigningMethodNone, SignKey: jwt.UnsafeAllowNoneSignatureType}, "wprelay_invalid_token"},
		{"expired token", wpCall{IssuedAt: now.Add(-10 * time.Minute), TTL: time.Minute}, "wprelay_invalid_token"},
		{"token from the future", wpCall{IssuedAt: now.Add(5 * time.Minute)}, "wprelay_invalid_token"},
		{"lifetime over 300 s", wpCall{TTL: 10 * time.Minute}, "wprelay_invalid_token"},
		{"wrong audience", wpCall{Audience: "https://other.example"}, "wprelay_invalid_token"},
		{"wrong issuer", wpCall{Issuer: "someone-else"}, "wprelay_invalid_token"},
		{"no signature", wpCall{NoSig: true}, "wprelay_invalid_signature"},
		{"wrong signing secret", wpCall{Signing: "whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZw=="}, "wprelay_invalid_signature"},
		{"tampered body", wpCall{SignBody: envelope(uuid.NewString(), "invoice.created", map[string]any{"id": "in_2"})}, "wprelay_invalid_signature"},
		{"stale timestamp", wpCall{Timestamp: now.Add(-6 * time.Minute)}, "wprelay_invalid_signature"},
		{"webhook-id differs from Idempotency-Key", wpCall{WebhookID: uuid.NewString()}, "wprelay_invalid_signature"},
		{"bad token and invalid body", wpCall{NoToken: true, Body: []byte(`{"type":"x y"}`)}, "wprelay_invalid_token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.call.Route = "events"
			if c.call.Body == nil {
				c.call.Body = body
			}
			c.call.Key = uuid.NewString() + ":wordpress"
			logged := len(site.DebugLog())
			r := c.call.send(t, site)
			// One generic answer; which check failed is in the debug log only.
			if r.Status != 401 || r.Body["code"] != "wprelay_unauthorized" || r.Body["message"] != "The request could not be authenticated." {
				t.Fatalf("%d %s, want 401 wprelay_unauthorized with the generic message", r.Status, r.Raw)
			}
			if log := site.DebugLog(); len(log) < logged || !strings.Contains(log[logged:], "wprelay: 401 on /wprelay/v1/events from 127.0.0.1: ") || !strings.Contains(log[logged:], "("+c.code+")") {
				t.Fatalf("debug.log does not say why (%s):\n%s", c.code, tail(log, 3))
			}
			if strings.Contains(r.Raw, wpJWTSecret) || strings.Contains(r.Raw, wpSigning) {
				t.Fatal("the answer contains a secret")
			}
			if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_receipts WHERE idempotency_key = '"+c.call.Key+"'"); n != 0 {
				t.Fatalf("%d receipts stored", n)
			}
		})
	}

	t.Run("valid, then duplicate", func(t *testing.T) {
		key := uuid.NewString() + ":wordpress"
		r := wpCall{Route: "events", Body: body, Key: key}.send(t, site)
		if r.Status != 202 || r.Body["status"] != "queued" {
			t.Fatalf("valid: %d %s", r.Status, r.Raw)
		}
		again := wpCall{Route: "events", Body: body, Key: key}.send(t, site)
		if again.Status != 200 || again.Body["duplicate"] != true {
			t.Fatalf("duplicate: %d %s", again.Status, again.Raw)
		}
		if n := site.QueryInt(t, "SELECT COUNT(*) FROM wp_wprelay_receipts WHERE idempotency_key = '"+key+"'"); n != 1 {
			t.Fatalf("%d receipts, want 1", n)
		}
	})
	t.Run("authentic but invalid event is 422", func(t *testing.T) {
		for _, b := range []string{`{"type":"invoice.created","data":{}}`, `{"id":"x","type":"bad type!","data":{}}`, `{"id":"x","type":"a.b"}`, `not json`} {
			r := wpCall{Route: "events", Body: []byte(b)}.send(t, site)
			if r.Status != 422 || r.Body["code"] != "wprelay_invalid_event" {
				t.Errorf("%s: %d %s, want 422 wprelay_invalid_event", b, r.Status, r.Raw)
			}
		}
	})
	t.Run("unauthenticated requests write nothing and spend no budget", func(t *testing.T) {
		site.PHP(t, `update_option( 'wpstack_rate_limit', '3' );`)
		defer site.PHP(t, `delete_option( 'wpstack_rate_limit' );`)
		site.Query(t, "DELETE FROM wp_options WHERE option_name LIKE 'wprelay\\_rate\\_%'")
		maxID := func() int { return site.QueryInt(t, "SELECT MAX(option_id) FROM wp_options") }
		before := maxID()
		for i := 0; i < 10; i++ {
			if r := (wpCall{Route: "events", Body: body, NoToken: true}).send(t, site); r.Status != 401 {
				t.Fatalf("request %d without a token: %d %s, want 401", i, r.Status, r.Raw)
			}
		}
		if after := maxID(); after != before {
			t.Fatalf("10 unauthenticated requests added %d wp_options rows: %v", after-before,
				site.Query(t, fmt.Sprintf("SELECT option_name FROM wp_options WHERE option_id > %d", before)))
		}
		// The same address (one proxy for everyone) still has the sidecar's budget.
		if r := (wpCall{Route: "events", Body: envelope(uuid.NewString(), "invoice.created", map[string]any{})}).send(t, site); r.Status != 202 {
			t.Fatalf("a valid delivery after 10 unauthenticated ones: %d %s, want 202", r.Status, r.Raw)
		}
	})
	t.Run("failed authentications over the budget get 429, counted in the object cache only", func(t *testing.T) {
		// One PHP process, with WordPress's in-memory object cache standing
		// in for a persistent one (wp_using_ext_object_cache): the failure
		// counter lives there, per client address.
		key := uuid.NewString() + ":wordpress"
		maxID := func() int { return site.QueryInt(t, "SELECT MAX(option_id) FROM wp_options") }
		before := maxID()
		out := site.PHP(t, `
wp_using_ext_object_cache( true );
add_filter( 'wprelay_auth_failure_limit', function () { return 3; } );
rest_get_server();
$send = function ( $ip, $auth ) {
	$_SERVER['REMOTE_ADDR'] = $ip;
	$req = new WP_REST_Request( 'POST', '/wprelay/v1/events' );
	$req->set_header( 'content-type', 'application/json' );
	$req->set_header( 'idempotency-key', '`+key+`' );
	$req->set_header( 'authorization', $auth );
	$req->set_body( '{}' );
	return rest_do_request( $req )->get_status();
};
$codes = array();
for ( $i = 0; $i < 5; $i++ ) {
	$codes[] = $send( '198.51.100.7', '' );
}
$codes[] = $send( '198.51.100.8', 'Bearer x.y.z' );
echo implode( ',', $codes );`)
		if strings.TrimSpace(out) != "401,401,401,429,429,401" {
			t.Fatalf("statuses %q, want 401 ×3, then 429 for that address, and 401 for another address", out)
		}
		if after := maxID(); after != before {
			t.Fatalf("counting failures added %d wp_options rows", after-before)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		site.PHP(t, `update_option( 'wpstack_rate_limit', '3' );`)
		defer site.PHP(t, `delete_option( 'wpstack_rate_limit' );`)
		var last wpReply
		for i := 0; i < 5; i++ {
			last = wpCall{Route: "events", Body: envelope(uuid.NewString(), "invoice.created", map[string]any{})}.send(t, site)
		}
		if last.Status != 429 || last.Body["code"] != "wprelay_rate_limited" || last.Header.Get("Retry-After") == "" {
			t.Fatalf("%d %s Retry-After=%q, want 429 wprelay_rate_limited", last.Status, last.Raw, last.Header.Get("Retry-After"))
		}
	})
}
