package relaytest

import (
	"errors"
	"fmt"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// The suite's tests of relay.Pruner.

func (f *fixture) prune(now, before time.Time, max int) int {
	f.t.Helper()
	n, err := f.s.Prune(f.ctx, now, before, max)
	if err != nil {
		f.t.Fatalf("Prune: %v", err)
	}
	return n
}

func testPruneKeys(f *fixture) {
	e := in("k1", t0, "a")
	e.KeyExpires = t0.Add(time.Hour)
	first := f.add(e)
	if n := f.prune(t0.Add(30*time.Minute), time.Time{}, 100); n != 0 {
		f.t.Errorf("Prune before expiry = %d, want 0", n)
	}
	if out := f.enqueue(in("k1", t0.Add(30*time.Minute), "a"))[0]; !out.Duplicate || out.ID != first {
		f.t.Errorf("before expiry: %+v, want duplicate of %s", out, first)
	}
	if n := f.prune(t0.Add(2*time.Hour), time.Time{}, 100); n != 1 {
		f.t.Errorf("Prune after expiry = %d, want 1", n)
	}
	if n := f.prune(t0.Add(2*time.Hour), time.Time{}, 100); n != 0 {
		f.t.Errorf("second Prune = %d, want 0", n)
	}
	again := f.add(in("k1", t0.Add(2*time.Hour), "a")) // new again
	if again == first {
		f.t.Errorf("re-sent key got the old id")
	}
	f.event(first) // the event itself is kept
	f.wantPending(2)
}

func testPruneNonces(f *fixture) {
	b := func(key string) *relay.Batch {
		return &relay.Batch{Nonce: "jti-1", NonceExpires: t0.Add(5 * time.Minute), Events: []relay.Incoming{in(key, t0, "a")}}
	}
	f.enqueueBatch(b("k1"))
	if n := f.prune(t0.Add(time.Minute), time.Time{}, 100); n != 0 {
		f.t.Errorf("Prune before the nonce expires = %d, want 0", n)
	}
	if _, err := f.s.Enqueue(f.ctx, b("k2")); !errors.Is(err, relay.ErrReplayed) {
		f.t.Fatalf("err = %v, want relay.ErrReplayed", err)
	}
	if n := f.prune(t0.Add(10*time.Minute), time.Time{}, 100); n != 1 {
		f.t.Errorf("Prune after the nonce expired = %d, want 1", n)
	}
	f.enqueueBatch(b("k3"))
}

func testPruneEvents(f *fixture) {
	before := t0.Add(time.Hour)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	delivered := f.add(in("delivered", at(1), "ok"))
	failed := f.add(in("failed", at(2), "bad"))
	queued := f.add(in("queued", at(3), "slow"))
	discarded := f.add(in("discarded", at(4)))
	mixed := in("mixed", at(5), "bad2", "slow2")
	mixed.Event.Deliveries[1].NextAt = t0.Add(48 * time.Hour)
	half := f.add(mixed) // failed, with a delivery still pending
	inflight := f.add(in("inflight", at(6), "busy"))
	fresh := f.add(in("fresh", before, "ok")) // received at eventsBefore: kept
	now := before.Add(time.Minute)
	f.settle("ok", now, relay.DeliverySucceeded)
	f.settle("bad", now, relay.DeliveryDead)
	f.settle("bad2", now, relay.DeliveryDead)
	f.settle("slow", now, relay.DeliveryRetrying)
	f.claim("busy", now, 10)

	if n := f.prune(now, before, 100); n != 3 {
		f.t.Errorf("Prune = %d, want 3 (delivered, failed, discarded)", n)
	}
	if n := f.prune(now, before, 100); n != 0 {
		f.t.Errorf("second Prune = %d, want 0", n)
	}
	for _, id := range []string{delivered, failed, discarded} {
		if _, err := f.s.Event(f.ctx, id); !errors.Is(err, relay.ErrNotFound) {
			f.t.Errorf("pruned event %s: err = %v, want relay.ErrNotFound", id, err)
		}
		if _, err := f.s.Raw(f.ctx, id); !errors.Is(err, relay.ErrNotFound) {
			f.t.Errorf("pruned raw %s: err = %v, want relay.ErrNotFound", id, err)
		}
	}
	for _, id := range []string{queued, half, fresh, inflight} {
		f.event(id)
	}
	f.wantIDs("events", f.events(relay.EventFilter{}), []string{fresh, inflight, half, queued})
	f.wantIDs("dead letters", f.dead(relay.DeadFilter{}), []string{half + ":bad2"})
	f.wantPending(3)
	s, err := f.s.Stats(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if s.Events[relay.EventDelivered] != 1 || s.Events[relay.EventFailed] != 1 || s.Events[relay.EventQueued] != 2 ||
		s.Events[relay.EventDiscarded] != 0 || s.Dead != 1 || s.Deliveries[relay.DeliverySucceeded] != 1 {
		f.t.Errorf("Stats after prune = %+v", s)
	}
	// The idempotency keys outlive the events until they expire.
	if out := f.enqueue(in("delivered", now, "ok"))[0]; !out.Duplicate || out.ID != delivered {
		f.t.Errorf("key of a pruned event: %+v, want duplicate of %s", out, delivered)
	}
}

func testPruneMax(f *fixture) {
	for i := range 5 {
		e := in(fmt.Sprintf("k%d", i), t0, "a")
		e.KeyExpires = t0.Add(time.Minute)
		f.add(e)
	}
	d := in("gone", t0)
	d.KeyExpires = t0.Add(time.Minute)
	f.add(d)
	now := t0.Add(time.Hour)
	var got []int
	for range 10 {
		n := f.prune(now, now, 2)
		got = append(got, n)
		if n == 0 {
			break
		}
		if n > 2 {
			f.t.Fatalf("Prune max 2 deleted %d", n)
		}
	}
	total := 0
	for _, n := range got {
		total += n
	}
	if total != 7 || got[len(got)-1] != 0 { // 5 keys, 1 key of "gone", the discarded event
		f.t.Errorf("Prune max 2 = %v, want 7 records in all, ending with 0", got)
	}
	f.wantPending(5)
}

// testRawShared: the events of one request share its raw request (a store
// may keep it once), also when the request's first event is a duplicate;
// each event reads it, in Raw and Export, until the last of them is
// pruned, whichever goes first.
func testRawShared(f *fixture) {
	raw := &relay.Raw{
		Method: "POST", Path: "/hooks/hubspot",
		Header: map[string][]string{"Content-Type": {"application/json"}},
		Body:   []byte(`[{"eventId":1},{"eventId":2},{"eventId":3}]`),
	}
	first := f.add(in("k1", t0, "a"))
	e1, e2, e3 := in("k1", t0, "a"), in("k2", t0, "a"), in("k3", t0, "b")
	e1.Raw, e2.Raw, e3.Raw = raw, raw, raw
	outs := f.enqueue(e1, e2, e3)
	if !outs[0].Duplicate || outs[0].ID != first || outs[1].Duplicate || outs[2].Duplicate {
		f.t.Fatalf("outcomes = %+v, want a duplicate of %s then two new events", outs, first)
	}
	wantRaw := func(id string) {
		f.t.Helper()
		got, err := f.s.Raw(f.ctx, id)
		if err != nil || string(got.Body) != string(raw.Body) || got.Path != raw.Path {
			f.t.Errorf("Raw %s = %+v, %v; want the batch's request", id, got, err)
		}
	}
	wantRaw(outs[1].ID)
	wantRaw(outs[2].ID)
	_, raws, _ := f.export(relay.EventFilter{})
	for _, id := range []string{outs[1].ID, outs[2].ID} {
		if r := raws[id]; r == nil || string(r.Body) != string(raw.Body) {
			f.t.Errorf("Export raw of %s = %+v, want the batch's request", id, r)
		}
	}
	// The second event is done, the third still pending: pruning keeps
	// what the third reads.
	now := t0.Add(time.Hour)
	f.settle("a", now, relay.DeliverySucceeded)
	f.prune(now, now, 100)
	wantRaw(outs[2].ID)
	if _, err := f.s.Event(f.ctx, outs[2].ID); err != nil {
		f.t.Fatalf("pending event pruned: %v", err)
	}
	f.settle("b", now, relay.DeliverySucceeded)
	for f.prune(now, now, 100) > 0 {
	}
	for _, id := range []string{outs[1].ID, outs[2].ID} {
		if _, err := f.s.Raw(f.ctx, id); !errors.Is(err, relay.ErrNotFound) {
			f.t.Errorf("Raw %s after the last prune: err = %v, want relay.ErrNotFound", id, err)
		}
	}
	if ids := f.events(relay.EventFilter{}); len(ids) != 0 {
		f.t.Errorf("events left after pruning all = %v", ids)
	}
}

// testRawOf: an event whose Incoming names, in RawOf, an event stored
// earlier with the same raw request (a batch committed in parts) reads
// that request; pruning keeps it while the later event is there.
func testRawOf(f *fixture) {
	raw := &relay.Raw{Method: "POST", Path: "/hooks/hubspot", Body: []byte(`[{"eventId":1},{"eventId":2}]`)}
	e1, e2 := in("k1", t0, "a"), in("k2", t0, "b")
	e1.Raw, e2.Raw = raw, raw
	first := f.enqueue(e1)[0]
	e2.RawOf = first.ID
	second := f.enqueue(e2)[0]
	for _, id := range []string{first.ID, second.ID} {
		if got, err := f.s.Raw(f.ctx, id); err != nil || string(got.Body) != string(raw.Body) {
			f.t.Errorf("Raw %s = %+v, %v; want the request", id, got, err)
		}
	}
	now := t0.Add(time.Hour)
	f.settle("a", now, relay.DeliverySucceeded)
	f.prune(now, now, 100)
	if got, err := f.s.Raw(f.ctx, second.ID); err != nil || string(got.Body) != string(raw.Body) {
		f.t.Errorf("Raw of the later event after a prune = %+v, %v; want the request", got, err)
	}
}
