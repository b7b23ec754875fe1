package relaytest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// The suite's tests of relay.Queue: Enqueue here; Claim, Complete, Pending
// and NextDue in claim.go.

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
