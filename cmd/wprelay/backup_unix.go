//go:build unix

package main

import (
	"os"
	"syscall"
)

// chownLike gives path the owner of dir when running as root, so that a
// file restored by root into the data dir stays readable by the sidecar's
// own user.
func chownLike(path, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return os.Chown(path, int(st.Uid), int(st.Gid))
}
