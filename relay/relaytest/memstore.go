package relaytest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// MemStore is an in-memory store: relay.Queue, admin.Store, relay.Pruner
// and relay.Counters behind one mutex, for unit tests of the packages
// that use a store. It passes TestStore and keeps nothing across
// processes. Its decisions are relay's (CheckBatch, EventStatus,
// OrderedTurn); it keeps no index, so every listing scans all events.
type MemStore struct {
	// Now is the store's clock, for events enqueued without ReceivedAt;
	// default time.Now.
	Now func() time.Time

	mu       sync.Mutex
	events   map[string]*memEvent
	keys     map[string]memKey
	nonces   map[string]time.Time // jti → expiry
	counters map[string]memCounter
	last     map[memSubject]memPosition // newest event delivered, per subject
}

// memEvent is a stored event; its Deliveries are kept in ev.Deliveries'
// order, in dels.
type memEvent struct {
	ev   relay.Event // Deliveries nil: see dels
	raw  *relay.Raw
	dels []*memDelivery
}

// memDelivery is a stored delivery and what the dispatcher needs besides.
type memDelivery struct {
	relay.Delivery
	source   string
	occurred time.Time // the event's OccurredAt: its place in its subject's queue
	tries    int
	since    time.Time
	lease    time.Time // while in flight: when it is due again
}

type memKey struct {
	hash    [32]byte
	id      string
	expires time.Time // zero: never
}

type memCounter struct {
	n       int
	expires time.Time
}

type memSubject struct{ target, key string }

type memPosition struct {
	at time.Time
	id string
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{Now: time.Now, events: map[string]*memEvent{}, keys: map[string]memKey{},
		nonces: map[string]time.Time{}, counters: map[string]memCounter{}, last: map[memSubject]memPosition{}}
}

// Close does nothing; the store keeps working.
func (s *MemStore) Close() error { return nil }

// Enqueue commits a batch: all of it or none of it.
func (s *MemStore) Enqueue(ctx context.Context, b *relay.Batch) ([]relay.Outcome, error) {
	ins, err := relay.CheckBatch(b, s.Now())
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Nonce != "" {
		if _, ok := s.nonces[b.Nonce]; ok {
			return nil, fmt.Errorf("enqueue: nonce: %w", relay.ErrReplayed)
		}
	}
	// Decide every outcome first, so that an error leaves nothing behind.
	outs := make([]relay.Outcome, len(ins))
	taken := map[string]memKey{} // keys this batch takes
	known := func(key string, at time.Time) (memKey, bool) {
		k, ok := taken[key]
		if !ok {
			k, ok = s.keys[key]
			ok = ok && (k.expires.IsZero() || k.expires.After(at))
		}
		return k, ok
	}
	for i := range ins {
		e := &ins[i].Event
		if k, ok := known(e.IdempotencyKey, e.ReceivedAt); ok {
			dup := k.hash == ins[i].BodyHash
			outs[i] = relay.Outcome{ID: k.id, Duplicate: dup, Conflict: !dup}
			continue
		}
		if bk := ins[i].BodyKey; bk != "" {
			// The same body under another id: a duplicate.
			if k, ok := known(bk, e.ReceivedAt); ok {
				outs[i] = relay.Outcome{ID: k.id, Duplicate: true}
				continue
			}
		}
		if _, stored := s.events[e.ID]; stored {
			return nil, fmt.Errorf("enqueue: event %s already stored", e.ID)
		}
		taken[e.IdempotencyKey] = memKey{hash: ins[i].BodyHash, id: e.ID, expires: ins[i].KeyExpires}
		if bk := ins[i].BodyKey; bk != "" {
			taken[bk] = taken[e.IdempotencyKey]
		}
		outs[i] = relay.Outcome{ID: e.ID}
	}
	if b.Nonce != "" {
		s.nonces[b.Nonce] = b.NonceExpires
	}
	raws := map[*relay.Raw]*relay.Raw{}
	for i := range ins {
		in := &ins[i]
		if outs[i].Duplicate || outs[i].Conflict {
			continue
		}
		s.keys[in.Event.IdempotencyKey] = taken[in.Event.IdempotencyKey]
		if in.BodyKey != "" {
			s.keys[in.BodyKey] = taken[in.BodyKey]
		}
		me := &memEvent{ev: in.Event}
		me.ev.Envelope = slices.Clone(in.Event.Envelope)
		me.ev.Deliveries = nil
		if in.Raw != nil {
			if of := s.events[in.RawOf]; raws[in.Raw] == nil && of != nil && of.raw != nil {
				raws[in.Raw] = of.raw // stored by an earlier part of the request
			}
			if raws[in.Raw] == nil {
				raws[in.Raw] = cloneRaw(in.Raw)
			}
			me.raw = raws[in.Raw]
		}
		for _, d := range in.Event.Deliveries {
			me.dels = append(me.dels, &memDelivery{Delivery: d, source: in.Event.Source, occurred: in.Event.OccurredAt, since: d.CreatedAt})
		}
		s.events[in.Event.ID] = me
	}
	return outs, nil
}

func cloneRaw(r *relay.Raw) *relay.Raw {
	c := *r
	c.Body = slices.Clone(r.Body)
	c.Header = map[string][]string{}
	for k, v := range r.Header {
		c.Header[k] = slices.Clone(v)
	}
	return &c
}

// subject returns the queue of d's subject: its target's ordered
// deliveries with d's Order.Key that are not final, by their events'
// OccurredAt, then event id.
func (s *MemStore) subject(target, key string) []*memDelivery {
	var q []*memDelivery
	for _, e := range s.events {
		for _, d := range e.dels {
			if d.Target == target && d.Order != nil && d.Order.Key == key && !relay.Final(d.Status) {
				q = append(q, d)
			}
		}
	}
	slices.SortFunc(q, func(a, b *memDelivery) int {
		return cmp.Or(a.occurred.Compare(b.occurred), cmp.Compare(a.EventID, b.EventID))
	})
	return q
}

// due reports when d is due (its NextAt, or its lease's end while in
// flight); ok is false for a final delivery or an ordered one that is not
// its subject's active delivery (the one in flight, else the first).
func (s *MemStore) due(d *memDelivery) (at time.Time, ok bool) {
	if relay.Final(d.Status) {
		return time.Time{}, false
	}
	if d.Status == relay.DeliveryInFlight {
		return d.lease, true
	}
	if d.Order != nil {
		q := s.subject(d.Target, d.Order.Key)
		for _, o := range q {
			if o.Status == relay.DeliveryInFlight {
				return time.Time{}, false
			}
		}
		if q[0] != d {
			return time.Time{}, false
		}
	}
	return d.NextAt, true
}

// dueOf lists target's deliveries that are due at or before now (all of
// them when now is zero), oldest due first.
func (s *MemStore) dueOf(target string, now time.Time) []*memDelivery {
	type item struct {
		d  *memDelivery
		at time.Time
	}
	var items []item
	for _, e := range s.events {
		for _, d := range e.dels {
			if d.Target != target {
				continue
			}
			if at, ok := s.due(d); ok && (now.IsZero() || !at.After(now)) {
				items = append(items, item{d, at})
			}
		}
	}
	slices.SortFunc(items, func(a, b item) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.d.EventID, b.d.EventID)) })
	out := make([]*memDelivery, len(items))
	for i, it := range items {
		out[i] = it.d
	}
	return out
}

// Claim marks up to n of target's due deliveries in flight until
// now+lease, oldest due first; ordered ones take their turn as
// relay.OrderedTurn decides.
func (s *MemStore) Claim(ctx context.Context, target string, now time.Time, n int, lease time.Duration) ([]relay.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var jobs []relay.Job
	for _, d := range s.dueOf(target, now) {
		if len(jobs) >= n {
			break
		}
		if at, ok := s.due(d); !ok || at.After(now) {
			continue // skipped or handed out meanwhile
		}
		if d.Order != nil && d.Status != relay.DeliveryInFlight {
			q := &memQueue{s: s, target: target, key: d.Order.Key, now: now}
			turn, outOfOrder, _, err := relay.OrderedTurn(q, d.EventID)
			if err != nil {
				return nil, fmt.Errorf("claim %s: %w", target, err)
			}
			if turn == "" {
				continue
			}
			d = s.delivery(turn, target)
			d.OutOfOrder = outOfOrder
		}
		d.Status, d.lease = relay.DeliveryInFlight, now.Add(lease)
		e := s.events[d.EventID]
		jobs = append(jobs, relay.Job{EventID: d.EventID, Target: target, Type: e.ev.Type, Source: e.ev.Source, Tenant: e.ev.Tenant,
			Attempts: d.Attempts, Tries: d.tries, Since: d.since, Envelope: slices.Clone(e.ev.Envelope), TraceParent: e.ev.TraceParent,
			OutOfOrder: d.OutOfOrder, Mirror: d.Mirror})
		s.refresh(e)
	}
	return jobs, nil
}

// delivery returns event id's delivery to target, or nil.
func (s *MemStore) delivery(id, target string) *memDelivery {
	if e := s.events[id]; e != nil {
		for _, d := range e.dels {
			if d.Target == target {
				return d
			}
		}
	}
	return nil
}

// refresh recomputes e's status from its deliveries.
func (s *MemStore) refresh(e *memEvent) {
	states := make([]relay.DeliveryState, len(e.dels))
	for i, d := range e.dels {
		states[i] = relay.DeliveryState{Status: d.Status, Mirror: d.Mirror}
	}
	e.ev.Status = relay.EventStatus(states, e.ev.Status)
}

// memQueue is a subject's queue as relay.OrderedTurn sees it.
type memQueue struct {
	s           *MemStore
	target, key string
	now         time.Time
}

func (q *memQueue) Ends() (first, last string, err error) {
	sq := q.s.subject(q.target, q.key)
	if len(sq) == 0 {
		return "", "", nil
	}
	return sq[0].EventID, sq[len(sq)-1].EventID, nil
}

func (q *memQueue) Order(id string) (relay.Order, error) {
	d := q.s.delivery(id, q.target)
	if d == nil || d.Order == nil {
		return relay.Order{}, fmt.Errorf("ordered delivery %s:%s missing", id, q.target)
	}
	return *d.Order, nil
}

func (q *memQueue) NewerDelivered(id string) (string, error) {
	d := q.s.delivery(id, q.target)
	if p, ok := q.s.last[memSubject{q.target, q.key}]; ok && p.at.After(d.occurred) {
		return p.id, nil
	}
	return "", nil
}

func (q *memQueue) Skip(id, reason string) error {
	d := q.s.delivery(id, q.target)
	d.Status, d.Reason, d.NextAt = relay.DeliverySkipped, reason, time.Time{}
	q.s.refresh(q.s.events[id])
	return nil
}

func (q *memQueue) Ready(id string) (bool, error) {
	at, ok := q.s.due(q.s.delivery(id, q.target))
	return ok && !at.After(q.now), nil
}

// Complete records an attempt at an in-flight delivery and its new state.
func (s *MemStore) Complete(ctx context.Context, r relay.Result) error {
	name := r.EventID + ":" + r.Target
	if err := r.Check(); err != nil {
		return fmt.Errorf("complete %s: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.delivery(r.EventID, r.Target)
	if d == nil || d.Status != relay.DeliveryInFlight {
		return fmt.Errorf("complete %s: delivery not in flight: %w", name, relay.ErrNotFound)
	}
	d.History = relay.AddAttempt(d.History, r.Attempt)
	d.Attempts++
	d.tries++
	d.LastStatus, d.LastError = r.Attempt.Status, r.Attempt.Error
	d.Status, d.NextAt, d.lease = r.Status, time.Time{}, time.Time{}
	switch r.Status {
	case relay.DeliverySucceeded:
		d.ResultID = r.ResultID
		if d.Order != nil {
			sub, pos := memSubject{d.Target, d.Order.Key}, memPosition{d.occurred, d.EventID}
			if p, ok := s.last[sub]; !ok || pos.at.After(p.at) || pos.at.Equal(p.at) && pos.id > p.id {
				s.last[sub] = pos
			}
		}
	case relay.DeliveryRetrying:
		d.NextAt = r.NextAt
	case relay.DeliveryDead:
		d.DeadAt, d.Reason = r.DeadAt(s.Now()), r.Reason
	}
	s.refresh(s.events[r.EventID])
	return nil
}

// NextDue reports when target's earliest due delivery is due.
func (s *MemStore) NextDue(ctx context.Context, target string) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := s.dueOf(target, time.Time{})
	if len(ds) == 0 {
		return time.Time{}, false, nil
	}
	at, _ := s.due(ds[0])
	return at, true, nil
}

// Pending counts deliveries not yet final.
func (s *MemStore) Pending(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		for _, d := range e.dels {
			if !relay.Final(d.Status) {
				n++
			}
		}
	}
	return n, nil
}

// Add adds n to the counter name and returns its new value.
func (s *MemStore) Add(ctx context.Context, name string, n int, expires time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.counters[name]
	if !ok && n == 0 {
		return 0, nil
	}
	c.n += n
	if expires.After(c.expires) {
		c.expires = expires
	}
	s.counters[name] = c
	return c.n, nil
}
