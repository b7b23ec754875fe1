package mysql

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Column sizes (see the schema).
const (
	maxID    = 64  // event ids, causation ids
	maxName  = 191 // sources, tenants, targets
	maxType  = 255 // event types, traceparents
	inChunk  = 500 // ids per IN (…) list
	keyLabel = "k"
)

// prepared is one Incoming, validated and encoded outside the transaction.
type prepared struct {
	id       string
	given    bool // the caller chose the id
	ev       *relay.Event
	keyHash  [32]byte
	bodyKey  string // relay.Incoming.BodyKey; "" for none
	bodyHash [32]byte
	expires  time.Time // zero: never
	received time.Time
	status   string
	envelope []byte
	// raw is the request, shared by the events of one request (a batch);
	// rawPlain its stored form; rawSealed that form sealed for this event,
	// made for the first event of each request (see applyEnqueue).
	raw       *relay.Raw
	rawOf     string // relay.Incoming.RawOf
	rawPlain  []byte
	rawSealed []byte
	dels      []prepDelivery
	pending   int64
}

type prepDelivery struct {
	target, status    string
	nextAt, createdAt time.Time
	mirror            bool
	request           []byte // sealed relay.Request of a dry-run delivery, or nil
	orderKey          string // "" for unordered
	orderFlags        int
}

// hashKey is the stored form of an idempotency key or nonce.
func hashKey(kind, s string) [32]byte { return sha256.Sum256([]byte(kind + "\x00" + s)) }

// checkName checks that a name-like field fits its column.
func checkName(what, s string, limit int, required bool) error {
	switch {
	case s == "" && required:
		return fmt.Errorf("empty %s", what)
	case len(s) > limit:
		return fmt.Errorf("%s longer than %d bytes", what, limit)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s contains a NUL byte", what)
	}
	return nil
}

// prepare validates a batch (relay.CheckBatch, then the column sizes) and
// encodes its records.
func (db *DB) prepare(b *relay.Batch) ([]prepared, error) {
	raws := map[*relay.Raw][]byte{}
	return relay.PrepareBatch(b, db.Now(), func(i int, in *relay.Incoming, p *prepared) error {
		e := &in.Event
		p.ev, p.id, p.given = e, e.ID, b.Events[i].Event.ID != ""
		for _, c := range []struct {
			what, v string
			limit   int
		}{
			{"id", p.id, maxID}, {"source", e.Source, maxName}, {"tenant", e.Tenant, maxName},
			{"type", e.Type, maxType}, {"causation id", e.CausationID, maxID}, {"traceparent", e.TraceParent, maxType},
		} {
			if err := checkName(c.what, c.v, c.limit, false); err != nil {
				return err
			}
		}
		p.received = e.ReceivedAt.UTC()
		p.keyHash = hashKey(keyLabel, e.IdempotencyKey)
		if in.BodyKey != e.IdempotencyKey {
			p.bodyKey = in.BodyKey
		}
		p.bodyHash = in.BodyHash
		p.expires = in.KeyExpires
		p.status = e.Status
		for j, d := range e.Deliveries {
			if err := checkName("target", d.Target, maxName, true); err != nil {
				return fmt.Errorf("delivery %d: %w", j, err)
			}
			pd := prepDelivery{target: d.Target, status: d.Status, nextAt: d.NextAt, createdAt: d.CreatedAt, mirror: d.Mirror}
			if pd.status == relay.DeliveryPending {
				p.pending++
			}
			// Only keys that fit the column are ordered.
			if d.Order != nil && usableKey(d.Order.Key) {
				pd.orderKey, pd.orderFlags = d.Order.Key, orderFlags(d.Order)
			}
			if d.Request != nil {
				req, err := json.Marshal(d.Request)
				if err != nil {
					return fmt.Errorf("encode request: %w", err)
				}
				pd.request = db.sealer.Seal(labelRequest, requestID(p.id, d.Target), req)
			}
			p.dels = append(p.dels, pd)
		}
		env := []byte(e.Envelope)
		if env == nil {
			env = []byte{} // NOT NULL column
		}
		p.envelope = db.sealer.Seal(labelEnvelope, p.id, env)
		if in.Raw != nil {
			raw, ok := raws[in.Raw]
			if !ok {
				var err error
				if raw, err = json.Marshal(in.Raw); err != nil {
					return fmt.Errorf("encode raw: %w", err)
				}
				raws[in.Raw] = raw
				p.rawSealed = db.sealer.Seal(labelRaw, p.id, raw)
			}
			p.raw, p.rawPlain, p.rawOf = in.Raw, raw, in.RawOf
		}
		return nil
	})
}

// Enqueue commits a batch durably before it returns: all of it or, on an
// error, none of it. Each event is deduped on its idempotency key (also
// against earlier events of the batch and against every other node); a
// stored key that expired at or before the event's ReceivedAt counts as
// new. A zero KeyExpires never expires. Events without an ID get a UUIDv7.
// A Nonce stored before fails the batch with relay.ErrReplayed. Concurrent
// calls share one transaction (group commit).
func (db *DB) Enqueue(ctx context.Context, b *relay.Batch) ([]relay.Outcome, error) {
	preps, err := db.prepare(b)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	op := &enqueueOp{batch: b, preps: preps}
	if b.Nonce != "" {
		op.nonceHash = hashKey("n", b.Nonce)
		if _, err := rand.Read(op.token[:]); err != nil {
			return nil, err
		}
	}
	if err := db.commit.do(ctx, op); err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	db.pendingAdd(op.added)
	return op.outs, nil
}

// keyRow is a stored idempotency key.
type keyRow struct {
	bodyHash [32]byte
	eventID  string
	expires  time.Time // zero: never
}

// applyEnqueue writes a group of Enqueue calls in tx: nonces first, then
// idempotency keys (each list in hash order, so that concurrent groups
// lock rows in one order), then the new events with their bodies and
// deliveries, then the counts. An op whose nonce was seen before gets
// relay.ErrReplayed and writes nothing; its neighbours go on.
func (db *DB) applyEnqueue(ctx context.Context, tx *sql.Tx, ops []*enqueueOp) error {
	exec := func(q string, args []any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	for _, op := range ops {
		op.outs, op.err, op.added = make([]relay.Outcome, len(op.preps)), nil, 0
	}
	c := counts{}

	// Nonces: the first op to insert one owns it; any other is a replay.
	var withNonce []*enqueueOp
	for _, op := range ops {
		if op.batch.Nonce != "" {
			withNonce = append(withNonce, op)
		}
	}
	if len(withNonce) > 0 {
		sorted := slices.Clone(withNonce)
		slices.SortStableFunc(sorted, func(a, b *enqueueOp) int { return bytes.Compare(a.nonceHash[:], b.nonceHash[:]) })
		ins := &bulk{head: db.t.expand("INSERT INTO {nonces} (nonce_hash, token, expires_at)"), width: 3,
			tail: " ON DUPLICATE KEY UPDATE nonce_hash = nonce_hash", budget: db.packet, exec: exec}
		hashes := make([]any, 0, len(sorted))
		for _, op := range sorted {
			exp := op.batch.NonceExpires.UTC()
			if exp.Before(minTime) {
				exp = minTime
			}
			if err := ins.add(op.nonceHash[:], op.token[:], exp); err != nil {
				return err
			}
			hashes = append(hashes, op.nonceHash[:])
		}
		if err := ins.flush(); err != nil {
			return err
		}
		tokens := map[[32]byte][16]byte{}
		err := queryChunks(ctx, tx, db.t.expand("SELECT nonce_hash, token FROM {nonces} WHERE nonce_hash IN (%s)"), hashes, func(rows *sql.Rows) error {
			var h, t []byte
			if err := rows.Scan(&h, &t); err != nil {
				return err
			}
			tokens[[32]byte(h)] = [16]byte(t)
			return nil
		})
		if err != nil {
			return err
		}
		for _, op := range withNonce {
			if tokens[op.nonceHash] != op.token {
				op.err = fmt.Errorf("nonce: %w", relay.ErrReplayed)
			}
		}
	}

	// Idempotency keys.
	var items []item
	for _, op := range ops {
		if op.err == nil {
			for i := range op.preps {
				items = append(items, item{op, i})
			}
		}
	}
	if len(items) == 0 {
		return nil
	}
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b item) int {
		return bytes.Compare(a.op.preps[a.i].keyHash[:], b.op.preps[b.i].keyHash[:])
	})
	ins := &bulk{head: db.t.expand("INSERT INTO {keys} (key_hash, idem_key, body_hash, event_id, expires_at)"), width: 5,
		tail: " ON DUPLICATE KEY UPDATE key_hash = key_hash", budget: db.packet, exec: exec}
	var hashes []any
	for _, it := range sorted {
		p := &it.op.preps[it.i]
		if err := ins.add(p.keyHash[:], p.ev.IdempotencyKey, p.bodyHash[:], p.id, nullTime(p.expires)); err != nil {
			return err
		}
		if len(hashes) == 0 || !bytes.Equal(hashes[len(hashes)-1].([]byte), p.keyHash[:]) {
			hashes = append(hashes, p.keyHash[:])
		}
	}
	if err := ins.flush(); err != nil {
		return err
	}
	stored := map[[32]byte]*keyRow{}
	err := queryChunks(ctx, tx, db.t.expand("SELECT key_hash, body_hash, event_id, expires_at FROM {keys} WHERE key_hash IN (%s)"), hashes, func(rows *sql.Rows) error {
		var h, bh []byte
		var r keyRow
		var exp sql.NullTime
		if err := rows.Scan(&h, &bh, &r.eventID, &exp); err != nil {
			return err
		}
		r.bodyHash, r.expires = [32]byte(bh), timeOf(exp)
		stored[[32]byte(h)] = &r
		return nil
	})
	if err != nil {
		return err
	}
	// A key that names the caller's own id was inserted just now, unless
	// that event was already stored (an import sent twice).
	var given []any
	for _, it := range items {
		if p := &it.op.preps[it.i]; p.given {
			if r := stored[p.keyHash]; r != nil && r.eventID == p.id {
				given = append(given, p.id)
			}
		}
	}
	existing := map[string]string{} // id → its idempotency key
	if len(given) > 0 {
		err := queryChunks(ctx, tx, db.t.expand("SELECT id, idempotency_key FROM {events} WHERE id IN (%s)"), given, func(rows *sql.Rows) error {
			var id, key string
			if err := rows.Scan(&id, &key); err != nil {
				return err
			}
			existing[id] = key
			return nil
		})
		if err != nil {
			return err
		}
	}
	claimed := map[[32]byte]bool{}
	var (
		news  []*prepared
		cands []item // new by their idempotency key
	)
	for _, it := range items {
		p := &it.op.preps[it.i]
		r := stored[p.keyHash]
		if r == nil {
			return fmt.Errorf("idempotency key of event %s: not stored", p.id)
		}
		if key, ok := existing[p.id]; ok && key != p.ev.IdempotencyKey {
			return fmt.Errorf("event %s already stored (under another idempotency key)", p.id)
		}
		_, already := existing[p.id]
		switch {
		case r.eventID == p.id && !claimed[p.keyHash] && !already:
			// Ours: inserted by this transaction.
		case r.eventID != p.id && !r.expires.IsZero() && !r.expires.After(p.received):
			// Expired but not pruned yet: take it over.
			res, err := tx.ExecContext(ctx, db.t.expand("UPDATE {keys} SET idem_key = ?, body_hash = ?, event_id = ?, expires_at = ? WHERE key_hash = ? AND event_id = ?"),
				p.ev.IdempotencyKey, p.bodyHash[:], p.id, nullTime(p.expires), p.keyHash[:], r.eventID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("idempotency key of event %s changed while taking it over: %w", p.id, errRetryGroup)
			}
			*r = keyRow{bodyHash: p.bodyHash, eventID: p.id, expires: p.expires}
		default:
			dup := r.bodyHash == p.bodyHash
			it.op.outs[it.i] = relay.Outcome{ID: r.eventID, Duplicate: dup, Conflict: !dup}
			continue
		}
		claimed[p.keyHash] = true
		cands = append(cands, it)
	}
	// The body keys of the candidates: one that another event holds makes
	// a candidate its duplicate after all.
	cands, err = db.claimBodyKeys(ctx, tx, exec, cands)
	if err != nil {
		return err
	}
	for _, it := range cands {
		p := &it.op.preps[it.i]
		it.op.outs[it.i] = relay.Outcome{ID: p.id}
		it.op.added += p.pending
		news = append(news, p)
	}
	if len(news) == 0 {
		return nil
	}

	// The new events.
	evs := &bulk{head: db.t.expand("INSERT INTO {events} (id, source, tenant, type, idempotency_key, status, received_at, occurred_at, causation_id, traceparent)"),
		width: 10, budget: db.packet, exec: exec}
	bodies := &bulk{head: db.t.expand("INSERT INTO {bodies} (event_id, envelope, raw)"), width: 3, budget: db.packet, exec: exec}
	dels := &bulk{head: db.t.expand(`INSERT INTO {deliveries} (event_id, target, source, status, since, created_at, next_at, due_at, history,
		mirror, request, order_key, order_flags, order_at, queued, parked)`), width: 16, budget: db.packet, exec: exec}
	ordered := &bulk{head: dels.head, width: 16, budget: db.packet, exec: exec}
	refs := &bulk{head: db.t.expand("INSERT INTO {rawrefs} (event_id, owner_id)"), width: 2, budget: db.packet, exec: exec}
	// The raw request of a request that carries several events is stored
	// once, with the first of them that is new (its owner).
	owners := map[*relay.Raw]string{}
	var subjects []subject
	for _, p := range news {
		var err error
		e := p.ev
		var causation any
		if e.CausationID != "" {
			causation = e.CausationID
		}
		if err := evs.add(p.id, e.Source, e.Tenant, e.Type, e.IdempotencyKey, p.status, p.received,
			nullTime(e.OccurredAt), causation, e.TraceParent); err != nil {
			return err
		}
		var raw any
		if p.raw != nil {
			if _, ok := owners[p.raw]; !ok && p.rawOf != "" {
				owners[p.raw] = p.rawOf // stored by an earlier part of the request
			}
			if owner, ok := owners[p.raw]; ok {
				if err := refs.add(p.id, owner); err != nil {
					return err
				}
			} else {
				owners[p.raw] = p.id
				sealed := p.rawSealed
				if sealed == nil { // the request's first event was a duplicate
					sealed = db.sealer.Seal(labelRaw, p.id, p.rawPlain)
				}
				raw = sealed
			}
		}
		if err := bodies.add(p.id, p.envelope, raw); err != nil {
			return err
		}
		for _, d := range p.dels {
			var req any
			if d.request != nil {
				req = d.request
			}
			if d.orderKey == "" {
				err = dels.add(p.id, d.target, e.Source, d.status, d.createdAt.UTC(), d.createdAt.UTC(),
					nullTime(d.nextAt), nullTime(d.nextAt), []byte("[]"), d.mirror, req, nil, 0, nil, 0, 0)
			} else {
				// Parked until its subject's queue is settled below.
				err = ordered.add(p.id, d.target, e.Source, d.status, d.createdAt.UTC(), d.createdAt.UTC(),
					nullTime(d.nextAt), nil, []byte("[]"), d.mirror, req, d.orderKey, d.orderFlags, nullTime(e.OccurredAt), 1, 1)
				subjects = append(subjects, subject{d.target, d.orderKey})
			}
			if err != nil {
				return err
			}
			c.add("delivery", d.status, 1)
		}
		c.add("event", p.status, 1)
	}
	for _, b := range []*bulk{evs, bodies, dels, refs} {
		if err := b.flush(); err != nil {
			return err
		}
	}
	if len(subjects) > 0 {
		// Ordered deliveries join their subjects' queues under the
		// subjects' locks, taken before the rows are written.
		if err := db.lockSubjects(ctx, tx, subjects); err != nil {
			return err
		}
		if err := ordered.flush(); err != nil {
			return err
		}
		slices.SortFunc(subjects, compareSubjects)
		for _, sub := range slices.Compact(subjects) {
			if err := db.settle(ctx, tx, sub); err != nil {
				return err
			}
		}
	}
	return db.flushCounts(ctx, tx, c)
}

// queryChunks runs q (with one %s for the IN list) over args in chunks,
// calling scan for each row.
func queryChunks(ctx context.Context, tx *sql.Tx, q string, args []any, scan func(*sql.Rows) error) error {
	for len(args) > 0 {
		n := min(len(args), inChunk)
		rows, err := tx.QueryContext(ctx, fmt.Sprintf(q, placeholders(n)), args[:n]...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		args = args[n:]
	}
	return nil
}
