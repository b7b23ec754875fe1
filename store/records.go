package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

// eventRec is an event as stored in the events bucket: everything but the
// envelope (kept in its own bucket, so that status changes do not rewrite
// it) and the deliveries (one record each).
type eventRec struct {
	ID             string    `json:"id"`
	Source         string    `json:"source"`
	Tenant         string    `json:"tenant"`
	Type           string    `json:"type"`
	IdempotencyKey string    `json:"idempotency_key"`
	Status         string    `json:"status"`
	ReceivedAt     time.Time `json:"received_at"`
	OccurredAt     time.Time `json:"occurred_at"`
	CausationID    string    `json:"causation_id,omitempty"`
	TraceParent    string    `json:"traceparent,omitempty"`
}

func newEventRec(e *relay.Event) eventRec {
	return eventRec{
		ID: e.ID, Source: e.Source, Tenant: e.Tenant, Type: e.Type,
		IdempotencyKey: e.IdempotencyKey, Status: e.Status,
		ReceivedAt: e.ReceivedAt, OccurredAt: e.OccurredAt,
		CausationID: e.CausationID, TraceParent: e.TraceParent,
	}
}

func (r *eventRec) event() relay.Event {
	return relay.Event{
		ID: r.ID, Source: r.Source, Tenant: r.Tenant, Type: r.Type,
		IdempotencyKey: r.IdempotencyKey, Status: r.Status,
		ReceivedAt: r.ReceivedAt, OccurredAt: r.OccurredAt,
		CausationID: r.CausationID, TraceParent: r.TraceParent,
		Deliveries: []relay.Delivery{},
	}
}

// indexKeys returns the event's keys in the secondary indexes, by bucket.
// Since version 5 an event has an entry in bytime, one in bystatus unless
// it is queued (statusIndexed), and one in bysource only as a result event
// (Effects reads it); a filter on anything else is answered by a bounded
// scan of bytime (see Events). withEmpty lists every key that any version
// wrote (an empty tenant or type, a queued status, any source), for Prune,
// which also clears the entries of events stored before.
func (r *eventRec) indexKeys(withEmpty bool) [][2][]byte {
	at := nanos(r.ReceivedAt)
	id := []byte(r.ID)
	keys := [][2][]byte{{bucketByTime, timedKey(nil, at, id)}}
	if statusIndexed(r.Status) || withEmpty {
		keys = append(keys, [2][]byte{bucketByStatus, timedKey(namePrefix(r.Status), at, id)})
	}
	if strings.HasPrefix(r.Source, resultSourcePrefix) || withEmpty {
		keys = append(keys, [2][]byte{bucketBySource, timedKey(namePrefix(r.Source), at, id)})
	}
	if withEmpty {
		keys = append(keys,
			[2][]byte{bucketByTenant, timedKey(namePrefix(r.Tenant), at, id)},
			[2][]byte{bucketByType, timedKey(namePrefix(r.Type), at, id)})
	}
	return keys
}

// statusIndexed reports whether events of status have bystatus entries:
// every status but queued, the one a new event usually has and leaves soon
// (writing its entry at ingest cost a record per event; queued events are
// the newest, found by a scan of bytime).
func statusIndexed(status string) bool { return status != relay.EventQueued }

// deliveryRec is a delivery as stored: the public fields plus what the
// dispatcher and the indexes need. Delivery.Request is kept in the requests
// bucket (sealed like envelopes), never here.
type deliveryRec struct {
	relay.Delivery
	Source string    `json:"source"`
	Tries  int       `json:"tries"` // attempts since Since
	Since  time.Time `json:"since"` // creation or last replay
	// Due is the delivery's position in the due index (nanos): NextAt, or
	// the end of the lease while in flight. Final and parked deliveries
	// have none.
	Due uint64 `json:"due"`
	// OrderAt is, for a delivery with an Order, its event's OccurredAt
	// (nanos): its position in the subject queue.
	OrderAt uint64 `json:"order_at,omitempty"`
	// Parked: an ordered delivery waiting behind another delivery of its
	// subject; it is not in the due index until it is that subject's
	// active delivery.
	Parked bool `json:"parked,omitempty"`
}

// wtx is one operation's view of a write transaction: the buckets, and the
// counter changes it makes, written by flush. A wtx lives for one run of
// one operation's function.
type wtx struct {
	tx     *bolt.Tx
	counts map[string]int64
	puts   int // records written by put, counted into DB.WriteStats on commit
}

func newWtx(tx *bolt.Tx) *wtx { return &wtx{tx: tx, counts: map[string]int64{}} }

// put writes one record: every record an operation writes goes through it,
// so that WriteStats counts them.
func (w *wtx) put(name, k, v []byte) error {
	w.puts++
	return w.tx.Bucket(name).Put(k, v)
}

// fillPages makes the buckets whose keys only grow fill their pages: new
// keys land at the end, so bbolt's default (split at half a page) would
// leave every page half empty. It runs once per write transaction.
func fillPages(tx *bolt.Tx) {
	for _, name := range appendBuckets {
		if b := tx.Bucket(name); b != nil {
			b.FillPercent = 1.0
		}
	}
}

// appendBuckets are keyed by time (UUIDv7 ids, timed index keys).
var appendBuckets = [][]byte{bucketEvents, bucketEnvelopes, bucketRaws, bucketRawOf, bucketRawSibs, bucketByTime, bucketByStatus, bucketBySource, bucketByTenant, bucketByType, bucketKeyExp, bucketNonceExp}

func (w *wtx) b(name []byte) *bolt.Bucket { return w.tx.Bucket(name) }

// count adds n to the counter of an event or delivery status.
func (w *wtx) count(kind, status string, n int64) {
	if status != "" && n != 0 {
		w.counts[kind+"/"+status] += n
	}
}

// move counts one record of kind leaving status from and entering to.
func (w *wtx) move(kind, from, to string) {
	if from != to {
		w.count(kind, from, -1)
		w.count(kind, to, 1)
	}
}

// flush writes the counter changes.
func (w *wtx) flush() error {
	b := w.b(bucketCounts)
	for k, n := range w.counts {
		if n == 0 {
			continue
		}
		if err := w.put(bucketCounts, []byte(k), putInt64(getInt64(b.Get([]byte(k)))+n)); err != nil {
			return err
		}
	}
	clear(w.counts)
	return nil
}

// getJSON decodes the value under k in bucket name into v; ok is false when
// there is none.
func getJSON(tx *bolt.Tx, name, k []byte, v any) (ok bool, err error) {
	data := tx.Bucket(name).Get(k)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %s %q: %w", name, k, err)
	}
	return true, nil
}

// putJSON encodes v under k in bucket name.
func (w *wtx) putJSON(name, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.put(name, k, data)
}

// deliveries returns the delivery records of event id, ordered by target.
func deliveries(tx *bolt.Tx, id string) ([]deliveryRec, error) {
	var recs []deliveryRec
	p := eventPrefix(id)
	c := tx.Bucket(bucketDeliveries).Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		var d deliveryRec
		if err := json.Unmarshal(v, &d); err != nil {
			return nil, fmt.Errorf("decode delivery %q: %w", k, err)
		}
		recs = append(recs, d)
	}
	return recs, nil
}

// deliveryStates returns the states of event id's deliveries.
func deliveryStates(tx *bolt.Tx, id string) ([]relay.DeliveryState, error) {
	var ss []relay.DeliveryState
	p := eventPrefix(id)
	c := tx.Bucket(bucketDeliveries).Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		var s relay.DeliveryState
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("decode delivery %q: %w", k, err)
		}
		ss = append(ss, s)
	}
	return ss, nil
}

// refreshEvent recomputes event id's status from its deliveries and, when
// it changed, rewrites the event and moves it in the status index.
func (w *wtx) refreshEvent(id string) error {
	var e eventRec
	ok, err := getJSON(w.tx, bucketEvents, []byte(id), &e)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("event %s: %w", id, relay.ErrNotFound)
	}
	ss, err := deliveryStates(w.tx, id)
	if err != nil {
		return err
	}
	status := relay.EventStatus(ss, e.Status)
	if status == e.Status {
		return nil
	}
	at, bid := nanos(e.ReceivedAt), []byte(id)
	idx := w.b(bucketByStatus)
	if err := idx.Delete(timedKey(namePrefix(e.Status), at, bid)); err != nil {
		return err
	}
	if statusIndexed(status) {
		if err := w.put(bucketByStatus, timedKey(namePrefix(status), at, bid), nil); err != nil {
			return err
		}
	}
	w.move("event", e.Status, status)
	e.Status = status
	return w.putJSON(bucketEvents, bid, &e)
}

// dueKey returns the due-index key of delivery d at position at.
func dueKey(d *deliveryRec, at uint64) []byte {
	return timedKey(namePrefix(d.Target), at, deliveryKey(d.EventID, d.Target))
}

// deadKey returns the dead-letter index key of delivery d.
func deadKey(d *deliveryRec) []byte {
	return timedKey(nil, nanos(d.DeadAt), deliveryKey(d.EventID, d.Target))
}
