package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/store"
)

// goodFile returns the bytes of a store holding a few hundred events,
// made once.
var goodFile = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "wprelay-damage")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		return nil, err
	}
	for i := range 100 {
		in := event(fmt.Sprintf("k%d", i), t0.Add(time.Duration(i)*time.Second), "a", "b")
		in.Raw.Body = []byte(strings.Repeat(`{"pad":"x"}`, 20))
		if _, err := db.Enqueue(context.Background(), &relay.Batch{Events: []relay.Incoming{in}}); err != nil {
			return nil, err
		}
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
})

// useStore opens path as every command does and reads it all; it returns
// the first error. It must never panic.
func useStore(path string) error {
	ro, err := store.OpenReadOnly(path, store.Options{LockTimeout: time.Second})
	if err != nil {
		return err
	}
	err = errors.Join(ro.Check(), readAll(ro))
	ro.Close()
	if err != nil {
		return err
	}
	db, err := store.Open(path, store.Options{NoSync: true, LockTimeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Enqueue(context.Background(), &relay.Batch{Events: []relay.Incoming{event("new", t0, "a")}})
	return errors.Join(err, readAll(db))
}

func readAll(db *store.DB) error {
	ctx := context.Background()
	_, err := db.Stats(ctx)
	evs, _, err2 := db.Events(ctx, relay.EventFilter{}, "", 1000)
	err = errors.Join(err, err2)
	for _, e := range evs {
		_, err1 := db.Event(ctx, e.ID)
		_, err2 := db.Raw(ctx, e.ID)
		if !errors.Is(err2, relay.ErrNotFound) {
			err = errors.Join(err, err2)
		}
		err = errors.Join(err, err1)
	}
	return errors.Join(err, db.Export(ctx, relay.EventFilter{}, func(*relay.Event, *relay.Raw) error { return nil }))
}

// A truncated store file (the case the restore runbook sends people to
// wprelay check for) is reported as damaged, naming the runbook; it
// panicked ("assertion failed: Page expected to be: 58, but self
// identifies as 0").
func TestOpen_TruncatedFileIsDamaged(t *testing.T) {
	good, err := goodFile()
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{len(good) / 2, len(good) / 4, 4096 * 3, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wprelay.db")
			if err := os.WriteFile(path, good[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			err := useStore(path)
			if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), "store file damaged: ") ||
				!strings.Contains(err.Error(), "(see docs/runbooks/backup-and-restore.md)") {
				t.Fatalf("truncated to %d of %d bytes: %v; want store file damaged … (see docs/runbooks/backup-and-restore.md)", size, len(good), err)
			}
		})
	}
}

// FuzzOpenDamaged: a store file truncated, or overwritten anywhere with
// anything, never panics or faults in Open, OpenReadOnly, Check or the
// reads; it is reported as an error (or, when the damage missed what was
// read, works).
func FuzzOpenDamaged(f *testing.F) {
	good, err := goodFile()
	if err != nil {
		f.Fatal(err)
	}
	pages := uint32(len(good) / 4096)
	f.Add(uint32(len(good)/2), uint32(0), []byte{})
	f.Add(uint32(len(good)), uint32(4096*2+16), []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(uint32(len(good)), uint32(4096*(pages-1)), []byte{0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add(uint32(len(good)), uint32(16), []byte{0x7f, 0x7f})
	f.Add(uint32(len(good)), uint32(4096*4+8), []byte{0x10, 0x00})
	f.Fuzz(func(t *testing.T, size, at uint32, patch []byte) {
		b := append([]byte(nil), good[:int(size)%(len(good)+1)]...)
		if len(b) > 0 {
			at %= uint32(len(b))
			copy(b[at:], patch)
		}
		path := filepath.Join(t.TempDir(), "wprelay.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = useStore(path) // must return, not panic
	})
}
