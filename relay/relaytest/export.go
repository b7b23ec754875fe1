package relaytest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// The suite's tests of the admin additions: dead letters bounded in time
// and count, result chains (Effects), Export, and paging while another
// goroutine inserts.

func testDeadUntil(f *fixture) {
	a := f.kill("k1", "stripe", "a", t0.Add(1*time.Minute))
	b := f.kill("k2", "stripe", "a", t0.Add(2*time.Minute))
	c := f.kill("k3", "stripe", "a", t0.Add(3*time.Minute))
	f.wantIDs("dead letters until 3m", f.dead(relay.DeadFilter{Until: t0.Add(3 * time.Minute)}), []string{b + ":a", a + ":a"})
	f.wantIDs("dead letters 2m to 3m", f.dead(relay.DeadFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(3 * time.Minute)}), []string{b + ":a"})
	f.wantIDs("dead letters until 1m", f.dead(relay.DeadFilter{Until: t0.Add(time.Minute)}), nil)
	_ = c
}

func testReplayDeadBounded(f *fixture) {
	var ids []string
	for i := range 5 {
		ids = append(ids, f.kill(fmt.Sprintf("k%d", i), "stripe", "a", t0.Add(time.Duration(i+1)*time.Minute)))
	}
	now := t0.Add(time.Hour)
	// Until: the delivery that died at 5m is left alone.
	n, err := f.s.ReplayDead(f.ctx, relay.DeadFilter{Until: t0.Add(5 * time.Minute), Max: 2}, now)
	if err != nil || n != 2 {
		f.t.Fatalf("ReplayDead max 2 = %d, %v; want 2", n, err)
	}
	// Oldest dead first.
	f.wantIDs("dead letters after max 2", f.dead(relay.DeadFilter{}), []string{ids[4] + ":a", ids[3] + ":a", ids[2] + ":a"})
	n, err = f.s.ReplayDead(f.ctx, relay.DeadFilter{Until: t0.Add(5 * time.Minute), Max: 2}, now)
	if err != nil || n != 2 {
		f.t.Fatalf("ReplayDead max 2 again = %d, %v; want 2", n, err)
	}
	n, err = f.s.ReplayDead(f.ctx, relay.DeadFilter{Until: t0.Add(5 * time.Minute), Max: 2}, now)
	if err != nil || n != 0 {
		f.t.Fatalf("ReplayDead a third time = %d, %v; want 0 (until excludes the last)", n, err)
	}
	f.wantIDs("dead letters left", f.dead(relay.DeadFilter{}), []string{ids[4] + ":a"})
	f.wantPending(4)
}

func testEffects(f *fixture) {
	cause := f.add(in("k1", t0, "a"))
	other := f.add(in("k2", t0.Add(time.Second), "a"))
	result := func(key string, at time.Time, causation, source string) string {
		e := in(key, at, "wordpress")
		e.Event.Source, e.Event.Type, e.Event.CausationID = source, "invoice.created.result", causation
		return f.add(e)
	}
	r1 := result("r1", t0.Add(2*time.Second), cause, "target:summarizer")
	r2 := result("r2", t0.Add(3*time.Second), cause, "target:crm")
	result("r3", t0.Add(4*time.Second), other, "target:summarizer")
	got, err := f.s.Effects(f.ctx, cause, 10)
	if err != nil {
		f.t.Fatalf("Effects: %v", err)
	}
	f.wantIDs("effects", got, []string{r1, r2})
	if got, err := f.s.Effects(f.ctx, cause, 1); err != nil || len(got) != 1 || got[0] != r1 {
		f.t.Errorf("Effects limit 1 = %q, %v; want [%s]", got, err, r1)
	}
	if got, err := f.s.Effects(f.ctx, r1, 10); err != nil || len(got) != 0 {
		f.t.Errorf("Effects of a result = %q, %v; want none", got, err)
	}
	if _, err := f.s.Effects(f.ctx, "no-such-event", 10); !errors.Is(err, relay.ErrNotFound) {
		f.t.Errorf("Effects unknown: err = %v, want relay.ErrNotFound", err)
	}
}

// export collects what Export passes for filter.
func (f *fixture) export(filter relay.EventFilter) ([]string, map[string]*relay.Raw, map[string]*relay.Event) {
	f.t.Helper()
	var ids []string
	raws, evs := map[string]*relay.Raw{}, map[string]*relay.Event{}
	err := f.s.Export(f.ctx, filter, func(e *relay.Event, raw *relay.Raw) error {
		ids = append(ids, e.ID)
		raws[e.ID], evs[e.ID] = raw, e
		return nil
	})
	if err != nil {
		f.t.Fatalf("Export %+v: %v", filter, err)
	}
	return ids, raws, evs
}

func testExport(f *fixture) {
	mk := func(key, source, typ string, at time.Duration) string {
		e := in(key, t0.Add(at*time.Minute), "a")
		e.Event.Source, e.Event.Type = source, typ
		return f.add(e)
	}
	e1 := mk("k1", "stripe", "invoice.created", 0)
	e2 := mk("k2", "gh", "push", 1)
	e3 := mk("k3", "stripe", "invoice.paid", 2)
	noRaw := in("k4", t0.Add(3*time.Minute), "a")
	noRaw.Raw = nil
	e4 := f.add(noRaw)
	f.settle("a", t0.Add(10*time.Minute), relay.DeliverySucceeded)

	ids, raws, evs := f.export(relay.EventFilter{})
	f.wantIDs("export all (oldest first)", ids, []string{e1, e2, e3, e4})
	if raws[e1] == nil || string(raws[e1].Body) != `{"id":"k1"}` || raws[e1].Path != "/hooks/stripe" {
		f.t.Errorf("export raw of %s = %+v", e1, raws[e1])
	}
	if raws[e4] != nil {
		f.t.Errorf("export raw of an event stored without one = %+v, want nil", raws[e4])
	}
	if e := evs[e1]; !jsonEqual(e.Envelope, []byte(`{"key":"k1","data":{"n":1}}`)) || e.Status != relay.EventDelivered ||
		len(e.Deliveries) != 1 || e.Deliveries[0].Status != relay.DeliverySucceeded || e.IdempotencyKey != "k1" {
		f.t.Errorf("exported event = %+v", e)
	}
	for _, tc := range []struct {
		filter relay.EventFilter
		want   []string
	}{
		{relay.EventFilter{Source: "stripe"}, []string{e1, e3, e4}},
		{relay.EventFilter{Type: "push"}, []string{e2}},
		{relay.EventFilter{Since: t0.Add(time.Minute)}, []string{e2, e3, e4}},
		{relay.EventFilter{Until: t0.Add(2 * time.Minute)}, []string{e1, e2}},
		{relay.EventFilter{Source: "stripe", Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []string{e3}},
		{relay.EventFilter{Source: "nope"}, nil},
	} {
		ids, _, _ := f.export(tc.filter)
		if ids == nil {
			ids = []string{}
		}
		f.wantIDs(fmt.Sprintf("export %+v", tc.filter), ids, tc.want)
	}
	stop := errors.New("stop")
	n := 0
	err := f.s.Export(f.ctx, relay.EventFilter{}, func(*relay.Event, *relay.Raw) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		f.t.Errorf("Export with fn failing: %d calls, err %v; want 1 call and fn's error", n, err)
	}
}

// More events than one read transaction of the store holds, while another
// goroutine inserts newer ones: each older event exactly once, in order.
func testExportWhileInserting(f *fixture) {
	const old = 700
	var batch []relay.Incoming
	for i := range old {
		batch = append(batch, in(fmt.Sprintf("old%d", i), t0.Add(time.Duration(i)*time.Millisecond), "a"))
	}
	var want []string
	for _, o := range f.enqueue(batch...) {
		want = append(want, o.ID)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e := in(fmt.Sprintf("new%d", i), t0.Add(time.Hour+time.Duration(i)*time.Millisecond), "a")
			if _, err := f.s.Enqueue(f.ctx, &relay.Batch{Events: []relay.Incoming{e}}); err != nil {
				f.t.Errorf("Enqueue: %v", err)
				return
			}
		}
	})
	ids, _, _ := f.export(relay.EventFilter{Until: t0.Add(time.Hour)})
	close(stop)
	wg.Wait()
	f.wantIDs("exported while inserting", ids, want)
}

// Paging through events while another goroutine inserts: no event that
// was stored before the first page is missed or repeated.
func testEventsPagingConcurrent(f *fixture) {
	var want []string
	for i := range 60 {
		want = append([]string{f.add(in(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Second), "a"))}, want...)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e := in(fmt.Sprintf("new%d", i), t0.Add(time.Hour+time.Duration(i)*time.Millisecond), "a")
			if _, err := f.s.Enqueue(f.ctx, &relay.Batch{Events: []relay.Incoming{e}}); err != nil {
				f.t.Errorf("Enqueue: %v", err)
				return
			}
		}
	})
	got, cursor := f.page(relay.EventFilter{Until: t0.Add(time.Hour)}, "", 7)
	for cursor != "" {
		var ids []string
		ids, cursor = f.page(relay.EventFilter{Until: t0.Add(time.Hour)}, cursor, 7)
		got = append(got, ids...)
		if len(got) > 100 {
			break
		}
	}
	close(stop)
	wg.Wait()
	f.wantIDs("paged while inserting", got, want)
}
