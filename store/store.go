// Package store keeps wprelay's events, deliveries and dedupe records in one
// bbolt file. *DB implements relay.Queue, relay.Pruner, relay.Counters and
// what the admin API needs (admin.Store); it is the only package that
// imports bbolt.
//
// Every write goes through one commit path (see Options.Commit), so that
// concurrent ingests share one fsync. Reads run in their own read-only
// transactions and never wait for writes.
//
// bbolt holds an exclusive lock on the file, so one process serves a file:
// Open therefore makes every delivery that was in flight when the previous
// process stopped due again at once (at-least-once delivery).
//
// # Caveats
//
// Claim leases are not persisted beyond the process: a restart ends them
// all. Completing a delivery after its lease ran out is still accepted as
// long as no other worker has completed it. Prune never deletes an event with
// a delivery that is not final, so events whose target was removed from the
// configuration stay until their deliveries are replayed or dead.
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/wprelay/wprelay/relay"
)

// schemaVersion is the layout version kept in the meta bucket. Version 2
// added the buckets of v2Buckets; version 3 writes raw requests in binary,
// envelopes spliced with their raw body (envsplice.go), nonces in nonceexp
// alone, and no index entry for an empty tenant or type — and reads all
// that versions 1 and 2 wrote. Open upgrades a version 1 or 2 file (new
// buckets start empty; no record is rewritten), OpenReadOnly reads one as
// is. Version 4 added the buckets of v4Buckets: the events of one request
// (a HubSpot batch) share its raw request, stored once under the first
// event's id (rawof, rawsibs). Version 5 writes fewer index entries (see
// eventRec.indexKeys): none in bystatus for a queued event, none in
// bytenant and bytype, none in bysource but for result events; and an
// event's envelope inside its raw record (envsplice.go); no expiry entry
// for an idempotency key (keywalk.go). The entries an
// earlier version wrote stay until their event is pruned, and are not
// read; its envelopes are read where they are. A binary that knows only version 2 refuses a version 3 file rather
// than misread it, one that knows version 3 a version 4 file, and one that
// knows version 4 a version 5 file (it would miss queued events in a status
// filter).
const schemaVersion = 5

// Bucket names.
var (
	bucketMeta       = []byte("meta")
	bucketEvents     = []byte("events")
	bucketEnvelopes  = []byte("envelopes")
	bucketRaws       = []byte("raws")
	bucketDeliveries = []byte("deliveries")
	bucketDue        = []byte("due")
	bucketInFlight   = []byte("inflight")
	bucketDead       = []byte("dead")
	bucketKeys       = []byte("keys")
	bucketKeyExp     = []byte("keyexp")
	bucketNonces     = []byte("nonces")
	bucketNonceExp   = []byte("nonceexp")
	bucketByTime     = []byte("bytime")
	bucketByStatus   = []byte("bystatus")
	bucketBySource   = []byte("bysource")
	bucketByTenant   = []byte("bytenant")
	bucketByType     = []byte("bytype")
	bucketCounts     = []byte("counts")
	bucketRequests   = []byte("requests")
	bucketSubjQueue  = []byte("subjq")
	bucketSubjLast   = []byte("subjlast")
	bucketCounters   = []byte("counters")
	// bucketRawOf maps an event that shares another's raw request to that
	// event (its owner); bucketRawSibs holds owner‖sep‖event for each, so
	// that an owner is kept while an event still reads its raw request.
	bucketRawOf   = []byte("rawof")
	bucketRawSibs = []byte("rawsibs")

	// v1Buckets are the buckets of a version 1 file.
	v1Buckets = [][]byte{
		bucketMeta, bucketEvents, bucketEnvelopes, bucketRaws, bucketDeliveries,
		bucketDue, bucketInFlight, bucketDead, bucketKeys, bucketKeyExp,
		bucketNonces, bucketNonceExp, bucketByTime, bucketByStatus,
		bucketBySource, bucketByTenant, bucketByType, bucketCounts,
	}
	// v2Buckets were added by version 2: dry-run requests, per-subject
	// ordering, counters.
	v2Buckets = [][]byte{bucketRequests, bucketSubjQueue, bucketSubjLast, bucketCounters}
	// v4Buckets were added by version 4: raw requests shared by the events
	// of one request.
	v4Buckets    = [][]byte{bucketRawOf, bucketRawSibs}
	v2AllBuckets = append(append([][]byte{}, v1Buckets...), v2Buckets...)
	allBuckets   = append(append([][]byte{}, v2AllBuckets...), v4Buckets...)
)

// DefaultLockTimeout is how long Open waits for the file lock by default.
const DefaultLockTimeout = 5 * time.Second

// errReadOnly is returned for writes to a store opened with OpenReadOnly.
var errReadOnly = fmt.Errorf("store opened read-only: %w", relay.ErrUnavailable)

// Options configure a DB. The zero value is the production setting.
type Options struct {
	// Commit selects the commit path: CommitLoop (the default), CommitBatch
	// or CommitSingle.
	Commit string
	// NoSync skips fsync. Tests only: a crash may lose committed writes.
	// Default: false.
	NoSync bool
	// LockTimeout is how long Open waits for the file lock held by another
	// process. Default: 5s.
	LockTimeout time.Duration
	// Logger receives the store's few log lines. Default: discarded.
	Logger *slog.Logger
	// Sealer, when set, encrypts raw bodies and envelopes at rest. Open
	// fails with ErrWrongKey when its keys cannot open the store.
	Sealer *Sealer
	// BatchDelay is CommitBatch's window (bbolt's MaxBatchDelay).
	// Default: 10ms.
	BatchDelay time.Duration
	// OnCommit, when set, is told the size and duration of every commit
	// (for metrics). It runs on the commit path: keep it cheap.
	OnCommit func(ops int, took time.Duration)
}

// DB is a wprelay store in one bbolt file.
type DB struct {
	// Now is the clock used where a caller passes no time (a dead delivery
	// whose attempt has no time). Default: time.Now.
	Now func() time.Time

	bolt    *bolt.DB
	commit  *committer
	log     *slog.Logger
	pending atomic.Int64 // deliveries pending, in flight or retrying
	sealer  *Sealer      // nil: records are stored plain
	nonces  nonceIndex

	closeOnce sync.Once
	closeErr  error
}

var (
	_ relay.Queue  = (*DB)(nil)
	_ relay.Pruner = (*DB)(nil)
)

// Open opens (or creates) the store at path. It waits up to
// o.LockTimeout for the file lock, creates the buckets, checks the schema
// version and makes every delivery left in flight by a previous process due
// again.
func Open(path string, o Options) (*DB, error) {
	db := &DB{Now: time.Now, log: o.Logger, sealer: o.Sealer}
	if db.log == nil {
		db.log = slog.New(slog.DiscardHandler)
	}
	bdb, err := openBolt(path, o, false)
	if err != nil {
		return nil, err
	}
	db.bolt = bdb
	if o.BatchDelay > 0 {
		bdb.MaxBatchDelay = o.BatchDelay
	}
	var recovered int
	err = guard(path, func() error {
		return bdb.Update(func(tx *bolt.Tx) error {
			if err := checkSize(tx); err != nil {
				return err
			}
			if err := initSchema(tx); err != nil {
				return err
			}
			if err := checkSealer(tx, o.Sealer); err != nil {
				return err
			}
			n, err := recoverInFlight(tx)
			recovered = n
			if err != nil {
				return err
			}
			db.pending.Store(countPending(tx))
			return db.nonces.load(tx)
		})
	})
	if errors.Is(err, ErrDamaged) {
		bdb.Close()
		return nil, err
	}
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if db.commit, err = newCommitter(bdb, o.Commit, db.log, o.OnCommit); err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.log.Info("store opened", slog.String(relay.LogKeyPath, path), slog.String(relay.LogKeyCommit, db.commit.mode),
		slog.Int64(relay.LogKeyPending, db.pending.Load()), slog.Int(relay.LogKeyRecovered, recovered))
	return db, nil
}

// OpenReadOnly opens the store at path for reading only (offline tools).
// It takes a shared lock, so it waits while a wprelay serves the file.
// Every write returns an error wrapping relay.ErrUnavailable.
func OpenReadOnly(path string, o Options) (*DB, error) {
	db := &DB{Now: time.Now, log: o.Logger, sealer: o.Sealer, commit: &committer{refuse: errReadOnly}}
	if db.log == nil {
		db.log = slog.New(slog.DiscardHandler)
	}
	bdb, err := openBolt(path, o, true)
	if err != nil {
		return nil, err
	}
	db.bolt = bdb
	err = guard(path, func() error {
		return bdb.View(func(tx *bolt.Tx) error {
			if err := checkSize(tx); err != nil {
				return err
			}
			if err := checkSchema(tx); err != nil {
				return err
			}
			db.pending.Store(countPending(tx))
			return nil
		})
	})
	if errors.Is(err, ErrDamaged) {
		bdb.Close()
		return nil, err
	}
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// ErrLocked is the error of opening a file another process holds: a
// sidecar serving this data dir, or another command working on it.
var ErrLocked = errors.New("file still locked, another wprelay may be running on this data dir")

func openBolt(path string, o Options, readOnly bool) (*bolt.DB, error) {
	timeout := o.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	if readOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	// bbolt faults or panics on a truncated file before it can be
	// closed again (and its lock released): look first.
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	var bdb *bolt.DB
	err := guard(path, func() (err error) {
		bdb, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout:      timeout,
			NoSync:       o.NoSync,
			ReadOnly:     readOnly,
			FreelistType: bolt.FreelistMapType,
		})
		return damagedOpen(path, err)
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w after %s: %w", path, ErrLocked, timeout, err)
	}
	if errors.Is(err, ErrDamaged) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return bdb, nil
}

// initSchema creates the buckets and writes or checks the schema version.
func initSchema(tx *bolt.Tx) error {
	if meta := tx.Bucket(bucketMeta); meta == nil || meta.Get([]byte("version")) == nil {
		foreign := tx.ForEach(func([]byte, *bolt.Bucket) error { return errors.New("foreign") }) != nil
		if foreign {
			return errors.New("file has buckets but no wprelay schema version: not a wprelay store")
		}
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get([]byte("version")); v == nil || getInt64(v) < schemaVersion {
		// New, or an earlier version upgraded: the v2 and v4 buckets were
		// just created; versions 3 and 5 changed how records are written,
		// not where.
		if err := meta.Put([]byte("version"), putInt64(schemaVersion)); err != nil {
			return err
		}
	}
	return checkSchema(tx)
}

// checkSchema checks that the schema version is one this code reads (1 to
// 5) and that its buckets exist. Code that reads a v2 or v4 bucket copes
// with its absence (an earlier file opened read-only).
func checkSchema(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("bucket %s missing: not a wprelay store", bucketMeta)
	}
	v := getInt64(meta.Get([]byte("version")))
	if v < 1 || v > schemaVersion {
		return fmt.Errorf("schema version %d, this wprelay reads versions 1 to %d", v, schemaVersion)
	}
	want := v1Buckets
	switch {
	case v >= 4:
		want = allBuckets
	case v >= 2:
		want = v2AllBuckets
	}
	for _, name := range want {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("bucket %s missing: not a wprelay store", name)
		}
	}
	return nil
}

// countPending returns how many deliveries are not final, from the status
// counters (the due index does not hold those an ordered subject parks).
func countPending(tx *bolt.Tx) int64 {
	b := tx.Bucket(bucketCounts)
	var n int64
	for _, st := range []string{relay.DeliveryPending, relay.DeliveryInFlight, relay.DeliveryRetrying} {
		n += getInt64(b.Get([]byte("delivery/" + st)))
	}
	return n
}

// recoverInFlight makes every in-flight delivery due again at the time it
// was due before it was claimed (which is in the past): the process that
// claimed it is gone. It reports how many it moved.
func recoverInFlight(tx *bolt.Tx) (int, error) {
	var keys [][]byte
	c := tx.Bucket(bucketInFlight).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	w := newWtx(tx)
	for _, k := range keys {
		if err := w.b(bucketInFlight).Delete(k); err != nil {
			return 0, err
		}
		var d deliveryRec
		ok, err := getJSON(tx, bucketDeliveries, k, &d)
		if err != nil {
			return 0, err
		}
		if !ok || d.Status != relay.DeliveryInFlight {
			continue
		}
		if err := w.b(bucketDue).Delete(dueKey(&d, d.Due)); err != nil {
			return 0, err
		}
		status := relay.DeliveryPending
		if d.Attempts > 0 {
			status = relay.DeliveryRetrying
		}
		w.move("delivery", d.Status, status)
		d.Status = status
		d.Due = nanos(d.NextAt)
		if err := w.put(bucketDue, dueKey(&d, d.Due), nil); err != nil {
			return 0, err
		}
		if err := w.putJSON(bucketDeliveries, k, &d); err != nil {
			return 0, err
		}
		if d.Order != nil {
			// An earlier delivery of its subject that arrived while it
			// was in flight goes first.
			if err := w.yield(&d); err != nil {
				return 0, err
			}
		}
	}
	return len(keys), w.flush()
}

// Close waits for the writes under way, stops the commit loop and closes
// the file. Calling it again does nothing.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.commit.close()
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("close %s: %w", db.bolt.Path(), err)
		}
	})
	return db.closeErr
}

// Path returns the file's path.
func (db *DB) Path() string { return db.bolt.Path() }

// Size returns the file's size in bytes.
func (db *DB) Size() int64 {
	if fi, err := os.Stat(db.bolt.Path()); err == nil {
		return fi.Size()
	}
	var n int64
	_ = db.view(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// Check verifies the file's page structure (bbolt's consistency check) and
// returns every problem it finds, joined.
func (db *DB) Check() error {
	err := db.view(func(tx *bolt.Tx) error {
		// bbolt checks on a goroutine of its own and trusts the pages'
		// headers: a damaged one can fault there (no guard recovers it) or
		// make it loop over billions of page ids. The page structure is
		// walked from the file first, then every key and value is read
		// here, under guard.
		if err := walkPages(tx.DB().Path(), uint64(tx.ID())); err != nil {
			return err
		}
		touchAll(tx)
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil && !errors.Is(err, ErrDamaged) {
		return damaged(db.bolt.Path(), err)
	}
	return err
}
