//go:build integration

package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Posts published while the sidecar restarts reach it, and the target,
// within 20 s of its return, each once, with WP-Cron running as on a site
// with traffic (DISABLE_WP_CRON off, a page load every 500 ms spawning
// wp-cron.php when something is due).
func TestWP_Outbox_CatchUpAfterRestart(t *testing.T) {
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))
	c := wpConstants(sc.public, sc.admin)
	c["DISABLE_WP_CRON"] = "" // falsy: page loads spawn WP-Cron
	site.SetConstants(t, c)
	t.Cleanup(func() { site.SetConstants(t, wpConstants(sc.public, sc.admin)) })

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	traffic := make(chan struct{})
	go func() {
		defer close(traffic)
		client := &http.Client{Timeout: 10 * time.Second}
		for ctx.Err() == nil {
			if resp, err := client.Get(site.URL + "/"); err == nil {
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	defer func() { stop(); <-traffic }()

	sc.stop()
	var refs []string
	for i := 1; i <= 2; i++ {
		id, _ := publishPost(t, site, fmt.Sprintf("Published during a restart %d", i))
		refs = append(refs, fmt.Sprintf("'post:%d'", id))
		time.Sleep(2 * time.Second)
	}
	where := "object_ref IN (" + strings.Join(refs, ",") + ")"
	for _, r := range outboxRows(t, site, where) {
		if r.State != "pending" || !strings.Contains(r.LastError, "network") {
			t.Fatalf("while the sidecar is down: %+v", r)
		}
	}
	time.Sleep(3 * time.Second) // down for about 7 s in all
	back := time.Now()
	sc.restartSame()
	keys := map[string]bool{}
	for _, r := range outboxRows(t, site, where) {
		keys["site::"+r.Key] = true
	}
	var arrived []time.Duration
	waitFor(t, 20*time.Second, "the events published during the restart to reach the target", func() bool {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		arrived = arrived[:0]
		for _, g := range tg.got {
			if keys[g.Envelope["idempotency_key"].(string)] {
				arrived = append(arrived, g.At.Sub(back))
			}
		}
		return len(arrived) == len(keys)
	})
	t.Logf("sidecar down about 7 s; the %d posts published meanwhile arrived %v after its return", len(keys), arrived)

	// None lost, none sent twice: each row sent, each event delivered once.
	time.Sleep(2 * time.Second)
	for _, r := range outboxRows(t, site, where) {
		if r.State != "sent" || r.Attempts != 1 {
			t.Errorf("outbox row after the catch-up: %+v (want sent, in 1 counted attempt)", r)
		}
	}
	tg.mu.Lock()
	n := 0
	for _, g := range tg.got {
		if keys[g.Envelope["idempotency_key"].(string)] {
			n++
		}
	}
	tg.mu.Unlock()
	if n != len(keys) {
		t.Fatalf("the target got %d deliveries of %d events", n, len(keys))
	}
	tg.checkAuthentic()
}
