package store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/store"
)

// TestDB_Backup_ConsistentWhileWriting copies the store while writers keep
// committing: the copy passes the page check and holds every event
// committed before the copy began.
func TestDB_Backup_ConsistentWhileWriting(t *testing.T) {
	ctx := t.Context()
	db := MustOpenDB(t)
	var before []string
	for i := range 300 {
		before = append(before, enqueue(t, db, event(fmt.Sprintf("before-%d", i), t0, "wordpress"))[0].ID)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// started counts enqueues begun, during those returned: an event can be
	// committed (and so in the copy) before its writer counts it as done,
	// never before it counts it as begun.
	var during, started atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				started.Add(1)
				if _, err := db.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{event(fmt.Sprintf("during-%d-%d", w, i), t0, "wordpress")}}); err != nil {
					t.Errorf("enqueue during the backup: %v", err)
					return
				}
				during.Add(1)
			}
		})
	}
	for during.Load() < 50 { // the writers are under way
		time.Sleep(time.Millisecond)
	}
	var buf bytes.Buffer
	var size int64
	n, err := db.Backup(&buf, func(s int64) error { size = s; return nil })
	afterCopy := during.Load()
	begun := started.Load()
	for during.Load() < afterCopy+50 { // and still are after it
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n != size || int64(buf.Len()) != size {
		t.Fatalf("wrote %d bytes, buffer %d, announced %d", n, buf.Len(), size)
	}

	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := store.OpenReadOnly(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Fatalf("the copy fails the page check: %v", err)
	}
	for _, id := range before {
		if _, err := cp.Event(ctx, id); err != nil {
			t.Fatalf("event %s, committed before the backup, is not in the copy: %v", id, err)
		}
	}
	st, err := cp.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Events[relay.EventQueued]; got < len(before) || got > len(before)+int(begun) {
		t.Errorf("the copy holds %d events; want %d committed before it, plus at most the %d begun by the time it ended", got, len(before), begun)
	}
	if st.Pending != st.Events[relay.EventQueued] {
		t.Errorf("the copy's pending count %d does not match its %d queued events", st.Pending, st.Events[relay.EventQueued])
	}
}

func TestDB_Backup_BeginErrorStops(t *testing.T) {
	db := MustOpenDB(t)
	var buf bytes.Buffer
	if _, err := db.Backup(&buf, func(int64) error { return context.Canceled }); err == nil || buf.Len() != 0 {
		t.Fatalf("err %v, %d bytes written; want the error and nothing written", err, buf.Len())
	}
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	if locked, err := store.Locked(path); locked || err != nil {
		t.Errorf("no file: Locked = %v, %v", locked, err)
	}
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if locked, err := store.Locked(path); !locked || err != nil {
		t.Errorf("open store: Locked = %v, %v; want true", locked, err)
	}
	db.Close()
	if locked, err := store.Locked(path); locked || err != nil {
		t.Errorf("closed store: Locked = %v, %v", locked, err)
	}
	if err := os.WriteFile(path, []byte("not a bbolt file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if locked, err := store.Locked(path); locked || err != nil {
		t.Errorf("damaged file: Locked = %v, %v; want false (nobody holds it)", locked, err)
	}
}

// TestCompact_DropsFreePages shows what a backup does not do: after most
// events are pruned the file keeps its size, and so does a Backup of it;
// Compact writes the remaining records into a file a fraction of the size.
func TestCompact_DropsFreePages(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 8<<10)
	var keep string
	for i := range 400 {
		in := event(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Second)) // no deliveries: final at once
		in.Raw.Body = body
		id := enqueue(t, db, in)[0].ID
		if i == 399 {
			keep = id
		}
	}
	backupSize := func() int64 {
		t.Helper()
		n, err := db.Backup(io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	full := backupSize()
	// Prune every key and every event but the last.
	for {
		n, err := db.Prune(ctx, t0.Add(30*24*time.Hour), t0.Add(399*time.Second), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	pruned := backupSize()
	db.Close()
	if pruned < full*9/10 {
		t.Errorf("backup before pruning %d bytes, after %d; a page copy keeps the free pages, so it should not shrink", full, pruned)
	}
	compacted := filepath.Join(dir, "compact.db")
	if err := store.Compact(compacted, path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(compacted)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > pruned/4 {
		t.Errorf("compacted %d bytes into %d; want under a quarter", pruned, fi.Size())
	}
	t.Logf("backup of the full store %d bytes, of the pruned store %d, compacted %d", full, pruned, fi.Size())
	cp, err := store.Open(compacted, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if err := cp.Check(); err != nil {
		t.Fatal(err)
	}
	if e, err := cp.Event(ctx, keep); err != nil || e.IdempotencyKey != "k399" {
		t.Errorf("the kept event after Compact: %+v, %v", e, err)
	}
	if err := store.Compact(compacted, path); err == nil {
		t.Error("Compact over an existing file succeeded")
	}
}
