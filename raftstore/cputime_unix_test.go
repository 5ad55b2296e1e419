//go:build unix

package raftstore

import "syscall"

// cpuTime returns the CPU time, user and system, the process has used.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
