package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestCommitter_Loop_FailingOpFailsAlone holds the commit loop inside one
// transaction while more writes queue, so that they share the next one;
// some of them fail after writing. The failing ones get their own error and
// leave nothing behind; the others commit.
func TestCommitter_Loop_FailingOpFailsAlone(t *testing.T) {
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	c, err := newCommitter(bdb, CommitLoop, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()

	hold, held := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go c.do(context.Background(), func(tx *bolt.Tx) error {
		once.Do(func() { close(held); <-hold })
		return nil
	})
	<-held

	const n = 40
	errBad := errors.New("bad op")
	runs := make([]int, n) // how often each op's function ran
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = c.do(context.Background(), func(tx *bolt.Tx) error {
				runs[i]++
				if err := tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%02d", i), []byte("v")); err != nil {
					return err
				}
				if i%10 == 3 {
					return fmt.Errorf("op %d: %w", i, errBad)
				}
				return nil
			})
		})
	}
	for c.group.Queued() < n { // every op queued behind the held transaction
		runtime.Gosched()
	}
	commitsBefore := c.commits.Load()
	close(hold)
	wg.Wait()

	err = bdb.View(func(tx *bolt.Tx) error {
		for i := range n {
			v := tx.Bucket([]byte("b")).Get(fmt.Appendf(nil, "k%02d", i))
			if bad := i%10 == 3; bad {
				if !errors.Is(errs[i], errBad) || v != nil {
					t.Errorf("op %d: err %v, value %q; want its own error and no write", i, errs[i], v)
				}
			} else if errs[i] != nil || v == nil {
				t.Errorf("op %d: err %v, value %q; want committed", i, errs[i], v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	commits := c.commits.Load() - commitsBefore
	t.Logf("%d ops, 4 failing: %d commits after the held one, runs %v", n, commits, runs)
	if commits > 8 {
		t.Errorf("%d commits for %d queued ops, want them grouped", commits, n)
	}
}
