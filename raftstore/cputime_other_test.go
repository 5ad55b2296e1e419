//go:build !unix

package raftstore

// cpuTime is not measured here: cpu-ns/write reads 0.
func cpuTime() int64 { return 0 }
