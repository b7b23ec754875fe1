package relaytest

import (
	"fmt"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// The suite's tests of per-subject ordering (relay.Order), mirror copies,
// dry-run requests, result ids and counters.

// about returns an Incoming like in, whose event occurred at occurred, with
// one pending delivery to target ordered by subject under policy o.
func about(key, subject string, occurred time.Time, target string, o relay.Order) relay.Incoming {
	e := in(key, t0, target)
	e.Event.OccurredAt = occurred
	o.Key = subject
	e.Event.Deliveries[0].Order = &o
	return e
}

// at is the suite's clock plus i minutes.
func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }

// claimIDs claims up to n deliveries of target at now and returns their
// event ids, in the order Claim returned them.
func (f *fixture) claimIDs(target string, now time.Time, n int) []string {
	f.t.Helper()
	return jobIDs(f.claim(target, now, n))
}

func testOrderOccurredAtOrder(f *fixture) {
	// Received newest first; handed out oldest first, one at a time.
	c := f.add(about("k3", "post:1", at(-1), "a", relay.Order{}))
	b := f.add(about("k2", "post:1", at(-2), "a", relay.Order{}))
	a := f.add(about("k1", "post:1", at(-3), "a", relay.Order{}))
	other := f.add(about("k4", "post:2", at(-5), "a", relay.Order{}))
	now := t0.Add(time.Second)
	got := f.claimIDs("a", now, 10)
	f.wantIDs("first claim", sorted(got), sorted([]string{a, other}))
	f.wantIDs("while post:1 is in flight", f.claimIDs("a", now, 10), nil)
	f.wantPending(4)
	f.complete(result(relay.Job{EventID: a, Target: "a"}, now, relay.DeliverySucceeded))
	f.wantIDs("after the first", f.claimIDs("a", now, 10), []string{b})
	f.complete(result(relay.Job{EventID: b, Target: "a"}, now, relay.DeliverySucceeded))
	f.wantIDs("after the second", f.claimIDs("a", now, 10), []string{c})
	f.complete(result(relay.Job{EventID: c, Target: "a"}, now, relay.DeliverySucceeded))
	f.wantIDs("after the last", f.claimIDs("a", now, 10), nil)
	for _, id := range []string{b, c} {
		if d := f.delivery(id, "a"); d.OutOfOrder || d.Status != relay.DeliverySucceeded {
			f.t.Errorf("delivery %s = %+v, want succeeded in order", id, d)
		}
	}
}

func testOrderPerTargetAndKey(f *fixture) {
	// The same subject on two targets, and an unordered delivery: independent.
	e := about("k1", "post:1", at(-2), "a", relay.Order{})
	e.Event.Deliveries = append(e.Event.Deliveries, relay.Delivery{Target: "b", Status: relay.DeliveryPending, NextAt: t0,
		Order: &relay.Order{Key: "post:1"}}, relay.Delivery{Target: "c", Status: relay.DeliveryPending, NextAt: t0})
	first := f.add(e)
	e2 := about("k2", "post:1", at(-1), "a", relay.Order{})
	e2.Event.Deliveries = append(e2.Event.Deliveries, relay.Delivery{Target: "c", Status: relay.DeliveryPending, NextAt: t0})
	second := f.add(e2)
	now := t0.Add(time.Second)
	f.wantIDs("a", f.claimIDs("a", now, 10), []string{first})
	f.wantIDs("b", f.claimIDs("b", now, 10), []string{first})
	f.wantIDs("c (unordered)", sorted(f.claimIDs("c", now, 10)), sorted([]string{first, second}))
}

func testOrderHeldBackIsNotDue(f *fixture) {
	first := f.add(about("k1", "post:1", at(-2), "a", relay.Order{}))
	f.add(about("k2", "post:1", at(-1), "a", relay.Order{}))
	now := t0.Add(time.Second)
	jobs := f.claimLease("a", now, 10, 10*time.Minute)
	if len(jobs) != 1 || jobs[0].EventID != first {
		f.t.Fatalf("claim = %+v, want %s only", jobs, first)
	}
	// The held-back delivery is not due: nothing before the lease ends.
	if at, ok, err := f.s.NextDue(f.ctx, "a"); err != nil || (ok && at.Before(now.Add(10*time.Minute))) {
		f.t.Errorf("NextDue = %v, %v, %v; want none before the lease ends", at, ok, err)
	}
	// A retry keeps the subject blocked until it is due again.
	r := result(jobs[0], now, relay.DeliveryRetrying)
	r.NextAt = now.Add(5 * time.Minute)
	f.complete(r)
	f.wantIDs("while the first retries", f.claimIDs("a", now.Add(time.Minute), 10), nil)
	if at, ok, err := f.s.NextDue(f.ctx, "a"); err != nil || !ok || !at.Equal(r.NextAt) {
		f.t.Errorf("NextDue = %v, %v, %v; want the retry at %v", at, ok, err, r.NextAt)
	}
	f.wantIDs("the retry", f.claimIDs("a", r.NextAt, 10), []string{first})
}

func testOrderDeadReleasesNext(f *fixture) {
	first := f.add(about("k1", "post:1", at(-2), "a", relay.Order{}))
	second := f.add(about("k2", "post:1", at(-1), "a", relay.Order{}))
	f.settle("a", t0, relay.DeliveryDead)
	f.wantIDs("after the first died", f.claimIDs("a", t0, 10), []string{second})
	// Replaying the dead one puts it back in its place: it waits for the
	// one in flight, then goes out marked: a newer event was delivered.
	if n, err := f.s.Replay(f.ctx, first, "a", t0); err != nil || n != 1 {
		f.t.Fatalf("Replay = %d, %v", n, err)
	}
	f.wantIDs("while the second is in flight", f.claimIDs("a", t0, 10), nil)
	f.complete(result(relay.Job{EventID: second, Target: "a"}, t0, relay.DeliverySucceeded))
	jobs := f.claim("a", t0.Add(time.Second), 10)
	if len(jobs) != 1 || jobs[0].EventID != first || !jobs[0].OutOfOrder {
		f.t.Fatalf("replayed = %+v, want %s marked out of order", jobs, first)
	}
}

func testOrderOlderArrivesWhileInFlight(f *fixture) {
	newer := f.add(about("k2", "post:1", at(-1), "a", relay.Order{}))
	f.wantIDs("newer", f.claimIDs("a", t0, 10), []string{newer})
	older := f.add(about("k1", "post:1", at(-2), "a", relay.Order{}))
	f.wantIDs("older, while the newer is in flight", f.claimIDs("a", t0, 10), nil)
	f.complete(result(relay.Job{EventID: newer, Target: "a"}, t0, relay.DeliverySucceeded))
	jobs := f.claim("a", t0, 10)
	if len(jobs) != 1 || jobs[0].EventID != older || !jobs[0].OutOfOrder {
		f.t.Fatalf("older = %+v, want %s marked out of order", jobs, older)
	}
	f.complete(result(jobs[0], t0, relay.DeliverySucceeded))
	if d := f.delivery(older, "a"); !d.OutOfOrder {
		f.t.Errorf("delivery = %+v, want OutOfOrder", d)
	}
	// The newest delivered is still the newer one: a third, between the
	// two, is out of order too.
	mid := f.add(about("k3", "post:1", at(-1).Add(-time.Second), "a", relay.Order{}))
	if jobs := f.claim("a", t0, 10); len(jobs) != 1 || jobs[0].EventID != mid || !jobs[0].OutOfOrder {
		f.t.Fatalf("between = %+v, want %s marked out of order", jobs, mid)
	}
}

func testOrderRetryYieldsToOlder(f *fixture) {
	newer := f.add(about("k2", "post:1", at(-1), "a", relay.Order{}))
	jobs := f.claim("a", t0, 10)
	older := f.add(about("k1", "post:1", at(-2), "a", relay.Order{}))
	r := result(jobs[0], t0, relay.DeliveryRetrying)
	r.NextAt = t0.Add(time.Minute)
	f.complete(r)
	// The older one goes first now; the newer waits for it.
	f.wantIDs("after the retry", f.claimIDs("a", t0.Add(2*time.Minute), 10), []string{older})
	f.complete(result(relay.Job{EventID: older, Target: "a"}, t0.Add(2*time.Minute), relay.DeliverySucceeded))
	jobs = f.claim("a", t0.Add(2*time.Minute), 10)
	if len(jobs) != 1 || jobs[0].EventID != newer || jobs[0].OutOfOrder || jobs[0].Attempts != 1 {
		f.t.Fatalf("then = %+v, want %s (in order, 1 attempt so far)", jobs, newer)
	}
}

func testOrderSkipOutOfOrder(f *fixture) {
	skip := relay.Order{Skip: true}
	newest := f.add(about("k3", "post:1", at(-1), "a", skip))
	f.settle("a", t0, relay.DeliverySucceeded)
	old1 := f.add(about("k1", "post:1", at(-3), "a", skip))
	old2 := f.add(about("k2", "post:1", at(-2), "a", skip))
	later := f.add(about("k4", "post:1", at(0), "a", skip))
	// Both older ones are skipped in one claim; the later one goes out.
	f.wantIDs("claim", f.claimIDs("a", t0.Add(time.Second), 10), []string{later})
	for _, id := range []string{old1, old2} {
		d := f.wantDelivery(id, "a", relay.DeliverySkipped)
		if !strings.Contains(d.Reason, "out of order") || !strings.Contains(d.Reason, newest) {
			f.t.Errorf("reason %q, want out of order naming %s", d.Reason, newest)
		}
		f.wantStatus(id, relay.EventDelivered)
	}
	f.wantPending(1)
}

func testOrderCoalesce(f *fixture) {
	co := relay.Order{Coalesce: true}
	var ids []string
	for i := range 4 {
		ids = append(ids, f.add(about(fmt.Sprintf("k%d", i), "post:1", at(-10+i), "a", co)))
	}
	other := f.add(about("k9", "post:2", at(-20), "a", co))
	f.wantPending(5)
	got := f.claimIDs("a", t0.Add(time.Second), 10)
	f.wantIDs("claim", sorted(got), sorted([]string{ids[3], other}))
	for _, id := range ids[:3] {
		d := f.wantDelivery(id, "a", relay.DeliverySkipped)
		if !strings.Contains(d.Reason, "coalesced") || !strings.Contains(d.Reason, ids[3]) {
			f.t.Errorf("reason %q, want coalesced into %s", d.Reason, ids[3])
		}
		f.wantStatus(id, relay.EventDelivered)
	}
	f.wantPending(2)
	s, err := f.s.Stats(f.ctx)
	if err != nil || s.Deliveries[relay.DeliverySkipped] != 3 || s.Deliveries[relay.DeliveryInFlight] != 2 {
		f.t.Errorf("Stats = %+v, %v; want 3 skipped, 2 in flight", s.Deliveries, err)
	}
	// One arriving while the newest is in flight waits for it.
	late := f.add(about("k5", "post:1", at(-1), "a", co))
	f.wantIDs("while in flight", f.claimIDs("a", t0.Add(time.Second), 10), nil)
	f.complete(result(relay.Job{EventID: ids[3], Target: "a"}, t0, relay.DeliverySucceeded))
	f.wantIDs("then", f.claimIDs("a", t0.Add(time.Second), 10), []string{late})
}

func testOrderUnusableKey(f *fixture) {
	// A key a store cannot index is not ordered (delivered as usual).
	a := f.add(about("k1", "bad\x00key", at(-2), "a", relay.Order{}))
	b := f.add(about("k2", "bad\x00key", at(-1), "a", relay.Order{}))
	f.wantIDs("claim", sorted(f.claimIDs("a", t0, 10)), sorted([]string{a, b}))
}

// --- Mirrors, dry-run requests, result ids

func testMirrorStatus(f *fixture) {
	e := in("k1", t0, "main", "copy")
	e.Event.Deliveries[1].Mirror = true
	id := f.add(e)
	f.wantStatus(id, relay.EventQueued)
	jobs := f.claim("copy", t0, 1)
	if len(jobs) != 1 || !jobs[0].Mirror {
		f.t.Fatalf("mirror job = %+v, want Mirror", jobs)
	}
	f.settle("main", t0, relay.DeliverySucceeded)
	f.wantStatus(id, relay.EventDelivered) // the copy is still in flight
	f.complete(result(jobs[0], t0, relay.DeliveryDead))
	f.wantStatus(id, relay.EventDelivered) // a dead copy does not fail it
	if d := f.wantDelivery(id, "copy", relay.DeliveryDead); !d.Mirror {
		f.t.Errorf("copy = %+v, want Mirror", d)
	}
	f.wantIDs("dead letters", f.dead(relay.DeadFilter{}), []string{id + ":copy"})
	// A dead main delivery fails it whatever the copy does.
	e2 := in("k2", t0, "main2", "copy2")
	e2.Event.Deliveries[1].Mirror = true
	id2 := f.add(e2)
	f.settle("copy2", t0, relay.DeliverySucceeded)
	f.wantStatus(id2, relay.EventQueued)
	f.settle("main2", t0, relay.DeliveryDead)
	f.wantStatus(id2, relay.EventFailed)
}

func testMirrorPendingNotPruned(f *fixture) {
	e := in("k1", t0, "main", "copy")
	e.Event.Deliveries[1].Mirror = true
	id := f.add(e)
	now := t0.Add(time.Hour)
	f.settle("main", now, relay.DeliverySucceeded)
	f.wantStatus(id, relay.EventDelivered)
	if n := f.prune(now, now, 100); n != 0 {
		f.t.Errorf("Prune with a mirror copy pending = %d, want 0", n)
	}
	f.event(id)
	f.settle("copy", now, relay.DeliverySucceeded)
	if n := f.prune(now, now, 100); n != 1 {
		f.t.Errorf("Prune once the copy is done = %d, want 1", n)
	}
}

func testDryRunRequest(f *fixture) {
	req := &relay.Request{Method: "POST", URL: "https://ai.example/v1", Header: map[string][]string{
		"Authorization": {"REDACTED"}, "Content-Type": {"application/json"}}, Body: []byte(`{"input":"hello"}`)}
	e := in("k1", t0, "live", "dry")
	e.Event.Deliveries[1].Status = relay.DeliverySkipped
	e.Event.Deliveries[1].Request = req
	id := f.add(e)
	d := f.wantDelivery(id, "dry", relay.DeliverySkipped)
	if d.Request == nil || d.Request.Method != req.Method || d.Request.URL != req.URL ||
		!jsonEqual(d.Request.Body, req.Body) || d.Request.Header["Authorization"][0] != "REDACTED" {
		f.t.Errorf("request = %+v, want %+v", d.Request, req)
	}
	if live := f.delivery(id, "live"); live.Request != nil {
		f.t.Errorf("live delivery has a request: %+v", live.Request)
	}
	if jobs := f.claim("dry", t0.Add(time.Hour), 10); len(jobs) != 0 {
		f.t.Errorf("a dry-run delivery was claimed")
	}
}

func testCompleteResultID(f *fixture) {
	id := f.add(in("k1", t0, "ai"))
	jobs := f.claim("ai", t0, 1)
	r := result(jobs[0], t0, relay.DeliverySucceeded)
	r.ResultID = "0194f3c8-0000-7000-8000-0000000000aa"
	f.complete(r)
	if d := f.delivery(id, "ai"); d.ResultID != r.ResultID {
		f.t.Errorf("ResultID = %q, want %q", d.ResultID, r.ResultID)
	}
}

// --- Counters

func testCounters(f *fixture) {
	c := f.s
	add := func(name string, n int, exp time.Time) int {
		f.t.Helper()
		v, err := c.Add(f.ctx, name, n, exp)
		if err != nil {
			f.t.Fatalf("Add %s %d: %v", name, n, err)
		}
		return v
	}
	day := t0.Add(24 * time.Hour)
	if v := add("budget:ai:2026-11-28", 0, day); v != 0 {
		f.t.Errorf("new counter = %d", v)
	}
	if v := add("budget:ai:2026-11-28", 3, day); v != 3 {
		f.t.Errorf("after +3 = %d", v)
	}
	if v := add("budget:ai:2026-11-28", 2, day); v != 5 {
		f.t.Errorf("after +2 = %d", v)
	}
	if v := add("budget:ai:2026-11-28", 0, day); v != 5 {
		f.t.Errorf("read = %d", v)
	}
	if v := add("budget:crm:2026-11-28", 1, day.Add(time.Hour)); v != 1 {
		f.t.Errorf("another counter = %d", v)
	}
	if n := f.prune(day.Add(-time.Second), time.Time{}, 100); n != 0 {
		f.t.Errorf("Prune before expiry = %d", n)
	}
	if n := f.prune(day, time.Time{}, 100); n != 1 {
		f.t.Errorf("Prune at expiry = %d, want 1", n)
	}
	if v := add("budget:ai:2026-11-28", 0, day); v != 0 {
		f.t.Errorf("pruned counter = %d, want 0", v)
	}
	if v := add("budget:crm:2026-11-28", 0, day); v != 1 {
		f.t.Errorf("unexpired counter = %d, want 1", v)
	}
}

func sorted(ids []string) []string {
	out := append([]string{}, ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
