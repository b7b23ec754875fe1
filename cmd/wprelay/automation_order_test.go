//go:build integration

package main

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Events about one subject that arrive out of order, several at once,
// while the target is down, are delivered in occurred_at order once it is
// back, one at a time per subject and subjects in parallel; a coalescing
// target gets only each subject's newest; an event older than one already
// delivered goes out marked X-Wprelay-Out-Of-Order.
func TestAutomation_Ordering_OccurredAtOrderAndCoalescing(t *testing.T) {
	var up atomic.Bool
	var mu sync.Mutex
	inflight, peak := map[string]int{}, 0
	h := newHook(t, func(path string, n int, r hookReq) (int, string, map[string]string) {
		if !up.Load() {
			return 503, `{}`, map[string]string{"Retry-After": "1"}
		}
		key := path + r.field("subject.id")
		mu.Lock()
		inflight[key]++
		peak = max(peak, inflight[key])
		mu.Unlock()
		time.Sleep(time.Duration(5+rand.IntN(10)) * time.Millisecond)
		mu.Lock()
		inflight[key]--
		mu.Unlock()
		return 200, `{}`, nil
	})
	sc := startSidecar(t, t.TempDir(), automationConfig(`
  - {name: crm, kind: http, url: "`+h.srv.URL+`/crm", allow_private: true, ordering: subject, concurrency: 8,
     max_backoff: 1s, max_attempts: 50, breaker: {failures: 1000}}
  - {name: latest, kind: http, url: "`+h.srv.URL+`/latest", allow_private: true, ordering: subject, coalesce: true,
     concurrency: 8, max_backoff: 1s, max_attempts: 50, breaker: {failures: 1000}}`, `
  - {source: crm, to: [crm, latest]}`))
	url := sc.public + "/hooks/crm"
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	const subjects, per = 3, 5
	type sent struct{ subject, at string }
	var all []sent
	for s := range subjects {
		for i := range per {
			all = append(all, sent{fmt.Sprintf("c_%d", s), base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)})
		}
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	// Sent by four senders at once.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(all); i += 4 {
				at, _ := time.Parse(time.RFC3339, all[i].at)
				sendStandard(t, url, wpSigning, crmEvent("contact.updated", all[i].subject, at, map[string]any{"at": all[i].at}))
			}
		})
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond) // the attempts under way end (503)
	up.Store(true)

	waitFor(t, 20*time.Second, "every delivery to crm and latest", func() bool {
		return len(h.ok("/crm")) == subjects*per && len(h.ok("/latest")) == subjects
	})
	got := map[string][]string{}
	for _, r := range h.ok("/crm") {
		got[r.field("subject.id")] = append(got[r.field("subject.id")], r.field("data.at"))
		if r.Header.Get("X-Wprelay-Out-Of-Order") != "" {
			t.Errorf("a delivery marked out of order: %s", r.Body)
		}
	}
	for s := range subjects {
		seq := got[fmt.Sprintf("c_%d", s)]
		for i := range seq {
			if want := base.Add(time.Duration(i) * time.Second).Format(time.RFC3339); seq[i] != want {
				t.Fatalf("subject c_%d delivered in the order %v", s, seq)
			}
		}
	}
	for _, r := range h.ok("/latest") {
		if want := base.Add((per - 1) * time.Second).Format(time.RFC3339); r.field("data.at") != want {
			t.Errorf("coalescing target got %s for %s, want only the newest (%s)", r.field("data.at"), r.field("subject.id"), want)
		}
	}
	mu.Lock()
	if peak > 1 {
		t.Errorf("%d deliveries of one subject in flight at once", peak)
	}
	mu.Unlock()

	// A late event, older than what was delivered: out of order.
	late := sendStandard(t, url, wpSigning, crmEvent("contact.updated", "c_0", base.Add(1500*time.Millisecond), map[string]any{"at": "late"}))
	ev := sc.waitDetail(late, 10*time.Second, "the late event", func(e eventDetail) bool { return e.Status == "delivered" })
	if !ev.delivery("crm").OutOfOrder || !ev.delivery("latest").OutOfOrder {
		t.Fatalf("late deliveries: %+v", ev.Deliveries)
	}
	reqs := h.ok("/crm")
	if last := reqs[len(reqs)-1]; last.field("data.at") != "late" || last.Header.Get("X-Wprelay-Out-Of-Order") != "true" {
		t.Fatalf("late request: %v %s", last.Header, last.Body)
	}
	var skipped int
	var list struct {
		Events []eventDetail `json:"events"`
	}
	sc.adminDo("GET", "/admin/v1/events?limit=100", "", &list)
	for _, e := range list.Events {
		if d := e.delivery("latest"); d.Status == "skipped" {
			skipped++
		}
	}
	t.Logf("crm: %d attempts for %d events (503s while down); latest: %d sent, %d coalesced", h.count("/crm"), subjects*per+1, len(h.ok("/latest")), skipped)
	if skipped != subjects*(per-1) {
		t.Errorf("%d deliveries coalesced, want %d", skipped, subjects*(per-1))
	}
}
