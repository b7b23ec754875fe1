package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

// update runs fn through the commit path with a fresh wtx, writing the
// counter changes it made when it succeeds.
func (db *DB) update(ctx context.Context, fn func(w *wtx) error) error {
	return db.commit.do(ctx, func(tx *bolt.Tx) error {
		w := newWtx(tx)
		if err := fn(w); err != nil {
			return err
		}
		return w.flush()
	})
}

// prepared is one Incoming, validated and encoded outside the transaction,
// so that the commit path only looks up and writes bytes.
type prepared struct {
	id        string
	key       []byte
	hash      [32]byte
	expires   uint64 // key expiry (nanos); never for a zero KeyExpires
	notBefore uint64 // keys expiring at or before this are forgotten
	rec       eventRec
	meta      []byte
	envelope  []byte
	raw       []byte
	dels      []preparedDelivery
	pending   int64
	// puts are the records insert writes as they are (everything but the
	// ordered deliveries), made outside the transaction.
	puts [][3][]byte
}

type preparedDelivery struct {
	key, val []byte
	due      []byte // nil when skipped
	status   string
	request  []byte // sealed relay.Request, or nil
	rec      deliveryRec
}

// keyRecord is the value of an idempotency key.
func keyRecord(expires uint64, hash [32]byte, id string) []byte {
	v := make([]byte, 0, 8+32+len(id))
	v = binary.BigEndian.AppendUint64(v, expires)
	v = append(v, hash[:]...)
	return append(v, id...)
}

// parseKeyRecord is the inverse of keyRecord.
func parseKeyRecord(v []byte) (expires uint64, hash [32]byte, id string, ok bool) {
	if len(v) < 40 {
		return 0, hash, "", false
	}
	copy(hash[:], v[8:40])
	return binary.BigEndian.Uint64(v), hash, string(v[40:]), true
}

// has reports whether b holds key. (Get cannot tell a key whose value is
// empty, put earlier in the same transaction, from no key.)
func has(b *bolt.Bucket, key []byte) bool {
	k, _ := b.Cursor().Seek(key)
	return bytes.Equal(k, key)
}

// validName reports whether s can be part of a key.
func validName(s string) bool { return s != "" && strings.IndexByte(s, sep) < 0 }

// prepare validates a batch and encodes its records. Events without an id
// get a UUIDv7.
func (db *DB) prepare(b *relay.Batch) ([]prepared, error) {
	preps := make([]prepared, len(b.Events))
	raws := map[*relay.Raw][]byte{}
	for i := range b.Events {
		in := &b.Events[i]
		e := &in.Event
		p := &preps[i]
		if e.IdempotencyKey == "" {
			return nil, fmt.Errorf("event %d: empty idempotency key", i)
		}
		p.id = e.ID
		if p.id == "" {
			u, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("event %d: new id: %w", i, err)
			}
			p.id = u.String()
		} else if !validName(p.id) {
			return nil, fmt.Errorf("event %d: invalid id %q", i, p.id)
		}
		p.key = []byte(e.IdempotencyKey)
		p.hash = in.BodyHash
		p.expires = nanos(in.KeyExpires)
		if in.KeyExpires.IsZero() {
			p.expires = math.MaxInt64
		}
		p.notBefore = nanos(e.ReceivedAt)

		states := make([]deliveryState, 0, len(e.Deliveries))
		seen := map[string]bool{}
		for j := range e.Deliveries {
			d := deliveryRec{Delivery: e.Deliveries[j], Source: e.Source}
			d.OutOfOrder, d.ResultID = false, ""
			if !validName(d.Target) || seen[d.Target] {
				return nil, fmt.Errorf("event %d: delivery %d: invalid or repeated target %q", i, j, d.Target)
			}
			seen[d.Target] = true
			switch d.Status {
			case "":
				d.Status = relay.DeliveryPending
			case relay.DeliveryPending, relay.DeliverySkipped:
			default:
				return nil, fmt.Errorf("event %d: delivery %d: status %q, want pending or skipped", i, j, d.Status)
			}
			d.EventID = p.id
			if d.CreatedAt.IsZero() {
				d.CreatedAt = e.ReceivedAt
			}
			if d.NextAt.IsZero() && d.Status == relay.DeliveryPending {
				d.NextAt = e.ReceivedAt
			}
			if d.History == nil {
				d.History = []relay.Attempt{}
			}
			d.Since = d.CreatedAt
			pd := preparedDelivery{key: deliveryKey(p.id, d.Target), status: d.Status}
			if d.Request != nil {
				req, err := json.Marshal(d.Request)
				if err != nil {
					return nil, fmt.Errorf("event %d: encode request: %w", i, err)
				}
				pd.request = db.sealer.Seal(bucketRequests, string(pd.key), req)
				d.Request = nil
			}
			if d.Order != nil && (d.Status != relay.DeliveryPending || !validName(d.Order.Key)) {
				d.Order = nil // only pending deliveries with a usable key are ordered
			}
			if d.Order != nil {
				o := *d.Order
				d.Order, d.OrderAt = &o, nanos(e.OccurredAt)
			}
			if d.Status == relay.DeliveryPending {
				d.Due = nanos(d.NextAt)
				pd.due = dueKey(&d, d.Due)
				p.pending++
			}
			val, err := json.Marshal(&d)
			if err != nil {
				return nil, fmt.Errorf("event %d: encode delivery: %w", i, err)
			}
			pd.val, pd.rec = val, d
			p.dels = append(p.dels, pd)
			states = append(states, deliveryState{Status: d.Status, Mirror: d.Mirror})
		}

		p.rec = newEventRec(e)
		p.rec.ID = p.id
		p.rec.Status = eventStatus(states, e.Status)
		meta, err := json.Marshal(&p.rec)
		if err != nil {
			return nil, fmt.Errorf("event %d: encode: %w", i, err)
		}
		p.meta = meta
		env := e.Envelope
		if in.Raw != nil && env != nil {
			env = spliceEnvelope(env, in.Raw.Body)
		}
		p.envelope = db.sealer.Seal(bucketEnvelopes, p.id, env)
		if in.Raw != nil {
			raw, ok := raws[in.Raw]
			if !ok {
				raw = encodeRaw(in.Raw)
				raws[in.Raw] = raw
			}
			p.raw = db.sealer.Seal(bucketRaws, p.id, raw)
		}
		p.puts = p.records()
	}
	return preps, nil
}

// records returns the records of a new event that insert writes as they
// are: the event, its key, envelope, raw request and index entries, and its
// deliveries but the ordered ones.
func (p *prepared) records() [][3][]byte {
	id := []byte(p.id)
	puts := make([][3][]byte, 0, 10+3*len(p.dels))
	puts = append(puts,
		[3][]byte{bucketEvents, id, p.meta},
		[3][]byte{bucketKeys, p.key, keyRecord(p.expires, p.hash, p.id)},
		[3][]byte{bucketKeyExp, timedKey(nil, p.expires, p.key), nil},
	)
	if p.envelope != nil {
		puts = append(puts, [3][]byte{bucketEnvelopes, id, p.envelope})
	}
	if p.raw != nil {
		puts = append(puts, [3][]byte{bucketRaws, id, p.raw})
	}
	for _, ik := range p.rec.indexKeys(false) {
		puts = append(puts, [3][]byte{ik[0], ik[1], nil})
	}
	for i := range p.dels {
		d := &p.dels[i]
		if d.rec.Order == nil {
			puts = append(puts, [3][]byte{bucketDeliveries, d.key, d.val})
			if d.due != nil {
				puts = append(puts, [3][]byte{bucketDue, d.due, nil})
			}
		}
		if d.request != nil {
			puts = append(puts, [3][]byte{bucketRequests, d.key, d.request})
		}
	}
	return puts
}

// Enqueue commits a batch durably before it returns: all of it or, on an
// error, none of it. Each event is deduped on its idempotency key (also
// against earlier events of the batch); a stored key that expired at or
// before the event's ReceivedAt counts as new. A zero KeyExpires never
// expires. Events without an ID get a UUIDv7. A Nonce stored before fails
// the batch with relay.ErrReplayed.
func (db *DB) Enqueue(ctx context.Context, b *relay.Batch) ([]relay.Outcome, error) {
	preps, err := db.prepare(b)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	var (
		outs  []relay.Outcome
		added int64
	)
	err = db.update(ctx, func(w *wtx) error {
		outs, added = make([]relay.Outcome, len(preps)), 0
		if b.Nonce != "" {
			// A nonce is kept in nonceexp only, under its expiry and itself:
			// a replayed token brings the same pair (its exp is signed with
			// its jti), and keys that grow with time are appended rather than
			// scattered over the pages of a bucket keyed by random jtis.
			// nonces holds those written before; it is only read.
			nonce := []byte(b.Nonce)
			key := timedKey(nil, nanos(b.NonceExpires), nonce)
			if has(w.b(bucketNonceExp), key) || w.b(bucketNonces).Get(nonce) != nil {
				return fmt.Errorf("nonce: %w", relay.ErrReplayed)
			}
			if err := w.b(bucketNonceExp).Put(key, nil); err != nil {
				return err
			}
		}
		for i := range preps {
			p := &preps[i]
			if v := w.b(bucketKeys).Get(p.key); v != nil {
				exp, hash, id, ok := parseKeyRecord(v)
				if ok && exp > p.notBefore {
					outs[i] = relay.Outcome{ID: id, Duplicate: hash == p.hash, Conflict: hash != p.hash}
					continue
				}
				// Expired but not pruned yet: forget it.
				if err := w.b(bucketKeyExp).Delete(timedKey(nil, exp, p.key)); err != nil {
					return err
				}
			}
			if err := db.insert(w, p); err != nil {
				return err
			}
			outs[i] = relay.Outcome{ID: p.id}
			added += p.pending
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	db.pending.Add(added)
	return outs, nil
}

// insert writes a new event with its deliveries, indexes and key.
func (db *DB) insert(w *wtx, p *prepared) error {
	id := []byte(p.id)
	if w.b(bucketEvents).Get(id) != nil {
		return fmt.Errorf("event %s already stored", p.id)
	}
	var ordered []deliveryRec // copies: this function may run again
	for i := range p.dels {
		d := &p.dels[i]
		if d.rec.Order != nil {
			ordered = append(ordered, d.rec) // written by enterQueue
		}
		w.count("delivery", d.status, 1)
	}
	for _, put := range p.puts {
		if err := w.b(put[0]).Put(put[1], put[2]); err != nil {
			return fmt.Errorf("put %s: %w", put[0], err)
		}
	}
	for i := range ordered {
		if err := w.enterQueue(&ordered[i]); err != nil {
			return err
		}
	}
	w.count("event", p.rec.Status, 1)
	return nil
}

// Claim marks up to n deliveries for target due at or before now as in
// flight, oldest due first, leased until now+lease. An in-flight delivery
// stays in the due index at the end of its lease, so that it is due again
// when the lease runs out.
//
// An ordered delivery (relay.Order) is in the due index only while it is
// its subject's active delivery (see order.go), so what is due may be
// handed out; Claim then coalesces it to its subject's newest delivery, or
// skips it when a newer event was delivered already, as its Order says.
func (db *DB) Claim(ctx context.Context, target string, now time.Time, n int, lease time.Duration) ([]relay.Job, error) {
	if n <= 0 {
		return nil, nil
	}
	var (
		jobs    []relay.Job
		skipped int64
	)
	err := db.update(ctx, func(w *wtx) error {
		jobs, skipped = nil, 0
		prefix := namePrefix(target)
		limit, until := nanos(now), nanos(now.Add(lease))
		var keys [][]byte
		c := w.b(bucketDue).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < n; k, _ = c.Next() {
			if at, _, ok := splitTimedKey(k, len(prefix)); !ok || at > limit {
				break
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			_, dk, _ := splitTimedKey(k, len(prefix))
			var d deliveryRec
			ok, err := getJSON(w.tx, bucketDeliveries, dk, &d)
			if err != nil {
				return err
			}
			if !ok || final(d.Status) || d.Parked || !bytes.Equal(k, dueKey(&d, d.Due)) {
				// A stale index entry; dropping it is the repair.
				if err := w.b(bucketDue).Delete(k); err != nil {
					return err
				}
				continue
			}
			if d.Order != nil && d.Status != relay.DeliveryInFlight {
				var n int64
				if ok, n, err = w.orderedTurn(&d, limit); err != nil {
					return err
				}
				skipped += n
				if !ok {
					continue
				}
			}
			job, err := db.claimOne(w, &d, until)
			if err != nil {
				return err
			}
			jobs = append(jobs, job)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", target, err)
	}
	db.pending.Add(-skipped)
	return jobs, nil
}

// orderedTurn decides what becomes of d, its subject's active delivery,
// due at or before limit: with Coalesce, the subject's newest delivery
// takes its place (d and those in between are skipped); a delivery older
// than one already delivered is skipped (Order.Skip, the next one gets its
// turn) or marked OutOfOrder. It leaves in *d the delivery to hand out (ok)
// and reports how many it skipped.
func (w *wtx) orderedTurn(d *deliveryRec, limit uint64) (ok bool, skipped int64, err error) {
	for {
		d.OutOfOrder = false
		if d.Order.Coalesce {
			prefix := subjPrefix(d.Target, d.Order.Key)
			_, last := w.queueEnds(prefix)
			if last != nil && !bytes.Equal(last, subjQKey(d)) {
				newest, err := w.queueDelivery(prefix, last, d.Target)
				if err != nil {
					return false, skipped, err
				}
				for {
					first, _ := w.queueEnds(prefix)
					if first == nil || bytes.Equal(first, last) {
						break
					}
					old, err := w.queueDelivery(prefix, first, d.Target)
					if err != nil {
						return false, skipped, err
					}
					if err := w.skip(&old, "coalesced: event "+newest.EventID+" about "+d.Order.Key+" supersedes it"); err != nil {
						return false, skipped, err
					}
					skipped++
				}
				if *d, err = w.queueDelivery(prefix, last, d.Target); err != nil { // active now
					return false, skipped, err
				}
			}
		}
		newer := w.newerDelivered(d)
		if newer == "" {
			return true, skipped, nil
		}
		if !d.Order.Skip {
			d.OutOfOrder = true
			return true, skipped, nil
		}
		if err := w.skip(d, "out of order: event "+newer+" about "+d.Order.Key+", which occurred later, was delivered already"); err != nil {
			return false, skipped, err
		}
		skipped++
		// The subject's next delivery has its turn now, if it is due.
		prefix := subjPrefix(d.Target, d.Order.Key)
		first, _ := w.queueEnds(prefix)
		if first == nil {
			return false, skipped, nil
		}
		next, err := w.queueDelivery(prefix, first, d.Target)
		if err != nil {
			return false, skipped, err
		}
		if next.Parked || next.Status == relay.DeliveryInFlight || next.Due > limit {
			return false, skipped, nil
		}
		*d = next
	}
}

// claimOne marks d in flight until until and returns its job.
func (db *DB) claimOne(w *wtx, d *deliveryRec, until uint64) (relay.Job, error) {
	dk := deliveryKey(d.EventID, d.Target)
	if d.Due != 0 {
		if err := w.b(bucketDue).Delete(dueKey(d, d.Due)); err != nil {
			return relay.Job{}, err
		}
	}
	w.move("delivery", d.Status, relay.DeliveryInFlight)
	d.Status, d.Due, d.Parked = relay.DeliveryInFlight, until, false
	if err := w.b(bucketDue).Put(dueKey(d, until), nil); err != nil {
		return relay.Job{}, err
	}
	if err := w.b(bucketInFlight).Put(dk, u64(until)); err != nil {
		return relay.Job{}, err
	}
	if err := w.putJSON(bucketDeliveries, dk, d); err != nil {
		return relay.Job{}, err
	}
	var e eventRec
	if _, err := getJSON(w.tx, bucketEvents, []byte(d.EventID), &e); err != nil {
		return relay.Job{}, err
	}
	env, err := loadEnvelope(w.tx, db.sealer, []byte(d.EventID))
	if err != nil {
		return relay.Job{}, err
	}
	return relay.Job{
		EventID:     d.EventID,
		Target:      d.Target,
		Type:        e.Type,
		Source:      e.Source,
		Tenant:      e.Tenant,
		Attempts:    d.Attempts,
		Tries:       d.Tries,
		Since:       d.Since,
		Envelope:    env,
		TraceParent: e.TraceParent,
		OutOfOrder:  d.OutOfOrder,
		Mirror:      d.Mirror,
	}, nil
}

// Complete records an attempt at an in-flight delivery and its new state,
// and recomputes the event's status. A dead delivery's DeadAt is the
// attempt's time (db.Now() when it has none). Completing a delivery that is
// not in flight is relay.ErrNotFound.
func (db *DB) Complete(ctx context.Context, r relay.Result) error {
	name := r.EventID + ":" + r.Target
	switch r.Status {
	case relay.DeliverySucceeded, relay.DeliveryRetrying, relay.DeliveryDead:
	default:
		return fmt.Errorf("complete %s: status %q, want succeeded, retrying or dead", name, r.Status)
	}
	deadAt := r.Attempt.At
	if deadAt.IsZero() {
		deadAt = db.Now()
	}
	var delta int64
	err := db.update(ctx, func(w *wtx) error {
		delta = 0
		dk := deliveryKey(r.EventID, r.Target)
		var d deliveryRec
		ok, err := getJSON(w.tx, bucketDeliveries, dk, &d)
		if err != nil {
			return err
		}
		if !ok || d.Status != relay.DeliveryInFlight {
			return fmt.Errorf("delivery not in flight: %w", relay.ErrNotFound)
		}
		if err := w.b(bucketDue).Delete(dueKey(&d, d.Due)); err != nil {
			return err
		}
		if err := w.b(bucketInFlight).Delete(dk); err != nil {
			return err
		}
		d.History = append(d.History, r.Attempt)
		if n := len(d.History); n > maxHistory {
			d.History = d.History[n-maxHistory:]
		}
		d.Attempts++
		d.Tries++
		d.LastStatus, d.LastError = r.Attempt.Status, r.Attempt.Error
		w.move("delivery", d.Status, r.Status)
		d.Status = r.Status
		switch r.Status {
		case relay.DeliverySucceeded:
			d.NextAt, d.Due = time.Time{}, 0
			d.ResultID = r.ResultID
			delta = -1
		case relay.DeliveryRetrying:
			d.NextAt, d.Due = r.NextAt, nanos(r.NextAt)
			if err := w.b(bucketDue).Put(dueKey(&d, d.Due), nil); err != nil {
				return err
			}
		case relay.DeliveryDead:
			d.NextAt, d.Due = time.Time{}, 0
			d.DeadAt, d.Reason = deadAt, r.Reason
			if err := w.b(bucketDead).Put(deadKey(&d), []byte(d.Source)); err != nil {
				return err
			}
			delta = -1
		}
		if d.Order != nil {
			var err error
			switch r.Status {
			case relay.DeliverySucceeded:
				if err = w.noteDelivered(&d); err == nil {
					err = w.leaveQueue(&d)
				}
			case relay.DeliveryDead:
				err = w.leaveQueue(&d)
			case relay.DeliveryRetrying:
				err = w.yield(&d)
			}
			if err != nil {
				return err
			}
		}
		if err := w.putJSON(bucketDeliveries, dk, &d); err != nil {
			return err
		}
		return w.refreshEvent(d.EventID)
	})
	if err != nil {
		return fmt.Errorf("complete %s: %w", name, err)
	}
	db.pending.Add(delta)
	return nil
}

// NextDue reports when target's earliest pending delivery is due. An
// in-flight delivery counts at the end of its lease, when a Claim would
// return it again.
func (db *DB) NextDue(ctx context.Context, target string) (at time.Time, ok bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		prefix := namePrefix(target)
		k, _ := tx.Bucket(bucketDue).Cursor().Seek(prefix)
		if k == nil || !bytes.HasPrefix(k, prefix) {
			return nil
		}
		n, _, valid := splitTimedKey(k, len(prefix))
		at, ok = fromNanos(n), valid
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next due %s: %w", target, err)
	}
	return at, ok, nil
}

// Pending counts deliveries not yet final (pending, in flight, retrying).
// It reads a counter kept in memory, so it is cheap enough for every
// ingest.
func (db *DB) Pending(ctx context.Context) (int, error) {
	return int(db.pending.Load()), nil
}
