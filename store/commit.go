package store

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/internal/groupcommit"

	"github.com/wprelay/wprelay/relay"
)

// Commit modes (Options.Commit).
const (
	// CommitLoop is the default: one goroutine takes the first queued
	// write, drains whatever else is queued at that moment (up to
	// maxGroup), applies them all in one transaction and answers each; as
	// soon as that commit is done it starts the next with whatever queued
	// meanwhile. There is no fixed window: a lone write waits for nothing.
	CommitLoop = "loop"
	// CommitBatch uses bbolt's DB.Batch with its default window (10 ms,
	// 1000 calls).
	CommitBatch = "batch"
	// CommitSingle runs each write in its own transaction, for comparison.
	CommitSingle = "single"
)

// maxGroup caps how many writes the commit loop applies in one transaction.
const maxGroup = 1024

// errClosed is returned for writes after Close.
var errClosed = fmt.Errorf("store closed: %w", relay.ErrUnavailable)

// committer is the one path every write goes through.
//
// A write function may run more than once: bbolt's Batch re-runs a batch
// without the function that failed, and the loop does the same (it rolls
// back, re-runs the others together and the failing one alone, so that one
// bad write never fails its neighbours). Write functions are therefore
// idempotent and set only their own result fields, which they reset at the
// start of each run; effects outside the transaction (the pending counter)
// are applied by the caller once the commit has succeeded.
type committer struct {
	db   *bolt.DB
	mode string
	log  *slog.Logger

	mu     sync.RWMutex // held (read) by every write; Close takes it
	refuse error        // when set, writes fail with it (closed, read-only)
	group  *groupcommit.Loop[*opSet]

	commits atomic.Uint64
	nops    atomic.Uint64
	puts    atomic.Uint64                     // records written by committed operations (wtx.put)
	writes  atomic.Uint64                     // page writes of committed transactions (bbolt's TxStats.Write)
	observe func(ops int, took time.Duration) // may be nil

	txMu   sync.Mutex
	lastTx *bolt.Tx // the last transaction seen, so each is counted once

	// txCounts, set by the loop while it runs a transaction's writes (on
	// its goroutine, where they run), collects their counter changes, which
	// it writes once before committing; nil otherwise (each write flushes
	// its own).
	txCounts map[string]int64
}

// opSet is what the loop is handed: writes that go into one transaction
// together, each answered in errs (one failing fails only itself).
type opSet struct {
	fns  []func(*bolt.Tx) error
	errs []error
}

func newCommitter(db *bolt.DB, mode string, log *slog.Logger, observe func(int, time.Duration)) (*committer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &committer{db: db, mode: mode, log: log, observe: observe}
	switch mode {
	case "", CommitLoop:
		c.mode = CommitLoop
		c.group = groupcommit.New(1, maxGroup, c.commit)
	case CommitBatch, CommitSingle:
	default:
		return nil, fmt.Errorf("unknown commit mode %q (want %s, %s or %s)", mode, CommitLoop, CommitBatch, CommitSingle)
	}
	return c, nil
}

// do runs fn in a write transaction and returns once it is committed (or
// failed). ctx is honoured while the write waits for the loop; once the
// loop has taken it, the write completes.
func (c *committer) do(ctx context.Context, fn func(*bolt.Tx) error) error {
	return c.doAll(ctx, []func(*bolt.Tx) error{fn})[0]
}

// doAll runs fns as do would, in one transaction in the loop's mode (each
// in its own in the others), and returns each one's error.
func (c *committer) doAll(ctx context.Context, fns []func(*bolt.Tx) error) []error {
	errs := make([]error, len(fns))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.refuse != nil {
		return fail(c.refuse)
	}
	switch c.mode {
	case CommitSingle, CommitBatch:
		for i, fn := range fns {
			start := time.Now()
			errs[i] = guard(c.db.Path(), func() error {
				if c.mode == CommitSingle {
					return c.db.Update(c.wrap(fn))
				}
				return c.db.Batch(c.wrap(fn))
			})
			if errs[i] == nil && c.observe != nil {
				c.observe(1, time.Since(start))
			}
		}
	default:
		set := &opSet{fns: fns, errs: errs}
		if err := c.group.Do(ctx, set); err != nil {
			if ctx.Err() != nil && err == ctx.Err() {
				return fail(err) // given up while queued
			}
			fail(err)
		}
	}
	c.nops.Add(uint64(len(fns)))
	return errs
}

// wrap returns fn, counting its transaction and turning a panic into an
// error.
func (c *committer) wrap(fn func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		c.noteTx(tx)
		return safely(fn, tx)
	}
}

// noteTx counts tx's commit, once, when it happens, and sets its buckets up
// (fillPages) the first time it sees tx.
func (c *committer) noteTx(tx *bolt.Tx) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	if c.lastTx != tx {
		c.lastTx = tx
		fillPages(tx)
		tx.OnCommit(func() {
			c.commits.Add(1)
			st := tx.Stats()
			c.writes.Add(uint64(st.GetWrite()))
		})
	}
}

// safely runs fn, turning a panic into an error (which rolls back).
func safely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write panicked: %v", r)
		}
	}()
	return fn(tx)
}

// commit applies the writes of sets in one transaction and answers each
// in its set's errs. When one fails, the transaction is rolled back; the
// others are re-run together and the failing one alone, which answers its
// own error.
func (c *committer) commit(sets []*opSet) []error {
	var (
		fns  []func(*bolt.Tx) error
		ptrs []*error
	)
	for _, s := range sets {
		for i := range s.fns {
			fns = append(fns, s.fns[i])
			ptrs = append(ptrs, &s.errs[i])
		}
	}
	c.commitInto(fns, ptrs)
	return nil
}

func (c *committer) commitInto(fns []func(*bolt.Tx) error, errs []*error) {
	failed := -1
	start := time.Now()
	// guard: bbolt panics on a damaged page it meets while committing.
	err := guard(c.db.Path(), func() error {
		return c.db.Update(func(tx *bolt.Tx) error {
			c.noteTx(tx)
			c.txCounts = map[string]int64{}
			defer func() { c.txCounts = nil }()
			for i, fn := range fns {
				if err := safely(fn, tx); err != nil {
					failed = i
					return err
				}
			}
			w := newWtx(tx)
			w.counts = c.txCounts
			if err := w.flush(); err != nil {
				return err
			}
			puts := uint64(w.puts)
			tx.OnCommit(func() { c.puts.Add(puts) })
			return nil
		})
	})
	if failed < 0 || len(fns) == 1 {
		// Success, or a commit error (every write shares it), or the
		// error of a write that ran alone.
		if err != nil && failed < 0 {
			c.log.Error("commit", slog.Int(relay.LogKeyOps, len(fns)), slog.String(relay.LogKeyError, err.Error()))
		}
		if err == nil && c.observe != nil {
			c.observe(len(fns), time.Since(start))
		}
		for _, e := range errs {
			*e = err
		}
		return
	}
	rest := slices.Delete(slices.Clone(fns), failed, failed+1)
	restErrs := slices.Delete(slices.Clone(errs), failed, failed+1)
	c.commitInto(rest, restErrs)
	c.commitInto(fns[failed:failed+1], errs[failed:failed+1])
}

// close stops the loop after every write under way has been answered.
func (c *committer) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse == errClosed {
		return
	}
	c.refuse = errClosed
	if c.group != nil {
		c.group.Close()
	}
}

// CommitStats reports how many write transactions were committed and how
// many writes (Enqueue, Claim, Complete, Replay, Prune calls) went through
// them. Concurrent writes share commits, so commits < ops under load.
func (db *DB) CommitStats() (commits, ops uint64) {
	return db.commit.commits.Load(), db.commit.nops.Load()
}

// WriteStats reports what the committed writes cost: the records they put
// (one per bucket Put of the write path, counter updates included) and the
// pages bbolt wrote for them (one pwrite per dirty page or run of overflow
// pages, the meta page included). Deterministic for a given sequence of
// writes and grouping, unlike their timing: BenchmarkEnqueue reports both
// per event.
func (db *DB) WriteStats() (puts, pageWrites uint64) {
	return db.commit.puts.Load(), db.commit.writes.Load()
}
