package relaytest

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// MemStore's admin side (admin.Store) and its Pruner.

// defaultLimit is the page size when a caller passes a limit <= 0.
const defaultLimit = 50

// event returns a copy of e with its deliveries.
func (e *memEvent) event() *relay.Event {
	ev := e.ev
	ev.Envelope = slices.Clone(e.ev.Envelope)
	ev.Deliveries = make([]relay.Delivery, 0, len(e.dels))
	for _, d := range e.dels {
		ev.Deliveries = append(ev.Deliveries, d.copy())
	}
	return &ev
}

func (d *memDelivery) copy() relay.Delivery {
	c := d.Delivery
	c.History = slices.Clone(d.History)
	if c.History == nil {
		c.History = []relay.Attempt{}
	}
	return c
}

// Event returns an event with every delivery and its history.
func (s *MemStore) Event(ctx context.Context, id string) (*relay.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events[id]
	if e == nil {
		return nil, fmt.Errorf("event %s: %w", id, relay.ErrNotFound)
	}
	return e.event(), nil
}

// Raw returns the request as stored.
func (s *MemStore) Raw(ctx context.Context, id string) (*relay.Raw, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events[id]
	if e == nil || e.raw == nil {
		return nil, fmt.Errorf("raw %s: %w", id, relay.ErrNotFound)
	}
	return cloneRaw(e.raw), nil
}

func matches(e *relay.Event, f relay.EventFilter) bool {
	return (f.Status == "" || e.Status == f.Status) && (f.Source == "" || e.Source == f.Source) &&
		(f.Tenant == "" || e.Tenant == f.Tenant) && (f.Type == "" || e.Type == f.Type) &&
		(f.Since.IsZero() || !e.ReceivedAt.Before(f.Since)) && (f.Until.IsZero() || e.ReceivedAt.Before(f.Until))
}

// byTime lists the events matching f, oldest first (by ReceivedAt, then
// id).
func (s *MemStore) byTime(f relay.EventFilter) []*memEvent {
	var out []*memEvent
	for _, e := range s.events {
		if matches(&e.ev, f) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *memEvent) int {
		return cmp.Or(a.ev.ReceivedAt.Compare(b.ev.ReceivedAt), cmp.Compare(a.ev.ID, b.ev.ID))
	})
	return out
}

// A cursor is base64 of "kind", unix nanos, id[, target] joined by NUL
// bytes: the position of the last item of the page before.
func cursorOf(kind string, at time.Time, parts ...string) string {
	f := append([]string{kind, strconv.FormatInt(at.UnixNano(), 10)}, parts...)
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(f, "\x00")))
}

func parseCursor(kind, c string, nparts int) (time.Time, []string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	f := strings.Split(string(b), "\x00")
	if err != nil || len(f) != 2+nparts || f[0] != kind {
		return time.Time{}, nil, relay.ErrInvalidCursor
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return time.Time{}, nil, relay.ErrInvalidCursor
	}
	return time.Unix(0, n), f[2:], nil
}

// page returns the first limit items (listed newest first) that come
// after cursor, a position pos gave, and the cursor of the next page.
func page[T any](items []T, kind, cursor string, limit int, pos func(T) (time.Time, []string)) ([]T, string, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	var (
		at    time.Time
		after []string
	)
	if cursor != "" {
		var err error
		_, n := pos(*new(T))
		if at, after, err = parseCursor(kind, cursor, len(n)); err != nil {
			return nil, "", err
		}
	}
	var out []T
	for _, it := range items {
		t, parts := pos(it)
		if cursor != "" && cmp.Or(t.Compare(at), slices.Compare(parts, after)) >= 0 {
			continue
		}
		if len(out) == limit {
			t, parts := pos(out[len(out)-1])
			return out, cursorOf(kind, t, parts...), nil
		}
		out = append(out, it)
	}
	return out, "", nil
}

// Events lists events newest first, after cursor.
func (s *MemStore) Events(ctx context.Context, f relay.EventFilter, cursor string, limit int) ([]relay.Event, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.byTime(f)
	slices.Reverse(all)
	evs := make([]relay.Event, len(all))
	for i, e := range all {
		evs[i] = *e.event()
	}
	return page(evs, "e", cursor, limit, func(e relay.Event) (time.Time, []string) { return e.ReceivedAt, []string{e.ID} })
}

// dead lists the dead deliveries matching f, most recently dead first.
func (s *MemStore) dead(f relay.DeadFilter) []*memDelivery {
	var out []*memDelivery
	for _, e := range s.events {
		for _, d := range e.dels {
			if d.Status == relay.DeliveryDead && (f.Source == "" || d.source == f.Source) && (f.Target == "" || d.Target == f.Target) &&
				(f.Since.IsZero() || !d.DeadAt.Before(f.Since)) && (f.Until.IsZero() || d.DeadAt.Before(f.Until)) {
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(a, b *memDelivery) int {
		return -cmp.Or(a.DeadAt.Compare(b.DeadAt), cmp.Compare(a.EventID, b.EventID), cmp.Compare(a.Target, b.Target))
	})
	return out
}

// DeadLetters lists dead deliveries, most recently dead first.
func (s *MemStore) DeadLetters(ctx context.Context, f relay.DeadFilter, cursor string, limit int) ([]relay.Delivery, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ds []relay.Delivery
	for _, d := range s.dead(f) {
		ds = append(ds, d.copy())
	}
	return page(ds, "d", cursor, limit, func(d relay.Delivery) (time.Time, []string) { return d.DeadAt, []string{d.EventID, d.Target} })
}

// replay makes d due at now with a fresh retry budget; in-flight and
// skipped deliveries are left alone.
func (s *MemStore) replay(d *memDelivery, now time.Time) bool {
	if !relay.Replayable(d.Status) {
		return false
	}
	d.Status, d.NextAt, d.tries, d.since = relay.DeliveryPending, now, 0, now
	d.DeadAt, d.Reason = time.Time{}, ""
	s.refresh(s.events[d.EventID])
	return true
}

// Replay makes the event's deliveries (or target's) due at now.
func (s *MemStore) Replay(ctx context.Context, eventID, target string, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events[eventID]
	if e == nil {
		return 0, fmt.Errorf("replay %s: %w", eventID, relay.ErrNotFound)
	}
	n, found := 0, false
	for _, d := range e.dels {
		if target == "" || d.Target == target {
			found = true
			if s.replay(d, now) {
				n++
			}
		}
	}
	if !found && target != "" {
		return 0, fmt.Errorf("replay %s:%s: %w", eventID, target, relay.ErrNotFound)
	}
	return n, nil
}

// ReplayDead replays the dead deliveries matching f, oldest dead first.
func (s *MemStore) ReplayDead(ctx context.Context, f relay.DeadFilter, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dead := s.dead(f)
	slices.Reverse(dead)
	n := 0
	for _, d := range dead {
		if f.Max > 0 && n >= f.Max {
			break
		}
		if s.replay(d, now) {
			n++
		}
	}
	return n, nil
}

// Stats returns counts by status, the queue depth and the oldest due time.
func (s *MemStore) Stats(ctx context.Context) (relay.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := relay.NewStats()
	for _, e := range s.events {
		st.Events[e.ev.Status]++
		for _, d := range e.dels {
			st.Deliveries[d.Status]++
			if !relay.Final(d.Status) {
				st.Pending++
			}
			if d.Status == relay.DeliveryDead {
				st.Dead++
			}
			if (d.Status == relay.DeliveryPending || d.Status == relay.DeliveryRetrying) && (st.OldestDue.IsZero() || d.NextAt.Before(st.OldestDue)) {
				st.OldestDue = d.NextAt
			}
		}
	}
	return st, nil
}

// Effects returns the ids of the events caused by id, oldest first.
func (s *MemStore) Effects(ctx context.Context, id string, limit int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events[id] == nil {
		return nil, fmt.Errorf("effects of %s: %w", id, relay.ErrNotFound)
	}
	var out []string
	for _, e := range s.byTime(relay.EventFilter{}) {
		if e.ev.CausationID == id && len(out) < limit {
			out = append(out, e.ev.ID)
		}
	}
	return out, nil
}

// Export calls fn for each event matching f, oldest first, outside the
// lock.
func (s *MemStore) Export(ctx context.Context, f relay.EventFilter, fn func(e *relay.Event, raw *relay.Raw) error) error {
	s.mu.Lock()
	var ids []string
	for _, e := range s.byTime(f) {
		ids = append(ids, e.ev.ID)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.mu.Lock()
		e := s.events[id]
		var (
			ev  *relay.Event
			raw *relay.Raw
		)
		if e != nil {
			ev = e.event()
			if e.raw != nil {
				raw = cloneRaw(e.raw)
			}
		}
		s.mu.Unlock()
		if ev == nil {
			continue // pruned meanwhile
		}
		if err := fn(ev, raw); err != nil {
			return err
		}
	}
	return nil
}

// Prune deletes at most max expired keys, nonces and counters, then events
// received before eventsBefore whose deliveries are all final.
func (s *MemStore) Prune(ctx context.Context, now, eventsBefore time.Time, max int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	expired := func(m map[string]time.Time) relay.PruneStep {
		return relay.PruneStep{Kind: "expired", Delete: func(max int) (int, error) {
			n := 0
			for k, exp := range m {
				if n < max && !exp.IsZero() && !exp.After(now) {
					delete(m, k)
					n++
				}
			}
			return n, nil
		}}
	}
	keys, counters := map[string]time.Time{}, map[string]time.Time{}
	for k, v := range s.keys {
		keys[k] = v.expires
	}
	for k, v := range s.counters {
		counters[k] = v.expires
	}
	n, err := relay.Prune(max, expired(keys), expired(s.nonces), expired(counters),
		relay.PruneStep{Kind: "events", Delete: func(max int) (int, error) {
			n := 0
			for _, e := range s.byTime(relay.EventFilter{Until: eventsBefore}) {
				if n < max && !eventsBefore.IsZero() && e.done() {
					s.delete(e)
					n++
				}
			}
			return n, nil
		}})
	for k := range s.keys {
		if _, ok := keys[k]; !ok {
			delete(s.keys, k)
		}
	}
	for k := range s.counters {
		if _, ok := counters[k]; !ok {
			delete(s.counters, k)
		}
	}
	return n, err
}

// delete removes e, and the record of its deliveries as the newest of
// their subjects.
func (s *MemStore) delete(e *memEvent) {
	delete(s.events, e.ev.ID)
	for sub, p := range s.last {
		if p.id == e.ev.ID {
			delete(s.last, sub)
		}
	}
}

// done reports whether every delivery of e, mirror copies included, is
// final.
func (e *memEvent) done() bool {
	for _, d := range e.dels {
		if !relay.Final(d.Status) {
			return false
		}
	}
	return true
}
