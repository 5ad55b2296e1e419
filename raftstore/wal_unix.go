//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package raftstore

import (
	"errors"
	"os"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
)

// lockDir takes an exclusive flock on path, created if needed, waiting up
// to timeout; then it fails with bbolt.ErrTimeout, as Open does.
func lockDir(path string, timeout time.Duration) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, bbolt.ErrTimeout
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close() // closing the file releases the flock
}
