package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
)

// prepared is one Incoming, validated and encoded outside the transaction,
// so that the commit path only looks up and writes bytes.
type prepared struct {
	id        string
	key       []byte
	bodyKey   []byte // relay.Incoming.BodyKey; nil for none
	hash      [32]byte
	expires   uint64 // key expiry (nanos); never for a zero KeyExpires
	notBefore uint64 // keys expiring at or before this are forgotten
	rec       eventRec
	meta      []byte
	envelope  []byte // sealed for the envelopes bucket; nil when none or envPlain
	// envPlain is the stored form of an envelope that goes into the raw
	// record when this event holds it (see putRaw), else into envelopes.
	envPlain []byte
	// raw is the request, shared by the events of one request (a batch);
	// rawPlain its stored form; rawSealed that form sealed for this event,
	// made for the first event of each request (the likely owner, see
	// insert).
	raw       *relay.Raw
	rawOf     string // relay.Incoming.RawOf
	rawPlain  []byte
	rawSealed []byte
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

// prepare validates a batch (relay.CheckBatch) and encodes its records.
func (db *DB) prepare(b *relay.Batch) ([]prepared, error) {
	raws := map[*relay.Raw][]byte{} // each request's raw, encoded once
	return relay.PrepareBatch(b, db.Now(), func(_ int, in *relay.Incoming, p *prepared) error {
		e := &in.Event
		p.id = e.ID
		p.key = []byte(e.IdempotencyKey)
		if in.BodyKey != "" && in.BodyKey != e.IdempotencyKey {
			p.bodyKey = []byte(in.BodyKey)
		}
		p.hash = in.BodyHash
		p.expires = nanos(in.KeyExpires)
		if in.KeyExpires.IsZero() {
			p.expires = math.MaxInt64
		}
		p.notBefore = nanos(e.ReceivedAt)
		for j := range e.Deliveries {
			d := deliveryRec{Delivery: e.Deliveries[j], Source: e.Source}
			d.Since = d.CreatedAt
			pd := preparedDelivery{key: deliveryKey(p.id, d.Target), status: d.Status}
			if d.Request != nil {
				req, err := json.Marshal(d.Request)
				if err != nil {
					return fmt.Errorf("encode request: %w", err)
				}
				pd.request = db.sealer.Seal(bucketRequests, string(pd.key), req)
				d.Request = nil
			}
			if d.Order != nil {
				d.OrderAt = nanos(e.OccurredAt)
			}
			if d.Status == relay.DeliveryPending {
				d.Due = nanos(d.NextAt)
				pd.due = dueKey(&d, d.Due)
				p.pending++
			}
			val, err := json.Marshal(&d)
			if err != nil {
				return fmt.Errorf("encode delivery: %w", err)
			}
			pd.val, pd.rec = val, d
			p.dels = append(p.dels, pd)
		}

		p.rec = newEventRec(e)
		meta, err := json.Marshal(&p.rec)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		p.meta = meta
		env := e.Envelope
		if in.Raw == nil {
			p.envelope = db.sealer.Seal(bucketEnvelopes, p.id, env)
		} else {
			if env != nil {
				p.envPlain = spliceEnvelope(env, in.Raw.Body)
			}
			p.raw, p.rawPlain, p.rawOf = in.Raw, raws[in.Raw], in.RawOf
			if p.rawPlain == nil { // the request's first event
				p.rawPlain = encodeRaw(in.Raw)
				raws[in.Raw] = p.rawPlain
				p.rawSealed = p.sealRaw(db.sealer)
			}
		}
		p.puts = p.records()
		return nil
	})
}

// records returns the records of a new event that insert writes as they
// are: the event, its key, envelope and index entries, and its deliveries
// but the ordered ones (not the raw request: see insert).
func (p *prepared) records() [][3][]byte {
	id := []byte(p.id)
	puts := make([][3][]byte, 0, 10+3*len(p.dels))
	puts = append(puts,
		[3][]byte{bucketEvents, id, p.meta},
		[3][]byte{bucketKeys, p.key, keyRecord(p.expires, p.hash, p.id)}, // no keyexp entry: see keywalk.go
	)
	if p.bodyKey != nil {
		puts = append(puts,
			[3][]byte{bucketKeys, p.bodyKey, keyRecord(p.expires, p.hash, p.id)},
			[3][]byte{bucketKeyExp, timedKey(nil, p.expires, p.bodyKey), nil})
	}
	if p.envelope != nil {
		puts = append(puts, [3][]byte{bucketEnvelopes, id, p.envelope})
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
		owners := map[*relay.Raw]string{}
		if b.Nonce != "" {
			// Single-use whatever its expiry (see nonces.go).
			nonce := []byte(b.Nonce)
			key := timedKey(nil, nanos(b.NonceExpires), nonce)
			if has(w.b(bucketNonceExp), key) || w.b(bucketNonces).Get(nonce) != nil || !db.nonces.claim(b.Nonce, b) {
				return fmt.Errorf("nonce: %w", relay.ErrReplayed)
			}
			if err := w.put(bucketNonceExp, key, nil); err != nil {
				return err
			}
		}
		for i := range preps {
			p := &preps[i]
			out, known, err := seen(w, p.key, p)
			if err != nil {
				return err
			}
			if !known && p.bodyKey != nil {
				// The same body under another id: a duplicate, whatever
				// the hashes say (the body is the same).
				if out, known, err = seen(w, p.bodyKey, p); known {
					out = relay.Outcome{ID: out.ID, Duplicate: true}
				}
				if err != nil {
					return err
				}
			}
			if known {
				outs[i] = out
				continue
			}
			if err := db.insert(w, p, owners); err != nil {
				return err
			}
			outs[i] = relay.Outcome{ID: p.id}
			added += p.pending
		}
		return nil
	})
	if b.Nonce != "" {
		db.nonces.settle(b.Nonce, b, err == nil)
	}
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	db.pending.Add(added)
	return outs, nil
}

// seen looks key up for p: known (with the outcome) when it is stored and
// not expired at p's receipt; an expired one not pruned yet is forgotten.
func seen(w *wtx, key []byte, p *prepared) (relay.Outcome, bool, error) {
	v := w.b(bucketKeys).Get(key)
	if v == nil {
		return relay.Outcome{}, false, nil
	}
	exp, hash, id, ok := parseKeyRecord(v)
	if ok && exp > p.notBefore {
		return relay.Outcome{ID: id, Duplicate: hash == p.hash, Conflict: hash != p.hash}, true, nil
	}
	return relay.Outcome{}, false, w.b(bucketKeyExp).Delete(timedKey(nil, exp, key))
}

// insert writes a new event with its deliveries, indexes, key and raw
// request. The raw request of a request that carries several events (a
// HubSpot batch) is stored once, under the first of them that is new (its
// owner, recorded in owners): the others point at it (rawof, rawsibs), so
// that a batch of n events costs its body once, not n times.
func (db *DB) insert(w *wtx, p *prepared, owners map[*relay.Raw]string) error {
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
		if err := w.put(put[0], put[1], put[2]); err != nil {
			return fmt.Errorf("put %s: %w", put[0], err)
		}
	}
	if err := db.putRaw(w, p, owners); err != nil {
		return err
	}
	for i := range ordered {
		if err := w.enterQueue(&ordered[i]); err != nil {
			return err
		}
	}
	w.count("event", p.rec.Status, 1)
	return nil
}

// putRaw stores p's raw request, or a pointer to the event of the same
// request that holds it.
func (db *DB) putRaw(w *wtx, p *prepared, owners map[*relay.Raw]string) error {
	if p.raw == nil {
		return nil
	}
	if _, ok := owners[p.raw]; !ok && p.rawOf != "" && w.b(bucketRaws).Get([]byte(p.rawOf)) != nil {
		owners[p.raw] = p.rawOf // stored by an earlier part of the request
	}
	if owner, ok := owners[p.raw]; ok {
		if p.envPlain != nil { // its own envelope, apart from the request's raw record
			if err := w.put(bucketEnvelopes, []byte(p.id), db.sealer.Seal(bucketEnvelopes, p.id, p.envPlain)); err != nil {
				return err
			}
		}
		if err := w.put(bucketRawOf, []byte(p.id), []byte(owner)); err != nil {
			return err
		}
		return w.put(bucketRawSibs, siblingKey(owner, p.id), nil)
	}
	owners[p.raw] = p.id
	sealed := p.rawSealed
	if sealed == nil { // the request's first event was a duplicate
		sealed = p.sealRaw(db.sealer)
	}
	return w.put(bucketRaws, []byte(p.id), sealed)
}

// sealRaw returns p's raws record, holding its envelope when it has one,
// sealed.
func (p *prepared) sealRaw(sealer *Sealer) []byte {
	rec := p.rawPlain
	if p.envPlain != nil {
		rec = joinRawEnvelope(p.envPlain, p.rawPlain)
	}
	return sealer.Seal(bucketRaws, p.id, rec)
}

// siblingKey is the rawsibs key of event id, which reads owner's raw
// request.
func siblingKey(owner, id string) []byte {
	k := make([]byte, 0, len(owner)+1+len(id))
	return append(append(append(k, owner...), sep), id...)
}

// loadRaw returns the stored form of event id's raw request, unsealed,
// following the pointer of an event that shares its request's; nil when
// it has none.
func loadRaw(tx *bolt.Tx, sealer *Sealer, id []byte) ([]byte, error) {
	owner := id
	v := tx.Bucket(bucketRaws).Get(id)
	if v == nil {
		if b := tx.Bucket(bucketRawOf); b != nil {
			if o := b.Get(id); o != nil {
				owner = o
				v = tx.Bucket(bucketRaws).Get(o)
				if v == nil {
					return nil, fmt.Errorf("raw %s: the event %s that holds its request's raw request has none", id, o)
				}
			}
		}
	}
	if v == nil {
		return nil, nil
	}
	rec, err := sealer.Open(bucketRaws, string(owner), v)
	if err != nil {
		return nil, err
	}
	_, raw, err := splitRawEnvelope(rec)
	if err != nil {
		return nil, fmt.Errorf("raw %s: %w", owner, err)
	}
	return raw, nil
}
