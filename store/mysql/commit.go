package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/wprelay/wprelay/internal/groupcommit"
	"github.com/wprelay/wprelay/relay"
)

// maxGroup caps how many Enqueue calls one group commit takes.
const maxGroup = 256

// groupTimeout bounds one group's transaction (retries included): the
// callers wait for it.
const groupTimeout = 30 * time.Second

// errClosed is returned for writes after Close.
var errClosed = fmt.Errorf("store closed: %w", relay.ErrUnavailable)

// enqueueOp is one Enqueue call waiting for a group commit.
type enqueueOp struct {
	batch     *relay.Batch
	preps     []prepared
	nonceHash [32]byte
	token     [16]byte // tells this call's nonce row from another's

	// Set by each run of applyEnqueue; read once the commit has answered.
	outs  []relay.Outcome
	err   error // the call's own failure (a replayed nonce)
	added int64 // deliveries it added
}

// committer runs the group commit of Enqueue calls (internal/groupcommit)
// with a few loops, so that one group is built while another commits
// (Options.Committers); each group is written in one transaction with
// multi-row statements.
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
	group   *groupcommit.Loop[*enqueueOp]
	commits atomic.Uint64
	nops    atomic.Uint64
	observe func(ops int, took time.Duration)
}

func newCommitter(db *DB, loops int, observe func(int, time.Duration)) *committer {
	c := &committer{db: db, observe: observe}
	c.group = groupcommit.New(loops, maxGroup, c.commit)
	return c
}

// do queues op and returns once its group is committed (or failed). ctx
// is honoured while op waits; once a loop has taken it, it completes.
func (c *committer) do(ctx context.Context, op *enqueueOp) error {
	err := c.group.Do(ctx, op)
	switch {
	case errors.Is(err, groupcommit.ErrClosed):
		return errClosed
	case err != nil && err == ctx.Err():
		return err // given up while queued
	}
	c.nops.Add(1)
	return err
}

// commit commits group and returns each call's error.
func (c *committer) commit(group []*enqueueOp) []error {
	errs := make([]error, len(group))
	c.run(group, errs)
	return errs
}

func (c *committer) run(group []*enqueueOp, errs []error) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	start := time.Now()
	err := c.db.inTx(ctx, func(tx *sql.Tx) error { return c.db.applyEnqueue(ctx, tx, group) })
	if err == nil {
		c.commits.Add(1)
		if c.observe != nil {
			c.observe(len(group), time.Since(start))
		}
		for i, op := range group {
			errs[i] = op.err
		}
		return
	}
	if len(group) > 1 && !connectionErr(err) && !retryable(err) && ctx.Err() == nil {
		c.db.log.Warn("group commit failed; running its calls one by one", slog.Int(relay.LogKeyCalls, len(group)), slog.String(relay.LogKeyError, err.Error()))
		for i := range group {
			c.run(group[i:i+1], errs[i:i+1])
		}
		return
	}
	for i := range errs {
		errs[i] = err
	}
}

// close stops the loops after every call under way has been answered.
func (c *committer) close() { c.group.Close() }
