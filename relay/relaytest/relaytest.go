// Package relaytest holds test helpers for package relay, above all
// TestStore: the conformance suite that every store (bbolt, MySQL) passes.
package relaytest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/admin"
)

// Store is what a wprelay store implements.
type Store interface {
	relay.Queue
	admin.Store
	relay.Pruner
	relay.Counters
	Close() error
}

// t0 is the suite's fixed clock: every time it passes derives from it.
var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// lease is the lease the suite's claims take unless a test says otherwise.
const lease = 30 * time.Second

// TestStore checks that a store implements the documented behaviour of
// relay.Queue, admin.Store and relay.Pruner. open must return a new, empty
// store for each call; TestStore closes it when the subtest ends (open may
// register its own cleanup too, so Close must tolerate a second call).
// Subtests run in parallel, each on its own store. Times are passed in from
// a fixed clock; nothing sleeps.
//
// Beyond the interfaces' comments, the suite relies on these choices: an
// Incoming without Event.ID gets a new id from the store (with one, that id
// is used); a batch with an event that has no idempotency key is an error;
// an event's status follows its deliveries (failed when one is dead, else
// queued while one is pending, in flight or retrying, else delivered; an
// event without deliveries is discarded); Replay sends succeeded and dead deliveries again and leaves
// skipped ones alone; Stats.OldestDue is the earliest NextAt of a pending or
// retrying delivery.
//
// Ordering (relay.Order): a delivery whose Order.Key a store cannot index
// (it contains a 0x00 byte) is delivered unordered; a held-back delivery is
// neither claimed nor reported by NextDue until its turn; a retrying
// delivery yields its turn to an older one of its subject that arrived
// meanwhile; a skipped delivery's Reason says why; Replay of a final
// ordered delivery puts it back in its subject's queue.
// Mirrors, requests, results: an event's status ignores Mirror deliveries,
// yet Prune keeps it while one is not final; a Request is kept for skipped
// deliveries; Complete keeps Result.ResultID of a succeeded delivery.
// The store also implements relay.Counters.
func TestStore(t *testing.T, open func(t *testing.T) Store) {
	run := func(t *testing.T, name string, test func(f *fixture)) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			test(&fixture{t: t, s: s, ctx: t.Context()})
		})
	}
	t.Run("Enqueue", func(t *testing.T) {
		run(t, "NewIDs", testEnqueueNewIDs)
		run(t, "GivenID", testEnqueueGivenID)
		run(t, "Duplicate", testEnqueueDuplicate)
		run(t, "DuplicateInBatch", testEnqueueDuplicateInBatch)
		run(t, "BodyKey", testEnqueueBodyKey)
		run(t, "Conflict", testEnqueueConflict)
		run(t, "ConflictInBatch", testEnqueueConflictInBatch)
		run(t, "NonceReplayed", testEnqueueNonceReplayed)
		run(t, "NonceReplayedOtherExpiry", testEnqueueNonceReplayedOtherExpiry)
		run(t, "AllOrNothing", testEnqueueAllOrNothing)
		run(t, "EventStatus", testEnqueueEventStatus)
		run(t, "Concurrent", testEnqueueConcurrent)
	})
	t.Run("Claim", func(t *testing.T) {
		run(t, "DueOnly", testClaimDueOnly)
		run(t, "OnlyTarget", testClaimOnlyTarget)
		run(t, "OldestDueFirst", testClaimOldestDueFirst)
		run(t, "RespectsN", testClaimRespectsN)
		run(t, "InFlightUntilLeaseEnds", testClaimLease)
		run(t, "Job", testClaimJob)
	})
	t.Run("Complete", func(t *testing.T) {
		run(t, "Succeeded", testCompleteSucceeded)
		run(t, "Retrying", testCompleteRetrying)
		run(t, "Dead", testCompleteDead)
		run(t, "EventStatus", testCompleteEventStatus)
		run(t, "NotInFlight", testCompleteNotInFlight)
		run(t, "History", testCompleteHistory)
	})
	t.Run("DeadLetters", func(t *testing.T) {
		run(t, "NewestFirst", testDeadNewestFirst)
		run(t, "Filters", testDeadFilters)
		run(t, "Paging", testDeadPaging)
		run(t, "Until", testDeadUntil)
	})
	t.Run("Replay", func(t *testing.T) {
		run(t, "DeadThenDelivered", testReplayDeadThenDelivered)
		run(t, "OneTarget", testReplayOneTarget)
		run(t, "AllTargets", testReplayAllTargets)
		run(t, "InFlightLeftAlone", testReplayInFlight)
		run(t, "NotFound", testReplayNotFound)
		run(t, "ReplayDead", testReplayDead)
		run(t, "ReplayDeadBounded", testReplayDeadBounded)
	})
	t.Run("Events", func(t *testing.T) {
		run(t, "NewestFirst", testEventsNewestFirst)
		run(t, "Filters", testEventsFilters)
		run(t, "Paging", testEventsPaging)
		run(t, "PagingStableWhileNewArrive", testEventsPagingStable)
		run(t, "PagingWhileInserting", testEventsPagingConcurrent)
		run(t, "Detail", testEventDetail)
		run(t, "NotFound", testEventNotFound)
		run(t, "Raw", testRaw)
	})
	t.Run("Order", func(t *testing.T) {
		run(t, "OccurredAtOrder", testOrderOccurredAtOrder)
		run(t, "PerTargetAndKey", testOrderPerTargetAndKey)
		run(t, "HeldBackIsNotDue", testOrderHeldBackIsNotDue)
		run(t, "DeadReleasesNext", testOrderDeadReleasesNext)
		run(t, "OlderArrivesWhileInFlight", testOrderOlderArrivesWhileInFlight)
		run(t, "RetryYieldsToOlder", testOrderRetryYieldsToOlder)
		run(t, "SkipOutOfOrder", testOrderSkipOutOfOrder)
		run(t, "Coalesce", testOrderCoalesce)
		run(t, "UnusableKey", testOrderUnusableKey)
	})
	t.Run("Mirror", func(t *testing.T) {
		run(t, "EventStatus", testMirrorStatus)
		run(t, "PendingNotPruned", testMirrorPendingNotPruned)
	})
	run(t, "DryRunRequest", testDryRunRequest)
	run(t, "ResultID", testCompleteResultID)
	run(t, "Counters", testCounters)
	run(t, "Pending", testPending)
	run(t, "NextDue", testNextDue)
	run(t, "Stats", testStats)
	run(t, "Effects", testEffects)
	t.Run("Export", func(t *testing.T) {
		run(t, "Filters", testExport)
		run(t, "WhileInserting", testExportWhileInserting)
	})
	t.Run("Prune", func(t *testing.T) {
		run(t, "Keys", testPruneKeys)
		run(t, "Nonces", testPruneNonces)
		run(t, "Events", testPruneEvents)
		run(t, "Max", testPruneMax)
		run(t, "RawShared", testRawShared)
		run(t, "RawOf", testRawOf)
	})
}

// fixture is one subtest's store with helpers that fail the test on error.
type fixture struct {
	t   *testing.T
	s   Store
	ctx context.Context
}

// in returns an Incoming for idempotency key key received at at, with one
// pending delivery per target, due at at.
func in(key string, at time.Time, targets ...string) relay.Incoming {
	in := relay.Incoming{
		Event: relay.Event{
			Source:         "stripe",
			Tenant:         "acme",
			Type:           "invoice.created",
			IdempotencyKey: key,
			ReceivedAt:     at,
			OccurredAt:     at.Add(-time.Minute),
			Envelope:       json.RawMessage(fmt.Sprintf(`{"key":%q,"data":{"n":1}}`, key)),
		},
		Raw: &relay.Raw{
			Method: "POST",
			Path:   "/hooks/stripe",
			Header: map[string][]string{"Content-Type": {"application/json"}},
			Body:   []byte(fmt.Sprintf(`{"id":%q}`, key)),
		},
		BodyHash:   sha256.Sum256([]byte(key)),
		KeyExpires: at.Add(7 * 24 * time.Hour),
	}
	for _, target := range targets {
		in.Event.Deliveries = append(in.Event.Deliveries, relay.Delivery{
			Target: target, Status: relay.DeliveryPending, NextAt: at, CreatedAt: at,
		})
	}
	return in
}

// enqueue commits the events as one batch and returns the outcomes.
func (f *fixture) enqueue(ins ...relay.Incoming) []relay.Outcome {
	f.t.Helper()
	return f.enqueueBatch(&relay.Batch{Events: ins})
}

func (f *fixture) enqueueBatch(b *relay.Batch) []relay.Outcome {
	f.t.Helper()
	outs, err := f.s.Enqueue(f.ctx, b)
	if err != nil {
		f.t.Fatalf("Enqueue: %v", err)
	}
	if len(outs) != len(b.Events) {
		f.t.Fatalf("Enqueue: %d outcomes for %d events", len(outs), len(b.Events))
	}
	return outs
}

// add enqueues one event and returns its new id.
func (f *fixture) add(in relay.Incoming) string {
	f.t.Helper()
	out := f.enqueue(in)[0]
	if out.ID == "" || out.Duplicate || out.Conflict {
		f.t.Fatalf("Enqueue %s: outcome %+v, want a new event", in.Event.IdempotencyKey, out)
	}
	return out.ID
}

func (f *fixture) claim(target string, now time.Time, n int) []relay.Job {
	f.t.Helper()
	return f.claimLease(target, now, n, lease)
}

func (f *fixture) claimLease(target string, now time.Time, n int, lease time.Duration) []relay.Job {
	f.t.Helper()
	jobs, err := f.s.Claim(f.ctx, target, now, n, lease)
	if err != nil {
		f.t.Fatalf("Claim %s: %v", target, err)
	}
	return jobs
}

func (f *fixture) complete(r relay.Result) {
	f.t.Helper()
	if err := f.s.Complete(f.ctx, r); err != nil {
		f.t.Fatalf("Complete %s:%s %s: %v", r.EventID, r.Target, r.Status, err)
	}
}

// result returns a Result for job with an attempt made at at.
func result(j relay.Job, at time.Time, status string) relay.Result {
	a := relay.Attempt{At: at, Status: 200, DurationMS: 12}
	r := relay.Result{EventID: j.EventID, Target: j.Target, Attempt: a, Status: status}
	switch status {
	case relay.DeliveryRetrying:
		r.Attempt.Status, r.Attempt.Error = 503, "503 Service Unavailable"
		r.NextAt = at.Add(time.Minute)
	case relay.DeliveryDead:
		r.Attempt.Status, r.Attempt.Error = 400, "400 Bad Request"
		r.Reason = "permanent 400"
	}
	return r
}

// settle claims every delivery of target due at now and completes each
// with status (an attempt at now); it returns their event ids.
func (f *fixture) settle(target string, now time.Time, status string) []string {
	f.t.Helper()
	var ids []string
	for _, j := range f.claim(target, now, 1000) {
		f.complete(result(j, now, status))
		ids = append(ids, j.EventID)
	}
	return ids
}

func (f *fixture) event(id string) *relay.Event {
	f.t.Helper()
	e, err := f.s.Event(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Event %s: %v", id, err)
	}
	return e
}

func (f *fixture) delivery(id, target string) relay.Delivery {
	f.t.Helper()
	for _, d := range f.event(id).Deliveries {
		if d.Target == target {
			return d
		}
	}
	f.t.Fatalf("Event %s has no delivery to %s", id, target)
	return relay.Delivery{}
}

func (f *fixture) wantStatus(id, status string) {
	f.t.Helper()
	if got := f.event(id).Status; got != status {
		f.t.Errorf("event %s status = %q, want %q", id, got, status)
	}
}

func (f *fixture) wantDelivery(id, target, status string) relay.Delivery {
	f.t.Helper()
	d := f.delivery(id, target)
	if d.Status != status {
		f.t.Errorf("delivery %s:%s status = %q, want %q", id, target, d.Status, status)
	}
	return d
}

func (f *fixture) pending() int {
	f.t.Helper()
	n, err := f.s.Pending(f.ctx)
	if err != nil {
		f.t.Fatalf("Pending: %v", err)
	}
	return n
}

func (f *fixture) wantPending(want int) {
	f.t.Helper()
	if got := f.pending(); got != want {
		f.t.Errorf("Pending = %d, want %d", got, want)
	}
}

// events lists every event matching filter (one page of up to 1000).
func (f *fixture) events(filter relay.EventFilter) []string {
	f.t.Helper()
	evs, next, err := f.s.Events(f.ctx, filter, "", 1000)
	if err != nil {
		f.t.Fatalf("Events %+v: %v", filter, err)
	}
	if next != "" {
		f.t.Fatalf("Events %+v: next cursor %q after the last page", filter, next)
	}
	return eventIDs(evs)
}

func eventIDs(evs []relay.Event) []string {
	ids := []string{}
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

// dead lists every dead delivery matching filter as "event:target".
func (f *fixture) dead(filter relay.DeadFilter) []string {
	f.t.Helper()
	ds, next, err := f.s.DeadLetters(f.ctx, filter, "", 1000)
	if err != nil {
		f.t.Fatalf("DeadLetters %+v: %v", filter, err)
	}
	if next != "" {
		f.t.Fatalf("DeadLetters %+v: next cursor %q after the last page", filter, next)
	}
	return deliveryKeys(ds)
}

func deliveryKeys(ds []relay.Delivery) []string {
	keys := []string{}
	for _, d := range ds {
		keys = append(keys, d.Key())
	}
	return keys
}

func (f *fixture) wantIDs(what string, got, want []string) {
	f.t.Helper()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		f.t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
