package store_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/store"
)

// Settle commits outcomes and a claim in one transaction: each outcome
// answers its own error (one not in flight fails alone), the claim hands
// out what is due, and a call with nothing to do commits nothing.
func TestDB_Settle_OutcomesAndClaimInOneCommit(t *testing.T) {
	ctx := t.Context()
	db := mustOpen(t, filepath.Join(t.TempDir(), "wprelay.db"), store.Options{NoSync: true})
	outs := enqueue(t, db, event("k1", t0, "a"), event("k2", t0, "a"))
	now := t0.Add(time.Second)
	jobs, err := db.Claim(ctx, "a", now, 1, time.Minute)
	if err != nil || len(jobs) != 1 || jobs[0].EventID != outs[0].ID {
		t.Fatalf("Claim = %+v, %v", jobs, err)
	}
	commits, _ := db.CommitStats()
	done := relay.Result{EventID: outs[0].ID, Target: "a", Status: relay.DeliverySucceeded, Attempt: relay.Attempt{At: now, Status: 204}}
	stray := relay.Result{EventID: outs[1].ID, Target: "a", Status: relay.DeliverySucceeded, Attempt: relay.Attempt{At: now, Status: 204}} // not in flight
	jobs, errs, err := db.Settle(ctx, []relay.Result{done, stray}, "a", now, 5, time.Minute)
	if err != nil || len(jobs) != 1 || jobs[0].EventID != outs[1].ID {
		t.Fatalf("Settle claimed %+v, %v; want k2", jobs, err)
	}
	if len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], relay.ErrNotFound) {
		t.Fatalf("Settle errs = %v, want nil and relay.ErrNotFound", errs)
	}
	if c, _ := db.CommitStats(); c != commits+1 {
		t.Errorf("Settle took %d commits, want 1", c-commits)
	}
	if e, err := db.Event(ctx, outs[0].ID); err != nil || e.Status != relay.EventDelivered {
		t.Errorf("k1 after Settle: %+v, %v; want delivered", e, err)
	}
	if n, _ := db.Pending(ctx); n != 1 { // k2, in flight
		t.Errorf("Pending = %d, want 1", n)
	}
	commits, _ = db.CommitStats()
	if jobs, errs, err := db.Settle(ctx, nil, "a", now, 5, time.Minute); err != nil || len(jobs) != 0 || len(errs) != 0 {
		t.Errorf("Settle with nothing due = %+v %v %v", jobs, errs, err)
	}
	if c, _ := db.CommitStats(); c != commits {
		t.Errorf("Settle with nothing to do committed %d times", c-commits)
	}
}
