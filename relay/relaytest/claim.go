// Conformance cases of Claim, Complete, Pending and NextDue.

package relaytest

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// --- Claim

func testClaimDueOnly(f *fixture) {
	e := in("k1", t0, "a")
	e.Event.Deliveries[0].NextAt = t0.Add(time.Minute)
	id := f.add(e)
	if jobs := f.claim("a", t0.Add(59*time.Second), 10); len(jobs) != 0 {
		f.t.Fatalf("claimed %d deliveries before they were due", len(jobs))
	}
	jobs := f.claim("a", t0.Add(time.Minute), 10) // due at now: claimed
	if len(jobs) != 1 || jobs[0].EventID != id || jobs[0].Target != "a" {
		f.t.Fatalf("jobs = %+v, want %s:a", jobs, id)
	}
}

func testClaimOnlyTarget(f *fixture) {
	id := f.add(in("k1", t0, "a", "b"))
	other := f.add(in("k2", t0, "b"))
	jobs := f.claim("a", t0, 10)
	if len(jobs) != 1 || jobs[0].EventID != id || jobs[0].Target != "a" {
		f.t.Fatalf("Claim a = %+v, want only %s:a", jobs, id)
	}
	jobs = f.claim("b", t0, 10)
	if len(jobs) != 2 {
		f.t.Fatalf("Claim b = %+v, want both events' b deliveries", jobs)
	}
	got := []string{jobs[0].EventID, jobs[1].EventID}
	slices.Sort(got)
	want := []string{id, other}
	slices.Sort(want)
	if !slices.Equal(got, want) || jobs[0].Target != "b" || jobs[1].Target != "b" {
		f.t.Fatalf("Claim b = %+v, want both events' b deliveries", jobs)
	}
	if jobs := f.claim("c", t0, 10); len(jobs) != 0 {
		f.t.Fatalf("Claim c = %+v, want none", jobs)
	}
}

func testClaimOldestDueFirst(f *fixture) {
	var ids []string
	for i, due := range []time.Duration{3, 1, 2} {
		e := in(fmt.Sprintf("k%d", i), t0, "a")
		e.Event.Deliveries[0].NextAt = t0.Add(due * time.Second)
		ids = append(ids, f.add(e))
	}
	jobs := f.claim("a", t0.Add(10*time.Second), 2)
	f.wantIDs("first claim", jobIDs(jobs), []string{ids[1], ids[2]})
	jobs = f.claim("a", t0.Add(10*time.Second), 2)
	f.wantIDs("second claim", jobIDs(jobs), []string{ids[0]})
}

func jobIDs(jobs []relay.Job) []string {
	ids := []string{}
	for _, j := range jobs {
		ids = append(ids, j.EventID)
	}
	return ids
}

func testClaimRespectsN(f *fixture) {
	for i := range 5 {
		f.add(in(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Second), "a"))
	}
	now := t0.Add(time.Minute)
	seen := map[string]bool{}
	for _, want := range []int{2, 2, 1, 0} {
		jobs := f.claim("a", now, 2)
		if len(jobs) != want {
			f.t.Fatalf("Claim n=2 returned %d jobs, want %d", len(jobs), want)
		}
		for _, j := range jobs {
			if seen[j.EventID] {
				f.t.Fatalf("%s claimed twice", j.EventID)
			}
			seen[j.EventID] = true
		}
	}
	if jobs := f.claim("a", now, 0); len(jobs) != 0 {
		f.t.Fatalf("Claim n=0 returned %d jobs", len(jobs))
	}
}

func testClaimLease(f *fixture) {
	id := f.add(in("k1", t0, "a"))
	if jobs := f.claim("a", t0, 10); len(jobs) != 1 {
		f.t.Fatalf("first claim: %d jobs, want 1", len(jobs))
	}
	f.wantDelivery(id, "a", relay.DeliveryInFlight)
	f.wantPending(1) // in flight is not final
	if jobs := f.claim("a", t0.Add(lease-time.Second), 10); len(jobs) != 0 {
		f.t.Fatalf("claimed again while leased: %+v", jobs)
	}
	jobs := f.claim("a", t0.Add(lease+time.Second), 10)
	if len(jobs) != 1 || jobs[0].EventID != id || jobs[0].Attempts != 0 {
		f.t.Fatalf("after the lease ran out: %+v, want %s again with 0 attempts", jobs, id)
	}
	f.complete(result(jobs[0], t0.Add(lease+2*time.Second), relay.DeliverySucceeded))
	f.wantStatus(id, relay.EventDelivered)
}

func testClaimJob(f *fixture) {
	e := in("k1", t0, "a")
	e.Event.Source, e.Event.Tenant, e.Event.Type = "gh", "acme", "push"
	e.Event.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	id := f.add(e)
	jobs := f.claim("a", t0, 1)
	if len(jobs) != 1 {
		f.t.Fatalf("%d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	if j.EventID != id || j.Target != "a" || j.Type != "push" || j.Source != "gh" || j.Tenant != "acme" ||
		j.Attempts != 0 || j.Tries != 0 || !j.Since.Equal(t0) || j.TraceParent != e.Event.TraceParent {
		f.t.Errorf("job = %+v", j)
	}
	if !jsonEqual(j.Envelope, e.Event.Envelope) {
		f.t.Errorf("job envelope = %s, want %s", j.Envelope, e.Event.Envelope)
	}
}

// --- Complete

func testCompleteSucceeded(f *fixture) {
	id := f.add(in("k1", t0, "a"))
	f.wantStatus(id, relay.EventQueued)
	f.settle("a", t0.Add(time.Second), relay.DeliverySucceeded)
	f.wantStatus(id, relay.EventDelivered)
	d := f.wantDelivery(id, "a", relay.DeliverySucceeded)
	if d.Attempts != 1 || d.LastStatus != 200 {
		f.t.Errorf("delivery = %+v, want 1 attempt, last status 200", d)
	}
	f.wantPending(0)
	if jobs := f.claim("a", t0.Add(time.Hour), 10); len(jobs) != 0 {
		f.t.Errorf("a succeeded delivery was claimed again")
	}
	if _, ok, err := f.s.NextDue(f.ctx, "a"); err != nil || ok {
		f.t.Errorf("NextDue after success: ok %v, err %v; want none", ok, err)
	}
}

func testCompleteRetrying(f *fixture) {
	id := f.add(in("k1", t0, "a"))
	jobs := f.claim("a", t0, 1)
	r := result(jobs[0], t0, relay.DeliveryRetrying)
	r.NextAt = t0.Add(5 * time.Minute)
	f.complete(r)
	f.wantStatus(id, relay.EventQueued)
	d := f.wantDelivery(id, "a", relay.DeliveryRetrying)
	if !d.NextAt.Equal(r.NextAt) || d.Attempts != 1 || d.LastStatus != 503 || d.LastError != r.Attempt.Error {
		f.t.Errorf("delivery = %+v, want next_at %v, 1 attempt, last 503", d, r.NextAt)
	}
	f.wantPending(1)
	if jobs := f.claim("a", r.NextAt.Add(-time.Second), 10); len(jobs) != 0 {
		f.t.Fatalf("claimed before NextAt")
	}
	jobs = f.claim("a", r.NextAt, 10)
	if len(jobs) != 1 || jobs[0].Attempts != 1 || jobs[0].Tries != 1 || !jobs[0].Since.Equal(t0) {
		f.t.Fatalf("retry job = %+v, want attempts 1, tries 1, since t0", jobs)
	}
}

func testCompleteDead(f *fixture) {
	id := f.add(in("k1", t0, "a"))
	at := t0.Add(time.Second)
	f.settle("a", at, relay.DeliveryDead)
	f.wantStatus(id, relay.EventFailed)
	d := f.wantDelivery(id, "a", relay.DeliveryDead)
	if !d.DeadAt.Equal(at) || d.Reason != "permanent 400" || d.LastStatus != 400 {
		f.t.Errorf("delivery = %+v, want dead at %v with its reason", d, at)
	}
	f.wantPending(0)
	f.wantIDs("dead letters", f.dead(relay.DeadFilter{}), []string{id + ":a"})
	if jobs := f.claim("a", t0.Add(time.Hour), 10); len(jobs) != 0 {
		f.t.Errorf("a dead delivery was claimed")
	}
}

func testCompleteEventStatus(f *fixture) {
	now := t0.Add(time.Second)
	both := f.add(in("both", t0, "ok", "ok2"))             // succeeded + succeeded
	okPending := f.add(in("okpending", t0, "ok", "later")) // succeeded + pending
	okSkipped := in("okskipped", t0, "ok", "dry")
	okSkipped.Event.Deliveries[1].Status = relay.DeliverySkipped
	okSkippedID := f.add(okSkipped)
	deadPending := f.add(in("deadpending", t0, "bad", "later2"))
	deadOK := f.add(in("deadok", t0, "bad", "ok2"))
	f.settle("ok", now, relay.DeliverySucceeded)
	f.settle("ok2", now, relay.DeliverySucceeded)
	f.settle("bad", now, relay.DeliveryDead)
	f.wantStatus(both, relay.EventDelivered)
	f.wantStatus(okPending, relay.EventQueued)
	f.wantStatus(okSkippedID, relay.EventDelivered)
	f.wantStatus(deadPending, relay.EventFailed)
	f.wantStatus(deadOK, relay.EventFailed)
	// A retry keeps the event queued; then success delivers it.
	jobs := f.claim("later", now, 10)
	f.complete(result(jobs[0], now, relay.DeliveryRetrying))
	f.wantStatus(okPending, relay.EventQueued)
	f.settle("later", now.Add(time.Hour), relay.DeliverySucceeded)
	f.wantStatus(okPending, relay.EventDelivered)
}

func testCompleteNotInFlight(f *fixture) {
	id := f.add(in("k1", t0, "a"))
	r := relay.Result{EventID: id, Target: "a", Attempt: relay.Attempt{At: t0, Status: 200}, Status: relay.DeliverySucceeded}
	if err := f.s.Complete(f.ctx, r); !errors.Is(err, relay.ErrNotFound) {
		f.t.Errorf("Complete of a pending delivery: err = %v, want relay.ErrNotFound", err)
	}
	unknown := r
	unknown.EventID = "no-such-event"
	if err := f.s.Complete(f.ctx, unknown); !errors.Is(err, relay.ErrNotFound) {
		f.t.Errorf("Complete of an unknown delivery: err = %v, want relay.ErrNotFound", err)
	}
	f.claim("a", t0, 1)
	f.complete(r)
	if err := f.s.Complete(f.ctx, r); !errors.Is(err, relay.ErrNotFound) {
		f.t.Errorf("second Complete: err = %v, want relay.ErrNotFound", err)
	}
	d := f.delivery(id, "a")
	if d.Attempts != 1 || len(d.History) != 1 {
		f.t.Errorf("failed Completes changed the delivery: %+v", d)
	}
}

func testCompleteHistory(f *fixture) {
	id := f.add(in("k1", t0, "a"))
	want := []relay.Attempt{
		{At: t0, Status: 0, DurationMS: 10000, Error: "timeout"},
		{At: t0.Add(time.Minute), Status: 503, DurationMS: 20, Error: "503 Service Unavailable", Response: "busy"},
		{At: t0.Add(2 * time.Minute), Status: 202, DurationMS: 30, Response: `{"ok":true}`},
	}
	for i, a := range want {
		jobs := f.claim("a", a.At, 1)
		if len(jobs) != 1 || jobs[0].Attempts != i {
			f.t.Fatalf("attempt %d: jobs %+v", i, jobs)
		}
		r := relay.Result{EventID: id, Target: "a", Attempt: a, Status: relay.DeliveryRetrying, NextAt: a.At.Add(time.Minute)}
		if i == len(want)-1 {
			r.Status, r.NextAt = relay.DeliverySucceeded, time.Time{}
		}
		f.complete(r)
	}
	d := f.wantDelivery(id, "a", relay.DeliverySucceeded)
	if d.Attempts != 3 || d.LastStatus != 202 || d.LastError != "" {
		f.t.Errorf("delivery = %+v, want 3 attempts, last status 202, no error", d)
	}
	if len(d.History) != len(want) {
		f.t.Fatalf("history has %d attempts, want %d", len(d.History), len(want))
	}
	for i, a := range d.History {
		w := want[i]
		if !a.At.Equal(w.At) || a.Status != w.Status || a.DurationMS != w.DurationMS || a.Error != w.Error || a.Response != w.Response {
			f.t.Errorf("history[%d] = %+v, want %+v", i, a, w)
		}
	}
}

// --- Pending, NextDue

func testPending(f *fixture) {
	f.wantPending(0)
	skipped := in("k0", t0, "a", "dry")
	skipped.Event.Deliveries[1].Status = relay.DeliverySkipped
	id := f.add(skipped)
	f.add(in("k1", t0, "a", "b"))
	f.add(in("k2", t0))
	f.wantPending(3)
	f.claim("a", t0, 10)
	f.wantPending(3)
	f.settle("b", t0, relay.DeliveryDead)
	f.wantPending(2)
	f.complete(result(relay.Job{EventID: id, Target: "a"}, t0, relay.DeliveryRetrying))
	f.wantPending(2)
	f.settle("a", t0.Add(time.Hour), relay.DeliverySucceeded)
	f.wantPending(0)
	if n, err := f.s.ReplayDead(f.ctx, relay.DeadFilter{}, t0.Add(time.Hour)); err != nil || n != 1 {
		f.t.Fatalf("ReplayDead = %d, %v", n, err)
	}
	f.wantPending(1)
}

func testNextDue(f *fixture) {
	if _, ok, err := f.s.NextDue(f.ctx, "a"); err != nil || ok {
		f.t.Fatalf("NextDue on an empty store: ok %v, err %v", ok, err)
	}
	due := func(key, target string, at time.Duration) {
		e := in(key, t0, target)
		e.Event.Deliveries[0].NextAt = t0.Add(at * time.Minute)
		f.add(e)
	}
	due("k1", "a", 5)
	due("k2", "a", 2)
	due("k3", "b", 1)
	want := func(target string, at time.Time) {
		f.t.Helper()
		got, ok, err := f.s.NextDue(f.ctx, target)
		if err != nil || !ok || !got.Equal(at) {
			f.t.Errorf("NextDue %s = %v, %v, %v; want %v", target, got, ok, err, at)
		}
	}
	want("a", t0.Add(2*time.Minute))
	want("b", t0.Add(time.Minute))
	if _, ok, _ := f.s.NextDue(f.ctx, "c"); ok {
		f.t.Errorf("NextDue c: ok, want none")
	}
	// Claiming the earliest leaves the next one; a long lease keeps the
	// claimed one out of the way.
	now := t0.Add(3 * time.Minute)
	if jobs := f.claimLease("a", now, 10, 10*time.Minute); len(jobs) != 1 {
		f.t.Fatalf("claimed %d, want 1", len(jobs))
	}
	want("a", t0.Add(5*time.Minute))
	// Every delivery of b in flight: nothing due before the lease ends.
	jobs := f.claimLease("b", now, 10, 10*time.Minute)
	if at, ok, err := f.s.NextDue(f.ctx, "b"); err != nil || (ok && at.Before(now.Add(10*time.Minute))) {
		f.t.Errorf("NextDue b with all in flight = %v, %v, %v; want none or the lease end", at, ok, err)
	}
	f.complete(result(jobs[0], now, relay.DeliverySucceeded))
	if _, ok, _ := f.s.NextDue(f.ctx, "b"); ok {
		f.t.Errorf("NextDue b after success: ok, want none")
	}
}
