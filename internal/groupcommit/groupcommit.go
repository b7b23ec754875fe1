// Package groupcommit is the group-commit loop both stores use: callers
// queue writes, and a loop takes the first queued write, drains whatever
// else is queued at that moment (up to a maximum), commits them all in one
// transaction and answers each. There is no fixed window: a lone write
// waits for nothing, and under load each transaction carries what queued
// while the previous one committed.
package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("group commit closed")

// Call states: queued, taken by a loop, abandoned by its caller.
const (
	queued int32 = iota
	taken
	abandoned
)

// call is one write waiting for a loop.
type call[T any] struct {
	v     T
	state atomic.Int32
	done  chan error // buffered: a loop never blocks on it
}

// take moves a queued call to taken; it is false when its caller gave up.
func (c *call[T]) take() bool { return c.state.CompareAndSwap(queued, taken) }

// Loop runs the group commit of writes of type T.
type Loop[T any] struct {
	commit func(group []T) []error
	max    int
	calls  chan *call[T]
	mu     sync.RWMutex // held (read) by every Do; Close takes it
	closed bool
	loops  sync.WaitGroup
}

// New starts loops goroutines that commit groups of at most max writes
// with commit, which returns one error per write of the group (nil or
// shorter: the rest succeeded). Several loops let one group be built while
// another commits. commit must not keep group.
func New[T any](loops, max int, commit func(group []T) []error) *Loop[T] {
	l := &Loop[T]{commit: commit, max: max, calls: make(chan *call[T], max)}
	for range loops {
		l.loops.Go(l.loop)
	}
	return l
}

// Do queues v and returns its error once its group is committed (or
// failed). ctx is honoured while v waits; once a loop has taken it, the
// write completes.
func (l *Loop[T]) Do(ctx context.Context, v T) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	c := &call[T]{v: v, done: make(chan error, 1)}
	select {
	case l.calls <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		if c.state.CompareAndSwap(queued, abandoned) {
			return ctx.Err()
		}
		return <-c.done // taken: the commit is under way
	}
}

// loop is one group-commit loop.
func (l *Loop[T]) loop() {
	group := make([]*call[T], 0, l.max)
	vals := make([]T, 0, l.max)
	for first := range l.calls {
		group = group[:0]
		if first.take() {
			group = append(group, first)
		}
	drain:
		for len(group) < l.max {
			select {
			case c, ok := <-l.calls:
				if !ok {
					break drain
				}
				if c.take() {
					group = append(group, c)
				}
			default:
				break drain
			}
		}
		if len(group) == 0 {
			continue
		}
		vals = vals[:0]
		for _, c := range group {
			vals = append(vals, c.v)
		}
		errs := l.commit(vals)
		for i, c := range group {
			var err error
			if i < len(errs) {
				err = errs[i]
			}
			c.done <- err
		}
		clear(vals)
	}
}

// Close stops the loops after every write under way has been answered;
// later calls to Do return ErrClosed.
func (l *Loop[T]) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	close(l.calls)
	l.loops.Wait()
}

// Queued reports how many writes wait for a loop.
func (l *Loop[T]) Queued() int { return len(l.calls) }
