package relaytest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// The suite's tests of relay.Queue: Enqueue, Claim, Complete, Pending and
// NextDue.

// --- Enqueue

func testEnqueueNewIDs(f *fixture) {
	outs := f.enqueue(in("k1", t0, "a"), in("k2", t0, "a"), in("k3", t0))
	seen := map[string]bool{}
	for i, o := range outs {
		if o.ID == "" || o.Duplicate || o.Conflict {
			f.t.Fatalf("outcome %d = %+v, want a new id", i, o)
		}
		if seen[o.ID] {
			f.t.Fatalf("outcome %d: id %s returned twice", i, o.ID)
		}
		seen[o.ID] = true
		if e := f.event(o.ID); e.ID != o.ID || e.IdempotencyKey != fmt.Sprintf("k%d", i+1) {
			f.t.Errorf("Event(%s) = id %s key %s", o.ID, e.ID, e.IdempotencyKey)
		}
	}
	if d := f.delivery(outs[0].ID, "a"); d.EventID != outs[0].ID {
		f.t.Errorf("delivery EventID = %q, want %q", d.EventID, outs[0].ID)
	}
}

func testEnqueueGivenID(f *fixture) {
	e := in("k1", t0, "a")
	e.Event.ID = "0194f3c8-0000-7000-8000-000000000001"
	if id := f.add(e); id != e.Event.ID {
		f.t.Errorf("id = %s, want the given %s", id, e.Event.ID)
	}
	f.event(e.Event.ID)
}

func testEnqueueDuplicate(f *fixture) {
	first := f.add(in("k1", t0, "a"))
	out := f.enqueue(in("k1", t0.Add(time.Minute), "a"))[0]
	if !out.Duplicate || out.Conflict || out.ID != first {
		f.t.Errorf("second enqueue = %+v, want duplicate of %s", out, first)
	}
	f.wantIDs("events", f.events(relay.EventFilter{}), []string{first})
	f.wantPending(1)
}

func testEnqueueDuplicateInBatch(f *fixture) {
	outs := f.enqueue(in("k1", t0, "a"), in("k2", t0, "a"), in("k1", t0, "a"))
	if outs[0].Duplicate || outs[0].Conflict || outs[0].ID == "" {
		f.t.Fatalf("first = %+v, want new", outs[0])
	}
	if !outs[2].Duplicate || outs[2].Conflict || outs[2].ID != outs[0].ID {
		f.t.Errorf("third = %+v, want duplicate of %s", outs[2], outs[0].ID)
	}
	if len(f.events(relay.EventFilter{})) != 2 {
		f.t.Errorf("want 2 events stored")
	}
	f.wantPending(2)
}

func testEnqueueConflict(f *fixture) {
	first := f.add(in("k1", t0, "a"))
	other := in("k1", t0.Add(time.Minute), "a")
	other.BodyHash = sha256.Sum256([]byte("another body"))
	out := f.enqueue(other)[0]
	if !out.Conflict || out.Duplicate || out.ID != first {
		f.t.Errorf("enqueue with another body = %+v, want conflict with %s", out, first)
	}
	f.wantIDs("events", f.events(relay.EventFilter{}), []string{first})
	f.wantPending(1)
}

func testEnqueueConflictInBatch(f *fixture) {
	other := in("k1", t0, "a")
	other.BodyHash = sha256.Sum256([]byte("another body"))
	outs := f.enqueue(in("k1", t0, "a"), other)
	if !outs[1].Conflict || outs[1].Duplicate || outs[1].ID != outs[0].ID {
		f.t.Errorf("second = %+v, want conflict with %s", outs[1], outs[0].ID)
	}
	f.wantPending(1)
}

func testEnqueueNonceReplayed(f *fixture) {
	first := f.enqueueBatch(&relay.Batch{Nonce: "jti-1", NonceExpires: t0.Add(5 * time.Minute),
		Events: []relay.Incoming{in("k1", t0, "a")}})
	_, err := f.s.Enqueue(f.ctx, &relay.Batch{Nonce: "jti-1", NonceExpires: t0.Add(5 * time.Minute),
		Events: []relay.Incoming{in("k2", t0, "a"), in("k3", t0, "a")}})
	if !errors.Is(err, relay.ErrReplayed) {
		f.t.Fatalf("replayed nonce: err = %v, want relay.ErrReplayed", err)
	}
	f.wantIDs("events", f.events(relay.EventFilter{}), []string{first[0].ID})
	f.wantPending(1)
	// Nothing of the refused batch was kept: its keys are new.
	outs := f.enqueue(in("k2", t0, "a"), in("k3", t0, "a"))
	if outs[0].Duplicate || outs[1].Duplicate {
		f.t.Errorf("keys of the refused batch were stored: %+v", outs)
	}
	// Another nonce is fine.
	f.enqueueBatch(&relay.Batch{Nonce: "jti-2", NonceExpires: t0.Add(5 * time.Minute),
		Events: []relay.Incoming{in("k4", t0, "a")}})
}

// A nonce is single-use whatever expiry comes with it: a token that
// reuses a jti with another exp is refused too.
func testEnqueueNonceReplayedOtherExpiry(f *fixture) {
	f.enqueueBatch(&relay.Batch{Nonce: "jti-1", NonceExpires: t0.Add(5 * time.Minute),
		Events: []relay.Incoming{in("k1", t0, "a")}})
	for _, exp := range []time.Time{t0.Add(6 * time.Minute), t0.Add(4 * time.Minute)} {
		_, err := f.s.Enqueue(f.ctx, &relay.Batch{Nonce: "jti-1", NonceExpires: exp,
			Events: []relay.Incoming{in("k2", t0, "a")}})
		if !errors.Is(err, relay.ErrReplayed) {
			f.t.Errorf("jti reused with exp %v: err = %v, want relay.ErrReplayed", exp, err)
		}
	}
	f.wantPending(1)
}

func testEnqueueAllOrNothing(f *fixture) {
	bad := in("", t0, "a")
	if _, err := f.s.Enqueue(f.ctx, &relay.Batch{Events: []relay.Incoming{in("k1", t0, "a"), bad}}); err == nil {
		f.t.Fatal("Enqueue with an event without idempotency key succeeded")
	}
	f.wantIDs("events", f.events(relay.EventFilter{}), nil)
	f.wantPending(0)
	f.add(in("k1", t0, "a")) // the key was not kept
}

func testEnqueueEventStatus(f *fixture) {
	skipped := in("skipped", t0, "a")
	skipped.Event.Deliveries[0].Status = relay.DeliverySkipped
	mixed := in("mixed", t0, "a", "b")
	mixed.Event.Deliveries[1].Status = relay.DeliverySkipped
	ping := in("ping", t0)
	ping.Event.Status = relay.EventDiscarded
	for _, tc := range []struct {
		in   relay.Incoming
		want string
	}{
		{in("queued", t0, "a"), relay.EventQueued},
		{in("discarded", t0), relay.EventDiscarded},
		{ping, relay.EventDiscarded},
		{skipped, relay.EventDelivered},
		{mixed, relay.EventQueued},
	} {
		f.wantStatus(f.add(tc.in), tc.want)
	}
	if jobs := f.claim("b", t0.Add(time.Hour), 10); len(jobs) != 0 {
		f.t.Errorf("a skipped delivery was claimed: %+v", jobs)
	}
	f.wantPending(2)
}

func testEnqueueConcurrent(f *fixture) {
	const workers, keys, perWorker = 32, 16, 8
	type sent struct {
		key string
		out relay.Outcome
	}
	var (
		mu   sync.Mutex
		all  []sent
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for g := range workers {
		wg.Go(func() {
			for i := range perWorker {
				key := fmt.Sprintf("k%02d", (g+i)%keys)
				outs, err := f.s.Enqueue(f.ctx, &relay.Batch{Events: []relay.Incoming{in(key, t0, "a")}})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				all = append(all, sent{key, outs[0]})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.t.Fatalf("concurrent Enqueue: %v", err)
	}
	ids, news := map[string]string{}, map[string]int{}
	for _, s := range all {
		if s.out.Conflict {
			f.t.Errorf("%s: conflict", s.key)
		}
		if id, ok := ids[s.key]; ok && id != s.out.ID {
			f.t.Errorf("%s: ids %s and %s", s.key, id, s.out.ID)
		}
		ids[s.key] = s.out.ID
		if !s.out.Duplicate {
			news[s.key]++
		}
	}
	for key := range ids {
		if news[key] != 1 {
			f.t.Errorf("%s: stored %d times", key, news[key])
		}
	}
	if got := len(f.events(relay.EventFilter{})); got != keys {
		f.t.Errorf("%d events stored, want %d", got, keys)
	}
	f.wantPending(keys)
}

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
