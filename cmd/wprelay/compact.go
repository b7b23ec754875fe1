package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wprelay/wprelay/store"
)

// compactStore is store.Compact with progress on w: a line when it starts,
// the bytes written so far every second on a terminal (every 10 s
// otherwise), and a line when it ends, so that a long rewrite is never
// silent.
func compactStore(dst, src string, w io.Writer) error {
	start := time.Now()
	var size int64
	if fi, err := os.Stat(src); err == nil {
		size = fi.Size()
	}
	fmt.Fprintf(w, "compact: rewriting %s (%s) without its free pages…\n", src, humanBytes(size))
	every := 10 * time.Second
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			every = time.Second
		}
	}
	done := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if fi, err := os.Stat(dst); err == nil {
					fmt.Fprintf(w, "compact: %s written, %s\n", humanBytes(fi.Size()), time.Since(start).Round(time.Second))
				}
			}
		}
	}()
	err := store.Compact(dst, src)
	close(done)
	<-ticked
	if err != nil {
		return err
	}
	var out int64
	if fi, err := os.Stat(dst); err == nil {
		out = fi.Size()
	}
	fmt.Fprintf(w, "compact: %s → %s in %s\n", humanBytes(size), humanBytes(out), time.Since(start).Round(time.Millisecond))
	return nil
}
