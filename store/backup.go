package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Backup writes a consistent copy of the store to w while it keeps
// serving: the copy is the file as one read transaction sees it, so it
// holds every write committed before the call and none after. begin is
// called first, inside that transaction, with the copy's size in bytes
// (for a Content-Length); an error from it stops the copy. Backup returns
// how many bytes it wrote.
//
// # Caveats
//
// The copy is page for page: it is as large as the file's high-water mark,
// free pages included (they may still hold deleted records), so it does not
// shrink a file that grew; Compact does. While the transaction is open,
// bbolt cannot reuse pages freed after it began, and a write that must
// grow the file's memory map (the file doubling in size up to 1 GiB, then
// each further GiB) waits until the copy ends: keep w fast, e.g. a local
// file or a client that reads without pause.
func (db *DB) Backup(w io.Writer, begin func(size int64) error) (int64, error) {
	var n int64
	err := db.view(func(tx *bolt.Tx) error {
		if begin != nil {
			if err := begin(tx.Size()); err != nil {
				return err
			}
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup %s: %w", db.bolt.Path(), err)
	}
	return n, nil
}

// Locked tells whether another process holds the store file at path open
// for writing (a sidecar serving it). A file that does not exist is not
// locked. It never modifies the file.
func Locked(path string) (bool, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	// A shared lock cannot be had while a writer holds the exclusive one.
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if errors.Is(err, berrors.ErrTimeout) {
		return true, nil
	}
	if err != nil {
		// The lock was free; the file itself is unreadable (e.g. damaged,
		// the usual reason to restore it).
		return false, nil
	}
	return false, bdb.Close()
}

// Compact copies the store file src into a new file dst (which must not
// exist) without its free pages: the result holds the same records in as
// few pages as they need. src is opened read-only, so it can be the file
// of a stopped sidecar or a backup; dst is written and synced.
func Compact(dst, src string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("compact: %s exists", dst)
	}
	sdb, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("compact: open %s: %w", src, err)
	}
	defer sdb.Close()
	ddb, err := bolt.Open(dst, 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("compact: create %s: %w", dst, err)
	}
	if err := bolt.Compact(ddb, sdb, 64<<20); err != nil {
		ddb.Close()
		return fmt.Errorf("compact %s into %s: %w", src, dst, err)
	}
	if err := ddb.Sync(); err != nil {
		ddb.Close()
		return fmt.Errorf("compact: sync %s: %w", dst, err)
	}
	if err := ddb.Close(); err != nil {
		return fmt.Errorf("compact: close %s: %w", dst, err)
	}
	return nil
}
