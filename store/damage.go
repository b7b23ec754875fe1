package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is returned for a store file whose pages cannot be read: bbolt
// panics on a corrupt page (and a read past the end of a truncated file
// faults), so every read of the file goes through guard, which turns both
// into this error.
var ErrDamaged = errors.New("store file damaged")

// damageHint is where an operator goes next.
const damageHint = "see docs/runbooks/backup-and-restore.md"

// damaged returns the error for path, which cannot be read as a store.
func damaged(path string, detail any) error {
	return fmt.Errorf("%w: %s: %v (%s)", ErrDamaged, path, detail, damageHint)
}

// guard runs fn, turning a panic, or a memory fault while it reads the
// mapped file, into ErrDamaged.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, r)
		}
	}()
	return fn()
}

// damagedOpen maps the errors bbolt's Open returns for a file that is not
// a readable bbolt file to ErrDamaged.
func damagedOpen(path string, err error) error {
	for _, e := range []error{berrors.ErrInvalid, berrors.ErrChecksum, berrors.ErrVersionMismatch, berrors.ErrInvalidMapping} {
		if errors.Is(err, e) {
			return damaged(path, err)
		}
	}
	if err != nil && strings.HasPrefix(err.Error(), "file size too small") {
		return damaged(path, err)
	}
	return err
}

// checkSize reports a file shorter than its pages (truncated): reading the
// pages past its end would fault.
func checkSize(tx *bolt.Tx) error {
	path := tx.DB().Path()
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if need := tx.Size(); fi.Size() < need {
		return damaged(path, fmt.Sprintf("the file is %d bytes but its pages need %d: it was truncated", fi.Size(), need))
	}
	return nil
}

// view runs fn in a read transaction, guarded.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	return guard(db.bolt.Path(), func() error { return db.bolt.View(fn) })
}

// checkHeader reads the file's two meta pages as bbolt lays them out and
// reports a file that bbolt would fault or panic on before it can be
// closed again: no valid meta page, or a file shorter than the pages its
// newest meta page counts (truncated). A missing or empty file is new.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	var best *metaPage
	pageSize := int64(os.Getpagesize())
	for i := int64(0); i < 2; i++ {
		buf := make([]byte, metaEnd)
		if _, err := f.ReadAt(buf, i*pageSize); err != nil {
			continue
		}
		m, ok := parseMeta(buf)
		if !ok {
			continue
		}
		if i == 0 && int64(m.pageSize) != pageSize {
			pageSize = int64(m.pageSize) // meta 1 sits one page in
		}
		if best == nil || m.txid > best.txid {
			best = &m
		}
	}
	switch {
	case best == nil:
		return damaged(path, "neither meta page is valid")
	case fi.Size() < int64(best.pgid)*int64(best.pageSize):
		return damaged(path, fmt.Sprintf("the file is %d bytes but its pages need %d: it was truncated", fi.Size(), int64(best.pgid)*int64(best.pageSize)))
	case best.root >= best.pgid || best.freelist >= best.pgid && best.freelist != noFreelist:
		return damaged(path, "its meta page points past the end of its pages")
	}
	return nil
}

// bbolt's on-disk meta page: a 16-byte page header, then magic, version,
// page size, flags (uint32 each), the root bucket (root page, sequence),
// the freelist page, the page count, the transaction id and an FNV-64a
// checksum of what precedes it.
const (
	metaMagic   = 0xED0CDAED
	metaVersion = 2
	metaStart   = 16
	metaEnd     = metaStart + 64
	noFreelist  = 0xffffffffffffffff
)

type metaPage struct {
	pageSize                   uint32
	root, freelist, pgid, txid uint64
}

func parseMeta(b []byte) (metaPage, bool) {
	m := b[metaStart:metaEnd]
	le := binary.LittleEndian
	if binary.NativeEndian.Uint32(m[0:]) != metaMagic && le.Uint32(m[0:]) != metaMagic {
		return metaPage{}, false
	}
	ne := binary.NativeEndian
	h := fnv.New64a()
	h.Write(m[:56])
	if ne.Uint32(m[4:]) != metaVersion || h.Sum64() != ne.Uint64(m[56:]) {
		return metaPage{}, false
	}
	p := metaPage{pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]), pgid: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}
	if p.pageSize < 512 || p.pageSize&(p.pageSize-1) != 0 {
		return metaPage{}, false
	}
	return p, true
}

// touched keeps touchAll's reads from being optimised away.
var touched atomic.Uint32

// touchAll reads every key and value of every bucket in tx, so that a page
// pointing outside the mapped file faults on the calling goroutine (where
// guard turns it into ErrDamaged) rather than in bbolt's Check goroutine,
// where it would crash the process.
func touchAll(tx *bolt.Tx) {
	var sum byte
	read := func(b []byte) {
		for _, x := range b {
			sum ^= x
		}
	}
	var walk func(b *bolt.Bucket)
	walk = func(b *bolt.Bucket) {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			read(k)
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					walk(nb)
				}
				continue
			}
			read(v)
		}
	}
	_ = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		read(name)
		walk(b)
		return nil
	})
	touched.Add(uint32(sum))
}
