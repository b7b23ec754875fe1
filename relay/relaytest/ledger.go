package relaytest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// The suite's tests of admin.Store: dead letters, replay, event listing
// and detail, stats.

// --- DeadLetters

// kill enqueues an event with one delivery to target and makes it dead at at.
func (f *fixture) kill(key, source, target string, at time.Time) string {
	f.t.Helper()
	e := in(key, t0, target)
	e.Event.Source = source
	id := f.add(e)
	if got := f.settle(target, at, relay.DeliveryDead); !slices.Equal(got, []string{id}) {
		f.t.Fatalf("kill %s: settled %q", key, got)
	}
	return id
}

func testDeadNewestFirst(f *fixture) {
	a := f.kill("k1", "stripe", "a", t0.Add(1*time.Minute))
	b := f.kill("k2", "stripe", "a", t0.Add(3*time.Minute))
	c := f.kill("k3", "stripe", "b", t0.Add(2*time.Minute))
	f.wantIDs("dead letters", f.dead(relay.DeadFilter{}), []string{b + ":a", c + ":b", a + ":a"})
	ds, _, err := f.s.DeadLetters(f.ctx, relay.DeadFilter{}, "", 1)
	if err != nil || len(ds) != 1 {
		f.t.Fatalf("DeadLetters: %v, %d", err, len(ds))
	}
	d := ds[0]
	if d.EventID != b || d.Target != "a" || d.Status != relay.DeliveryDead || !d.DeadAt.Equal(t0.Add(3*time.Minute)) ||
		d.Reason != "permanent 400" || d.LastStatus != 400 || d.Attempts != 1 || len(d.History) != 1 {
		f.t.Errorf("dead letter = %+v", d)
	}
}

func testDeadFilters(f *fixture) {
	a := f.kill("k1", "stripe", "a", t0.Add(1*time.Minute))
	b := f.kill("k2", "gh", "a", t0.Add(2*time.Minute))
	c := f.kill("k3", "stripe", "b", t0.Add(3*time.Minute))
	for _, tc := range []struct {
		filter relay.DeadFilter
		want   []string
	}{
		{relay.DeadFilter{Source: "stripe"}, []string{c + ":b", a + ":a"}},
		{relay.DeadFilter{Source: "gh"}, []string{b + ":a"}},
		{relay.DeadFilter{Target: "a"}, []string{b + ":a", a + ":a"}},
		{relay.DeadFilter{Since: t0.Add(2 * time.Minute)}, []string{c + ":b", b + ":a"}},
		{relay.DeadFilter{Source: "stripe", Target: "a"}, []string{a + ":a"}},
		{relay.DeadFilter{Source: "nope"}, nil},
	} {
		f.wantIDs(fmt.Sprintf("dead letters %+v", tc.filter), f.dead(tc.filter), tc.want)
	}
}

func testDeadPaging(f *fixture) {
	var want []string
	for i := range 5 {
		id := f.kill(fmt.Sprintf("k%d", i), "stripe", "a", t0.Add(time.Duration(i)*time.Minute))
		want = append([]string{id + ":a"}, want...)
	}
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		ds, next, err := f.s.DeadLetters(f.ctx, relay.DeadFilter{}, cursor, 2)
		if err != nil {
			f.t.Fatalf("DeadLetters page %d: %v", page, err)
		}
		if len(ds) > 2 || page > 3 {
			f.t.Fatalf("page %d: %d dead letters", page, len(ds))
		}
		got = append(got, deliveryKeys(ds)...)
		if next == "" {
			break
		}
		cursor = next
	}
	f.wantIDs("paged dead letters", got, want)
}

// --- Replay

func testReplayDeadThenDelivered(f *fixture) {
	id := f.add(in("k1", t0, "a"))
	jobs := f.claim("a", t0, 1)
	f.complete(result(jobs[0], t0, relay.DeliveryRetrying))
	jobs = f.claim("a", t0.Add(time.Minute), 1)
	f.complete(result(jobs[0], t0.Add(time.Minute), relay.DeliveryDead))
	f.wantStatus(id, relay.EventFailed)
	f.wantPending(0)

	now := t0.Add(time.Hour)
	n, err := f.s.Replay(f.ctx, id, "", now)
	if err != nil || n != 1 {
		f.t.Fatalf("Replay = %d, %v; want 1", n, err)
	}
	f.wantStatus(id, relay.EventQueued)
	d := f.wantDelivery(id, "a", relay.DeliveryPending)
	if !d.NextAt.Equal(now) || d.Attempts != 2 || len(d.History) != 2 {
		f.t.Errorf("replayed delivery = %+v, want due now with 2 attempts kept", d)
	}
	f.wantIDs("dead letters", f.dead(relay.DeadFilter{}), nil)
	f.wantPending(1)
	if at, ok, err := f.s.NextDue(f.ctx, "a"); err != nil || !ok || !at.Equal(now) {
		f.t.Errorf("NextDue = %v, %v, %v; want %v", at, ok, err, now)
	}
	jobs = f.claim("a", now, 1)
	if len(jobs) != 1 || jobs[0].Tries != 0 || jobs[0].Attempts != 2 || !jobs[0].Since.Equal(now) {
		f.t.Fatalf("replayed job = %+v, want tries 0, attempts 2, since now", jobs)
	}
	f.complete(result(jobs[0], now, relay.DeliverySucceeded))
	f.wantStatus(id, relay.EventDelivered)
	if d := f.delivery(id, "a"); d.Attempts != 3 || len(d.History) != 3 {
		f.t.Errorf("delivery = %+v, want 3 attempts", d)
	}
	f.wantPending(0)
}

func testReplayOneTarget(f *fixture) {
	id := f.add(in("k1", t0, "a", "b"))
	f.settle("a", t0, relay.DeliveryDead)
	f.settle("b", t0, relay.DeliveryDead)
	n, err := f.s.Replay(f.ctx, id, "b", t0.Add(time.Hour))
	if err != nil || n != 1 {
		f.t.Fatalf("Replay b = %d, %v; want 1", n, err)
	}
	f.wantDelivery(id, "a", relay.DeliveryDead)
	f.wantDelivery(id, "b", relay.DeliveryPending)
	f.wantStatus(id, relay.EventFailed) // a is still dead
	f.wantIDs("dead letters", f.dead(relay.DeadFilter{}), []string{id + ":a"})
	f.wantPending(1)
}

func testReplayAllTargets(f *fixture) {
	id := f.add(in("k1", t0, "a", "b"))
	f.settle("a", t0, relay.DeliverySucceeded)
	f.settle("b", t0, relay.DeliveryDead)
	now := t0.Add(time.Hour)
	n, err := f.s.Replay(f.ctx, id, "", now)
	if err != nil || n != 2 {
		f.t.Fatalf("Replay = %d, %v; want 2", n, err)
	}
	f.wantStatus(id, relay.EventQueued)
	f.wantPending(2)
	for _, target := range []string{"a", "b"} {
		jobs := f.claim(target, now, 10)
		if len(jobs) != 1 || jobs[0].Tries != 0 || jobs[0].Attempts != 1 || !jobs[0].Since.Equal(now) {
			f.t.Errorf("replayed %s = %+v", target, jobs)
		}
	}
}

func testReplayInFlight(f *fixture) {
	id := f.add(in("k1", t0, "a", "b"))
	f.settle("b", t0, relay.DeliveryDead)
	f.claim("a", t0, 1)
	n, err := f.s.Replay(f.ctx, id, "", t0.Add(time.Second))
	if err != nil || n != 1 {
		f.t.Fatalf("Replay = %d, %v; want 1 (b only)", n, err)
	}
	f.wantDelivery(id, "a", relay.DeliveryInFlight)
	if jobs := f.claim("a", t0.Add(2*time.Second), 10); len(jobs) != 0 {
		f.t.Errorf("the in-flight delivery was made due: %+v", jobs)
	}
	if n, err := f.s.Replay(f.ctx, id, "a", t0.Add(time.Second)); err != nil || n != 0 {
		f.t.Errorf("Replay a (in flight) = %d, %v; want 0", n, err)
	}
}

func testReplayNotFound(f *fixture) {
	id := f.add(in("k1", t0, "a"))
	if _, err := f.s.Replay(f.ctx, "no-such-event", "", t0); !errors.Is(err, relay.ErrNotFound) {
		f.t.Errorf("Replay unknown event: err = %v, want relay.ErrNotFound", err)
	}
	if _, err := f.s.Replay(f.ctx, id, "nope", t0); !errors.Is(err, relay.ErrNotFound) {
		f.t.Errorf("Replay unknown target: err = %v, want relay.ErrNotFound", err)
	}
}

func testReplayDead(f *fixture) {
	a := f.kill("k1", "stripe", "a", t0.Add(1*time.Minute))
	b := f.kill("k2", "gh", "a", t0.Add(2*time.Minute))
	c := f.kill("k3", "stripe", "b", t0.Add(3*time.Minute))
	d := f.kill("k4", "stripe", "a", t0.Add(4*time.Minute))
	e := f.kill("k5", "stripe", "a", t0.Add(5*time.Minute))
	now := t0.Add(time.Hour)
	for _, tc := range []struct {
		filter relay.DeadFilter
		want   int
		left   []string
	}{
		{relay.DeadFilter{Target: "b"}, 1, []string{e + ":a", d + ":a", b + ":a", a + ":a"}},
		{relay.DeadFilter{Source: "gh"}, 1, []string{e + ":a", d + ":a", a + ":a"}},
		{relay.DeadFilter{Since: t0.Add(4 * time.Minute)}, 2, []string{a + ":a"}},
		{relay.DeadFilter{Source: "nope"}, 0, []string{a + ":a"}},
		{relay.DeadFilter{}, 1, nil},
	} {
		n, err := f.s.ReplayDead(f.ctx, tc.filter, now)
		if err != nil || n != tc.want {
			f.t.Errorf("ReplayDead %+v = %d, %v; want %d", tc.filter, n, err, tc.want)
		}
		f.wantIDs(fmt.Sprintf("dead letters after %+v", tc.filter), f.dead(relay.DeadFilter{}), tc.left)
	}
	for _, id := range []string{a, b, c, d, e} {
		f.wantStatus(id, relay.EventQueued)
	}
	f.wantPending(5)
	jobs := f.claim("a", now, 10)
	if len(jobs) != 4 {
		f.t.Fatalf("claimed %d replayed deliveries to a, want 4", len(jobs))
	}
	for _, j := range jobs {
		if j.Tries != 0 || j.Attempts != 1 || !j.Since.Equal(now) {
			f.t.Errorf("replayed job = %+v", j)
		}
		f.complete(result(j, now, relay.DeliverySucceeded))
		f.wantStatus(j.EventID, relay.EventDelivered)
	}
}

// --- Events

func testEventsNewestFirst(f *fixture) {
	var want []string
	for i := range 5 {
		want = append([]string{f.add(in(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Second), "a"))}, want...)
	}
	f.wantIDs("events", f.events(relay.EventFilter{}), want)
	evs, _, err := f.s.Events(f.ctx, relay.EventFilter{}, "", 10)
	if err != nil {
		f.t.Fatal(err)
	}
	if e := evs[0]; e.IdempotencyKey != "k4" || e.Status != relay.EventQueued || len(e.Deliveries) != 1 ||
		e.Deliveries[0].Target != "a" || !e.ReceivedAt.Equal(t0.Add(4*time.Second)) {
		f.t.Errorf("listed event = %+v, want k4 with its delivery", e)
	}
}

func testEventsFilters(f *fixture) {
	mk := func(key, source, tenant, typ string, at time.Duration, targets ...string) string {
		e := in(key, t0.Add(at*time.Minute), targets...)
		e.Event.Source, e.Event.Tenant, e.Event.Type = source, tenant, typ
		return f.add(e)
	}
	e1 := mk("k1", "stripe", "acme", "invoice.created", 0, "a")
	e2 := mk("k2", "stripe", "beta", "invoice.paid", 1, "b")
	e3 := mk("k3", "gh", "acme", "push", 2, "c")
	e4 := mk("k4", "gh", "beta", "ping", 3)
	f.settle("a", t0.Add(10*time.Minute), relay.DeliverySucceeded)
	f.settle("b", t0.Add(10*time.Minute), relay.DeliveryDead)
	for _, tc := range []struct {
		filter relay.EventFilter
		want   []string
	}{
		{relay.EventFilter{}, []string{e4, e3, e2, e1}},
		{relay.EventFilter{Status: relay.EventDelivered}, []string{e1}},
		{relay.EventFilter{Status: relay.EventFailed}, []string{e2}},
		{relay.EventFilter{Status: relay.EventQueued}, []string{e3}},
		{relay.EventFilter{Status: relay.EventDiscarded}, []string{e4}},
		{relay.EventFilter{Source: "gh"}, []string{e4, e3}},
		{relay.EventFilter{Tenant: "acme"}, []string{e3, e1}},
		{relay.EventFilter{Type: "invoice.paid"}, []string{e2}},
		{relay.EventFilter{Since: t0.Add(time.Minute)}, []string{e4, e3, e2}},
		{relay.EventFilter{Until: t0.Add(2 * time.Minute)}, []string{e2, e1}},
		{relay.EventFilter{Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Minute)}, []string{e2}},
		{relay.EventFilter{Source: "stripe", Status: relay.EventFailed}, []string{e2}},
		{relay.EventFilter{Source: "stripe", Status: relay.EventQueued}, nil},
		{relay.EventFilter{Tenant: "beta", Type: "ping"}, []string{e4}},
		{relay.EventFilter{Status: relay.EventQueued, Since: t0.Add(3 * time.Minute)}, nil},
		{relay.EventFilter{Source: "nope"}, nil},
	} {
		f.wantIDs(fmt.Sprintf("events %+v", tc.filter), f.events(tc.filter), tc.want)
	}
}

// page lists events matching filter page by page.
func (f *fixture) page(filter relay.EventFilter, cursor string, limit int) ([]string, string) {
	f.t.Helper()
	evs, next, err := f.s.Events(f.ctx, filter, cursor, limit)
	if err != nil {
		f.t.Fatalf("Events: %v", err)
	}
	if len(evs) > limit {
		f.t.Fatalf("Events returned %d events, limit %d", len(evs), limit)
	}
	return eventIDs(evs), next
}

func testEventsPaging(f *fixture) {
	var all, failed []string
	for i := range 7 {
		id := f.add(in(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("t%d", i%2)))
		all = append([]string{id}, all...)
		if i%2 == 1 {
			failed = append([]string{id}, failed...)
		}
	}
	f.settle("t1", t0.Add(time.Minute), relay.DeliveryDead)
	for _, tc := range []struct {
		filter relay.EventFilter
		want   []string
	}{
		{relay.EventFilter{}, all},
		{relay.EventFilter{Status: relay.EventFailed}, failed},
	} {
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > len(tc.want) {
				f.t.Fatalf("more pages than events")
			}
			ids, next := f.page(tc.filter, cursor, 2)
			got = append(got, ids...)
			if next == "" {
				break
			}
			cursor = next
		}
		f.wantIDs(fmt.Sprintf("paged events %+v", tc.filter), got, tc.want)
	}
}

func testEventsPagingStable(f *fixture) {
	var older []string
	for i := range 10 {
		older = append([]string{f.add(in(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Second), "a"))}, older...)
	}
	got, cursor := f.page(relay.EventFilter{}, "", 4)
	for i := range 3 { // new events arrive between pages
		f.add(in(fmt.Sprintf("new%d", i), t0.Add(time.Minute+time.Duration(i)*time.Second), "a"))
	}
	for cursor != "" {
		var ids []string
		ids, cursor = f.page(relay.EventFilter{}, cursor, 4)
		got = append(got, ids...)
		if len(got) > 20 {
			f.t.Fatalf("paging does not end: %q", got)
		}
	}
	f.wantIDs("paged events", got, older)
}

func testEventDetail(f *fixture) {
	e := in("stripe:acme:evt_1", t0, "a", "dry")
	e.Event.Source, e.Event.Tenant, e.Event.Type = "stripe", "acme", "invoice.created"
	e.Event.CausationID = "0194f3c8-0000-7000-8000-00000000cafe"
	e.Event.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	e.Event.Deliveries[0].NextAt = t0.Add(time.Minute)
	e.Event.Deliveries[1].Status = relay.DeliverySkipped
	id := f.add(e)
	got := f.event(id)
	w := e.Event
	if got.ID != id || got.Source != w.Source || got.Tenant != w.Tenant || got.Type != w.Type ||
		got.IdempotencyKey != w.IdempotencyKey || got.Status != relay.EventQueued ||
		!got.ReceivedAt.Equal(w.ReceivedAt) || !got.OccurredAt.Equal(w.OccurredAt) ||
		got.CausationID != w.CausationID || got.TraceParent != w.TraceParent {
		f.t.Errorf("Event = %+v\nwant %+v", got, w)
	}
	if !jsonEqual(got.Envelope, w.Envelope) {
		f.t.Errorf("envelope = %s, want %s", got.Envelope, w.Envelope)
	}
	if len(got.Deliveries) != 2 {
		f.t.Fatalf("%d deliveries, want 2", len(got.Deliveries))
	}
	a := f.wantDelivery(id, "a", relay.DeliveryPending)
	if a.EventID != id || a.Attempts != 0 || !a.NextAt.Equal(t0.Add(time.Minute)) || !a.CreatedAt.Equal(t0) || len(a.History) != 0 {
		f.t.Errorf("delivery a = %+v", a)
	}
	f.wantDelivery(id, "dry", relay.DeliverySkipped)
}

func testEventNotFound(f *fixture) {
	f.add(in("k1", t0, "a"))
	if _, err := f.s.Event(f.ctx, "no-such-event"); !errors.Is(err, relay.ErrNotFound) {
		f.t.Errorf("Event: err = %v, want relay.ErrNotFound", err)
	}
	if _, err := f.s.Raw(f.ctx, "no-such-event"); !errors.Is(err, relay.ErrNotFound) {
		f.t.Errorf("Raw: err = %v, want relay.ErrNotFound", err)
	}
}

func testRaw(f *fixture) {
	raw := &relay.Raw{
		Method: "POST",
		Path:   "/hooks/hubspot",
		Header: map[string][]string{"Content-Type": {"application/json"}, "X-Hubspot-Signature-V3": {"REDACTED"}},
		Body:   []byte(`[{"eventId":1},{"eventId":2}]`),
	}
	e1, e2 := in("k1", t0, "a"), in("k2", t0, "a")
	e1.Raw, e2.Raw = raw, raw // one request, two events
	outs := f.enqueue(e1, e2)
	for _, o := range outs {
		got, err := f.s.Raw(f.ctx, o.ID)
		if err != nil {
			f.t.Fatalf("Raw %s: %v", o.ID, err)
		}
		if got.Method != raw.Method || got.Path != raw.Path || !reflect.DeepEqual(got.Header, raw.Header) || string(got.Body) != string(raw.Body) {
			f.t.Errorf("Raw = %+v, want %+v", got, raw)
		}
	}
}

// --- Stats

func testStats(f *fixture) {
	e1 := in("k1", t0, "a", "b")
	e2 := in("k2", t0, "a")
	e3 := in("k3", t0)
	e4 := in("k4", t0, "c")
	e4.Event.Deliveries[0].Status = relay.DeliverySkipped
	e5 := in("k5", t0, "d", "e")
	e5.Event.Deliveries[0].NextAt = t0.Add(5 * time.Minute)
	e6 := in("k6", t0, "f")
	f.enqueue(e1, e2, e3, e4, e5, e6)
	f.settle("a", t0, relay.DeliverySucceeded)
	f.settle("b", t0, relay.DeliveryDead)
	f.claim("e", t0, 10)
	jobs := f.claim("f", t0, 10)
	r := result(jobs[0], t0, relay.DeliveryRetrying)
	r.NextAt = t0.Add(20 * time.Minute)
	f.complete(r)

	s, err := f.s.Stats(f.ctx)
	if err != nil {
		f.t.Fatalf("Stats: %v", err)
	}
	wantEvents := map[string]int{relay.EventQueued: 2, relay.EventDelivered: 2, relay.EventFailed: 1, relay.EventDiscarded: 1}
	wantDeliveries := map[string]int{relay.DeliverySucceeded: 2, relay.DeliveryDead: 1, relay.DeliverySkipped: 1,
		relay.DeliveryPending: 1, relay.DeliveryInFlight: 1, relay.DeliveryRetrying: 1}
	for k, v := range wantEvents {
		if s.Events[k] != v {
			f.t.Errorf("Stats.Events[%s] = %d, want %d (%v)", k, s.Events[k], v, s.Events)
		}
	}
	for k, v := range wantDeliveries {
		if s.Deliveries[k] != v {
			f.t.Errorf("Stats.Deliveries[%s] = %d, want %d (%v)", k, s.Deliveries[k], v, s.Deliveries)
		}
	}
	if s.Pending != 3 || s.Dead != 1 || !s.OldestDue.Equal(t0.Add(5*time.Minute)) {
		f.t.Errorf("Stats = pending %d, dead %d, oldest due %v; want 3, 1, %v", s.Pending, s.Dead, s.OldestDue, t0.Add(5*time.Minute))
	}
}
