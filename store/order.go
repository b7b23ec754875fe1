package store

import (
	"bytes"
	"fmt"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Per-subject ordering (relay.Order).
//
// Every ordered delivery that is not final has an entry in its subject
// queue (bucket subjq), sorted by its event's OccurredAt, then event id.
// Of a queue's deliveries exactly one is active, that is in the due index:
// the one in flight, if any, else the first. The others are parked
// (deliveryRec.Parked, no due entry), so that Claim and NextDue never see
// them and a blocked subject costs nothing while it waits. When the active
// delivery becomes final, the queue's first entry becomes active.
//
// subjlast remembers, per (target, subject), the newest event delivered,
// to tell an out-of-order delivery when it is handed out.

// subjPrefix is the prefix of the queue of (target, key).
func subjPrefix(target, key string) []byte {
	k := make([]byte, 0, len(target)+len(key)+2)
	k = append(k, target...)
	k = append(k, sep)
	k = append(k, key...)
	return append(k, sep)
}

// subjQKey is d's entry in its subject queue.
func subjQKey(d *deliveryRec) []byte {
	return timedKey(subjPrefix(d.Target, d.Order.Key), d.OrderAt, []byte(d.EventID))
}

// subjLastKey is the key of (target, key) in subjlast.
func subjLastKey(target, key string) []byte {
	p := subjPrefix(target, key)
	return p[:len(p)-1]
}

// queueDelivery returns the delivery of a subject-queue entry of target.
func (w *wtx) queueDelivery(prefix, entry []byte, target string) (deliveryRec, error) {
	var d deliveryRec
	_, id, ok := splitTimedKey(entry, len(prefix))
	if !ok {
		return d, fmt.Errorf("bad subject queue entry %q", entry)
	}
	found, err := getJSON(w.tx, bucketDeliveries, deliveryKey(string(id), target), &d)
	if err != nil {
		return d, err
	}
	if !found {
		return d, fmt.Errorf("subject queue entry %q: delivery missing", entry)
	}
	return d, nil
}

// queueEnds returns the first and last entries of a subject queue (nil
// when it is empty).
func (w *wtx) queueEnds(prefix []byte) (first, last []byte) {
	c := w.b(bucketSubjQueue).Cursor()
	if k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
		first = bytes.Clone(k)
	}
	if first == nil {
		return nil, nil
	}
	end := prefixEnd(prefix)
	var k []byte
	if end == nil {
		k, _ = c.Last()
	} else if k, _ = c.Seek(end); k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	return first, bytes.Clone(k)
}

// putDelivery writes d.
func (w *wtx) putDelivery(d *deliveryRec) error {
	return w.putJSON(bucketDeliveries, deliveryKey(d.EventID, d.Target), d)
}

// enterQueue adds d, an ordered delivery about to be pending (new, or
// replayed from a final state), to its subject queue and writes it: active
// at d.NextAt when it sorts first and nothing of its subject is in flight
// (the delivery it overtakes is parked), else parked.
func (w *wtx) enterQueue(d *deliveryRec) error {
	prefix := subjPrefix(d.Target, d.Order.Key)
	qk := subjQKey(d)
	d.Parked, d.Due = false, nanos(d.NextAt)
	if first, _ := w.queueEnds(prefix); first != nil {
		if bytes.Compare(qk, first) > 0 {
			d.Parked = true
		} else {
			f, err := w.queueDelivery(prefix, first, d.Target)
			if err != nil {
				return err
			}
			if f.Status == relay.DeliveryInFlight || f.Parked {
				d.Parked = true // the active one is in flight
			} else if err := w.park(&f); err != nil {
				return err
			}
		}
	}
	if d.Parked {
		d.Due = 0
	} else if err := w.put(bucketDue, dueKey(d, d.Due), nil); err != nil {
		return err
	}
	if err := w.put(bucketSubjQueue, qk, nil); err != nil {
		return err
	}
	return w.putDelivery(d)
}

// park takes the active delivery d out of the due index.
func (w *wtx) park(d *deliveryRec) error {
	if err := w.b(bucketDue).Delete(dueKey(d, d.Due)); err != nil {
		return err
	}
	d.Parked, d.Due = true, 0
	return w.putDelivery(d)
}

// activateFirst makes the first delivery of a subject queue active (due at
// its NextAt). It does nothing when the queue is empty or its first entry
// is active already.
func (w *wtx) activateFirst(target, key string) error {
	prefix := subjPrefix(target, key)
	first, _ := w.queueEnds(prefix)
	if first == nil {
		return nil
	}
	f, err := w.queueDelivery(prefix, first, target)
	if err != nil || !f.Parked {
		return err
	}
	f.Parked, f.Due = false, nanos(f.NextAt)
	if err := w.put(bucketDue, dueKey(&f, f.Due), nil); err != nil {
		return err
	}
	return w.putDelivery(&f)
}

// leaveQueue removes d, which just became final, from its subject queue
// and makes the queue's next delivery active. The caller writes d.
func (w *wtx) leaveQueue(d *deliveryRec) error {
	if err := w.b(bucketSubjQueue).Delete(subjQKey(d)); err != nil {
		return err
	}
	d.Parked = false
	return w.activateFirst(d.Target, d.Order.Key)
}

// yield parks d, the active delivery, when it is retrying and an earlier
// delivery of its subject arrived meanwhile; that one becomes active.
func (w *wtx) yield(d *deliveryRec) error {
	prefix := subjPrefix(d.Target, d.Order.Key)
	first, _ := w.queueEnds(prefix)
	if first == nil || bytes.Equal(first, subjQKey(d)) {
		return nil
	}
	if err := w.park(d); err != nil {
		return err
	}
	return w.activateFirst(d.Target, d.Order.Key)
}

// noteDelivered records that d's event was delivered, when it is the
// newest of its subject delivered to d's target so far.
func (w *wtx) noteDelivered(d *deliveryRec) error {
	k := subjLastKey(d.Target, d.Order.Key)
	pos := timedKey(nil, d.OrderAt, []byte(d.EventID))
	if v := w.b(bucketSubjLast).Get(k); v != nil && bytes.Compare(v, pos) >= 0 {
		return nil
	}
	return w.put(bucketSubjLast, k, pos)
}

// newerDelivered returns the id of an event about d's subject that
// occurred after d's and was delivered to d's target already ("" if none).
func (w *wtx) newerDelivered(d *deliveryRec) string {
	v := w.b(bucketSubjLast).Get(subjLastKey(d.Target, d.Order.Key))
	at, id, ok := splitTimedKey(v, 0)
	if !ok || at <= d.OrderAt {
		return ""
	}
	return string(id)
}

// skip makes the non-final ordered delivery d skipped with reason (taking
// it out of the due index and its queue) and recomputes its event.
func (w *wtx) skip(d *deliveryRec, reason string) error {
	if d.Due != 0 {
		if err := w.b(bucketDue).Delete(dueKey(d, d.Due)); err != nil {
			return err
		}
	}
	w.move("delivery", d.Status, relay.DeliverySkipped)
	d.Status, d.Reason = relay.DeliverySkipped, reason
	d.NextAt, d.Due = time.Time{}, 0
	if err := w.leaveQueue(d); err != nil {
		return err
	}
	if err := w.putDelivery(d); err != nil {
		return err
	}
	return w.refreshEvent(d.EventID)
}

// forgetDelivered drops the subjlast entries that name event id, which is
// being deleted.
func (w *wtx) forgetDelivered(id string, recs []deliveryRec) error {
	for i := range recs {
		d := &recs[i]
		if d.Order == nil {
			continue
		}
		k := subjLastKey(d.Target, d.Order.Key)
		if _, last, ok := splitTimedKey(w.b(bucketSubjLast).Get(k), 0); ok && string(last) == id {
			if err := w.b(bucketSubjLast).Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// orderedTurn decides (relay.OrderedTurn) what becomes of d, its
// subject's active delivery, due at or before limit. It leaves in *d the
// delivery to hand out (ok) and reports how many it skipped.
func (w *wtx) orderedTurn(d *deliveryRec, limit uint64) (ok bool, skipped int64, err error) {
	q := &subjectQueue{w: w, prefix: subjPrefix(d.Target, d.Order.Key), target: d.Target, limit: limit, active: d}
	turn, outOfOrder, n, err := relay.OrderedTurn(q, d.EventID)
	if err != nil || turn == "" {
		return false, int64(n), err
	}
	if turn != d.EventID {
		if *d, err = q.delivery(turn); err != nil {
			return false, int64(n), err
		}
	}
	d.OutOfOrder = outOfOrder
	return true, int64(n), nil
}

// subjectQueue is a subject queue as relay.OrderedTurn sees it.
type subjectQueue struct {
	w      *wtx
	prefix []byte
	target string
	limit  uint64
	active *deliveryRec // as claimed; read again once skipped
}

func (q *subjectQueue) delivery(id string) (deliveryRec, error) {
	if q.active != nil && q.active.EventID == id {
		return *q.active, nil
	}
	var d deliveryRec
	found, err := getJSON(q.w.tx, bucketDeliveries, deliveryKey(id, q.target), &d)
	if err == nil && (!found || d.Order == nil) {
		err = fmt.Errorf("subject queue entry %s:%s: ordered delivery missing", id, q.target)
	}
	return d, err
}

func (q *subjectQueue) Ends() (first, last string, err error) {
	f, l := q.w.queueEnds(q.prefix)
	if f == nil {
		return "", "", nil
	}
	for i, k := range [][]byte{f, l} {
		_, id, ok := splitTimedKey(k, len(q.prefix))
		if !ok {
			return "", "", fmt.Errorf("bad subject queue entry %q", k)
		}
		if i == 0 {
			first = string(id)
		} else {
			last = string(id)
		}
	}
	return first, last, nil
}

func (q *subjectQueue) Order(id string) (relay.Order, error) {
	d, err := q.delivery(id)
	if err != nil {
		return relay.Order{}, err
	}
	return *d.Order, nil
}

func (q *subjectQueue) NewerDelivered(id string) (string, error) {
	d, err := q.delivery(id)
	if err != nil {
		return "", err
	}
	return q.w.newerDelivered(&d), nil
}

func (q *subjectQueue) Skip(id, reason string) error {
	d, err := q.delivery(id)
	if err != nil {
		return err
	}
	if q.active != nil && q.active.EventID == id {
		q.active = nil
	}
	return q.w.skip(&d, reason)
}

func (q *subjectQueue) Ready(id string) (bool, error) {
	d, err := q.delivery(id)
	if err != nil {
		return false, err
	}
	return !d.Parked && d.Status != relay.DeliveryInFlight && d.Due <= q.limit, nil
}
