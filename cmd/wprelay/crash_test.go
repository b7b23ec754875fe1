//go:build integration

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"encoding/json"
)

// TestE2E_Crash_Kill9MidBurst sends a burst of concurrent signed events,
// SIGKILLs the sidecar in the middle of it, restarts it on the same data dir
// and checks that every event that was answered 202 is delivered at least
// once. It reports acknowledged, delivered, lost and duplicate counts.
func TestE2E_Crash_Kill9MidBurst(t *testing.T) {
	tg := newTarget(t, nil)
	dir := t.TempDir()
	sc := startSidecar(t, dir, e2eConfig(tg.URL(), ""))

	const total, clients, killAfter = 4000, 32, 1500
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		nAcked  atomic.Int64
		killed  = make(chan struct{})
		once    sync.Once
		next    atomic.Int64
		refused atomic.Int64
	)
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				select {
				case <-killed:
					return
				default:
				}
				body := stripeEvent(fmt.Sprintf("evt_crash_%d", i), "invoice.created")
				req, _ := http.NewRequest("POST", sc.public+"/hooks/stripe", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Stripe-Signature", signStripe(body, stripeSecret, time.Now()))
				resp, err := client.Do(req)
				if err != nil {
					refused.Add(1)
					continue
				}
				var r struct {
					ID string `json:"id"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if resp.StatusCode == 202 {
					mu.Lock()
					acked[r.ID] = true
					mu.Unlock()
					if nAcked.Add(1) == killAfter {
						once.Do(func() {
							sc.kill9()
							close(killed)
						})
					}
				}
			}
		})
	}
	wg.Wait()
	once.Do(func() { sc.kill9(); close(killed) })
	before := len(tg.delivered())

	sc.start() // same data dir, same config
	deadline := time.Now().Add(60 * time.Second)
	lost := 0
	for {
		got := tg.delivered()
		lost = 0
		mu.Lock()
		for id := range acked {
			if got[id] == 0 {
				lost++
			}
		}
		mu.Unlock()
		if lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := tg.delivered()
	dups := 0
	for _, n := range got {
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("crash test: acknowledged %d, delivered %d distinct (%d before the kill), lost %d, duplicates delivered %d, requests cut by the kill %d",
		len(acked), len(got), before, lost, dups, refused.Load())
	if lost != 0 {
		t.Fatalf("%d acknowledged events were never delivered", lost)
	}
	if len(acked) < killAfter {
		t.Fatalf("only %d events acknowledged; the kill came too early to mean anything", len(acked))
	}
	tg.checkAuthentic()
}

// TestE2E_Shutdown_SIGTERMDrains checks that SIGTERM during delivery exits
// cleanly (exit 0) and that what was queued is delivered after a restart.
func TestE2E_Shutdown_SIGTERMDrains(t *testing.T) {
	tg := newTarget(t, func(int, string) answer { return answer{status: 200, delay: 300 * time.Millisecond} })
	dir := t.TempDir()
	sc := startSidecar(t, dir, e2eConfig(tg.URL(), ""))
	var ids []string
	for i := range 40 {
		body := stripeEvent(fmt.Sprintf("evt_term_%d", i), "invoice.created")
		r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
		if r.Status != 202 {
			t.Fatalf("%d %v", r.Status, r.Body)
		}
		ids = append(ids, r.Body["id"].(string))
	}
	start := time.Now()
	sc.stop() // fails the test on a non-zero exit or after 20 s
	t.Logf("SIGTERM to exit: %v", time.Since(start))
	sc.start()
	for _, id := range ids {
		sc.waitEvent(id, "delivered", 20*time.Second)
	}
	tg.checkAuthentic()
}
