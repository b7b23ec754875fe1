package main

import (
	"fmt"
	"io/fs"
	"os"
)

// The sidecar's secrets and store are its owner's alone: the files it
// writes are 0600 and its data dir 0700, also when they existed before
// with a wider mode; a secret file it reads (${file:...}) may be shared
// with a group (the systemd layout: root:wprelay 0640) but not with every
// user. Where it cannot fix a mode, it refuses, naming the command that
// does.

// privateDir creates dir with mode 0700, or makes an existing one 0700.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return tighten(dir, 0o700)
}

// writePrivate writes a file that its owner alone may read, also over one
// that existed with a wider mode.
func writePrivate(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return tighten(path, 0o600)
}

// tighten makes path's mode mode when it allows more.
func tighten(path string, mode fs.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&^mode == 0 {
		return nil
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("%s is mode %04o, open to other users, and could not be made %04o (%v): run chmod %o %s as its owner", path, fi.Mode().Perm(), mode, err, mode, path)
	}
	return nil
}

// readSecretFile reads a ${file:...} secret, refusing one that every user
// may read.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("%s is a secret that every user may read (mode %04o): run chmod o-rwx %s (or chmod 600)", path, fi.Mode().Perm(), path)
	}
	return os.ReadFile(path)
}
