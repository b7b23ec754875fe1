package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
)

// Writes queued while a group commits go together into the next group;
// each gets its own error; a write given up while queued is never
// committed; after Close, Do refuses.
func TestLoop_GroupsAnswersAndCloses(t *testing.T) {
	hold, held := make(chan struct{}), make(chan struct{})
	var (
		mu     sync.Mutex
		groups [][]int
	)
	errOdd := errors.New("odd")
	l := New(1, 64, func(group []int) []error {
		if group[0] == -1 {
			close(held)
			<-hold
		}
		mu.Lock()
		groups = append(groups, append([]int(nil), group...))
		mu.Unlock()
		errs := make([]error, len(group))
		for i, v := range group {
			if v%2 == 1 {
				errs[i] = errOdd
			}
		}
		return errs
	})
	go l.Do(context.Background(), -1)
	<-held

	ctx, cancel := context.WithCancel(context.Background())
	abandoned := make(chan error, 1)
	go func() { abandoned <- l.Do(ctx, 100) }()
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = l.Do(context.Background(), i) })
	}
	for l.Queued() < n+1 { // all queued behind the held group
		runtime.Gosched()
	}
	cancel()
	if err := <-abandoned; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned write: err = %v, want context.Canceled", err)
	}
	close(hold)
	wg.Wait()
	for i, err := range errs {
		if want := i%2 == 1; (err != nil) != want {
			t.Errorf("write %d: err = %v", i, err)
		}
	}
	l.Close()
	if err := l.Do(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: err = %v, want ErrClosed", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(groups) != 2 || len(groups[1]) != n {
		t.Errorf("groups = %v, want the held one and then all %d queued writes together", groups, n)
	}
	for _, g := range groups {
		for _, v := range g {
			if v == 100 {
				t.Errorf("the abandoned write was committed: %v", groups)
			}
		}
	}
}
