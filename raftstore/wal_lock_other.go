//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package raftstore

import (
	"os"
	"time"
)

// lockDir only creates the lock file here: this platform has no flock, and
// two processes opening one WAL are not detected.
func lockDir(path string, _ time.Duration) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}
