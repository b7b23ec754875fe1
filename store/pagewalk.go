package store

import (
	"encoding/binary"
	"fmt"
	"os"
)

// bbolt's page layout, as walkPages reads it: a 16-byte header (id,
// flags, count, overflow), then count 16-byte elements whose keys and
// values lie further in the page.
const (
	pageHeader   = 16
	pageElement  = 16
	branchPage   = 0x01
	leafPage     = 0x02
	bucketLeaf   = 0x01
	bucketHeader = 16 // root page, sequence; an inline bucket's page follows
	maxPageDepth = 256
)

// walkPages reads, from the file itself, every page reachable from the
// meta page of transaction txid, and reports a page whose header, overflow
// or elements point outside the file's pages, or a page reached twice.
// bbolt's own check trusts those fields: a damaged overflow count makes it
// loop over billions of page ids, and a damaged element faults on a
// goroutine no guard can recover. It reports nothing when that meta page
// has been overwritten since (a store that is being written).
func walkPages(path string, txid uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	meta, ok := metaOf(f, txid)
	if !ok {
		return nil
	}
	w := &pageWalk{f: f, path: path, pageSize: int64(meta.pageSize), hwm: meta.pgid, seen: make([]uint64, meta.pgid/64+1)}
	return w.page(meta.root, 0)
}

// metaOf returns the file's meta page of transaction txid.
func metaOf(f *os.File, txid uint64) (metaPage, bool) {
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
		if i == 0 {
			pageSize = int64(m.pageSize)
		}
		if m.txid == txid {
			return m, true
		}
	}
	return metaPage{}, false
}

type pageWalk struct {
	f        *os.File
	path     string
	pageSize int64
	hwm      uint64   // the pages are 0 … hwm-1
	seen     []uint64 // a bit per page
}

func (w *pageWalk) page(id uint64, depth int) error {
	if depth > maxPageDepth {
		return damaged(w.path, fmt.Sprintf("its pages nest deeper than %d", maxPageDepth))
	}
	if id < 2 || id >= w.hwm {
		return damaged(w.path, fmt.Sprintf("a page points to page %d, outside its %d pages", id, w.hwm))
	}
	hdr := make([]byte, pageHeader)
	if _, err := w.f.ReadAt(hdr, int64(id)*w.pageSize); err != nil {
		return damaged(w.path, fmt.Sprintf("page %d: %v", id, err))
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(hdr); got != id {
		return damaged(w.path, fmt.Sprintf("page %d identifies as %d", id, got))
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if id+overflow >= w.hwm {
		return damaged(w.path, fmt.Sprintf("page %d runs %d pages past the last", id, id+overflow+1-w.hwm))
	}
	for p := id; p <= id+overflow; p++ {
		if w.seen[p/64]&(1<<(p%64)) != 0 {
			return damaged(w.path, fmt.Sprintf("page %d is reached twice", p))
		}
		w.seen[p/64] |= 1 << (p % 64)
	}
	buf := make([]byte, int64(overflow+1)*w.pageSize)
	if _, err := w.f.ReadAt(buf, int64(id)*w.pageSize); err != nil {
		return damaged(w.path, fmt.Sprintf("page %d: %v", id, err))
	}
	return w.elements(id, buf, depth)
}

// elements checks the elements of page id, held in buf (an inline
// bucket's page is a part of its parent's), and walks the pages they
// point to.
func (w *pageWalk) elements(id uint64, buf []byte, depth int) error {
	ne := binary.NativeEndian
	if len(buf) < pageHeader {
		return damaged(w.path, fmt.Sprintf("page %d holds an inline bucket too short for its header", id))
	}
	flags, count := ne.Uint16(buf[8:]), int(ne.Uint16(buf[10:]))
	if pageHeader+count*pageElement > len(buf) {
		return damaged(w.path, fmt.Sprintf("page %d counts %d elements, more than it holds", id, count))
	}
	for i := range count {
		e := pageHeader + i*pageElement
		switch {
		case flags&branchPage != 0:
			pos, ksize := uint64(ne.Uint32(buf[e:])), uint64(ne.Uint32(buf[e+4:]))
			if uint64(e)+pos+ksize > uint64(len(buf)) {
				return damaged(w.path, fmt.Sprintf("page %d: element %d's key lies outside the page", id, i))
			}
			if err := w.page(ne.Uint64(buf[e+8:]), depth+1); err != nil {
				return err
			}
		case flags&leafPage != 0:
			eflags := ne.Uint32(buf[e:])
			pos, ksize, vsize := uint64(ne.Uint32(buf[e+4:])), uint64(ne.Uint32(buf[e+8:])), uint64(ne.Uint32(buf[e+12:]))
			end := uint64(e) + pos + ksize + vsize
			if end > uint64(len(buf)) {
				return damaged(w.path, fmt.Sprintf("page %d: element %d's key or value lies outside the page", id, i))
			}
			if eflags&bucketLeaf == 0 {
				continue
			}
			v := buf[uint64(e)+pos+ksize : end]
			if len(v) < bucketHeader {
				return damaged(w.path, fmt.Sprintf("page %d: element %d is a bucket too short for its header", id, i))
			}
			var err error
			if root := ne.Uint64(v); root == 0 {
				err = w.elements(id, v[bucketHeader:], depth+1)
			} else {
				err = w.page(root, depth+1)
			}
			if err != nil {
				return err
			}
		default:
			return damaged(w.path, fmt.Sprintf("page %d is neither a branch nor a leaf (flags %#x)", id, flags))
		}
	}
	return nil
}
