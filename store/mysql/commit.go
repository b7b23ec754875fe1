package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// maxGroup caps how many Enqueue calls one group commit takes.
const maxGroup = 256

// groupTimeout bounds one group's transaction (retries included): the
// callers wait for it.
const groupTimeout = 30 * time.Second

// errClosed is returned for writes after Close.
var errClosed = fmt.Errorf("store closed: %w", relay.ErrUnavailable)

// Op states: queued, taken by a loop, abandoned by its caller.
const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

// enqueueOp is one Enqueue call waiting for a group commit.
type enqueueOp struct {
	batch     *relay.Batch
	preps     []prepared
	nonceHash [32]byte
	token     [16]byte // tells this call's nonce row from another's

	// Set by each run of applyEnqueue; read once done has answered.
	outs  []relay.Outcome
	err   error // the call's own failure (a replayed nonce)
	added int64 // deliveries it added

	state atomic.Int32
	done  chan error // buffered: a loop never blocks on it
}

func (o *enqueueOp) take() bool { return o.state.CompareAndSwap(opQueued, opTaken) }

// committer runs the group commit of Enqueue calls: a few loops, each
// takes the first queued call, drains whatever else is queued at that
// moment (up to maxGroup), writes them all in one transaction with
// multi-row statements, and answers each. There is no fixed window: a
// lone call waits for nothing, and under load each transaction carries
// what queued while the previous one committed. Several loops (Options.
// Committers) let one group be built while another commits.
//
// When the transaction fails with an error of one statement (not of the
// connection, and not a deadlock, which is retried whole), each call of
// the group is run again alone, so that one bad call never fails its
// neighbours. A call whose nonce was seen before fails alone within the
// group, having written nothing. When COMMIT itself fails on a broken
// connection, the outcome is unknown and every call gets the error: the
// senders retry, and dedupe turns a retry of what was committed after all
// into a duplicate.
type committer struct {
	db      *DB
	ops     chan *enqueueOp
	mu      sync.RWMutex // held (read) by every call; close takes it
	refuse  error
	loops   sync.WaitGroup
	commits atomic.Uint64
	nops    atomic.Uint64
	observe func(ops int, took time.Duration)
}

func newCommitter(db *DB, loops int, observe func(int, time.Duration)) *committer {
	c := &committer{db: db, ops: make(chan *enqueueOp, maxGroup), observe: observe}
	for range loops {
		c.loops.Go(c.loop)
	}
	return c
}

// do queues op and returns once its group is committed (or failed). ctx
// is honoured while op waits; once a loop has taken it, it completes.
func (c *committer) do(ctx context.Context, op *enqueueOp) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.refuse != nil {
		return c.refuse
	}
	select {
	case c.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	select {
	case err = <-op.done:
	case <-ctx.Done():
		if op.state.CompareAndSwap(opQueued, opAbandoned) {
			return ctx.Err()
		}
		err = <-op.done // taken: the commit is under way
	}
	c.nops.Add(1)
	return err
}

func (c *committer) loop() {
	group := make([]*enqueueOp, 0, maxGroup)
	for first := range c.ops {
		group = group[:0]
		if first.take() {
			group = append(group, first)
		}
	drain:
		for len(group) < maxGroup {
			select {
			case o, ok := <-c.ops:
				if !ok {
					break drain
				}
				if o.take() {
					group = append(group, o)
				}
			default:
				break drain
			}
		}
		if len(group) > 0 {
			c.run(group)
		}
	}
}

// run commits group and answers each call.
func (c *committer) run(group []*enqueueOp) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	start := time.Now()
	err := c.db.inTx(ctx, func(tx *sql.Tx) error { return c.db.applyEnqueue(ctx, tx, group) })
	if err == nil {
		c.commits.Add(1)
		if c.observe != nil {
			c.observe(len(group), time.Since(start))
		}
		for _, op := range group {
			op.done <- op.err
		}
		return
	}
	if len(group) > 1 && !connectionErr(err) && !retryable(err) && ctx.Err() == nil {
		c.db.log.Warn("group commit failed; running its calls one by one", slog.Int("calls", len(group)), slog.String("error", err.Error()))
		for _, op := range group {
			c.run([]*enqueueOp{op})
		}
		return
	}
	for _, op := range group {
		op.done <- err
	}
}

// close stops the loops after every call under way has been answered.
func (c *committer) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuse != nil {
		return
	}
	c.refuse = errClosed
	close(c.ops)
	c.loops.Wait()
}
