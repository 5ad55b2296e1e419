package raftstore

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// BenchmarkStoreLogs measures durable appends as raft makes them: each
// writer is one group appending one 256-byte command per StoreLogs call, to
// its own group, on the disk under the test's temporary directory.
//
//   - store=raftstore: every group in one Store (one file, group commit).
//   - store=wal: every group in one WAL (segment files, group commit).
//   - store=raftboltdb: a raft-boltdb file per group, as replication.Open
//     does today; each StoreLogs is its own bolt commit.
//
// It reports writes/s (StoreLogs calls completed per second, all writers
// together), commits/write: commits per StoreLogs call, each one bolt
// commit (two fdatasyncs) or one WAL frame (one fdatasync), and
// cpu-ns/write: the process's CPU time (user and system, so fdatasync's
// share too) per StoreLogs call. raft-boltdb commits once per call by
// construction; raftstore's and the WAL's are counted by their Stats.
func BenchmarkStoreLogs(b *testing.B) {
	for _, impl := range []string{"raftstore", "wal", "raftboltdb"} {
		for _, writers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("store=%s/writers=%d", impl, writers), func(b *testing.B) {
				stores, stats := benchStores(b, impl, writers)
				cpu := cpuTime()
				runWriters(b, stores)
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/write")
				commits := float64(b.N)
				if stats != nil {
					commits = float64(stats().Commits)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
				b.ReportMetric(commits/float64(b.N), "commits/write")
			})
		}
	}
}

// benchStores returns one LogStore per writer, and for raftstore the
// Store's stats.
func benchStores(b *testing.B, impl string, n int) ([]raft.LogStore, func() Stats) {
	dir := b.TempDir()
	stores := make([]raft.LogStore, n)
	switch impl {
	case "raftstore":
		s, err := Open(filepath.Join(dir, "raft.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		for i := range stores {
			if stores[i], err = s.Group(uint64(i)); err != nil {
				b.Fatal(err)
			}
		}
		return stores, s.Stats
	case "wal":
		w, err := OpenWAL(filepath.Join(dir, "raft.wal"), WALOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { w.Close() })
		for i := range stores {
			if stores[i], err = w.Group(uint64(i)); err != nil {
				b.Fatal(err)
			}
		}
		return stores, w.Stats
	case "raftboltdb":
		for i := range stores {
			s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, fmt.Sprintf("g%d.db", i))})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			stores[i] = s
		}
		return stores, nil
	}
	b.Fatalf("unknown store %q", impl)
	return nil, nil
}

// runWriters has one goroutine per store append entries until b.N appends
// are done in all.
func runWriters(b *testing.B, stores []raft.LogStore) {
	data := make([]byte, 256)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for _, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := &raft.Log{Term: 1, Type: raft.LogCommand, Data: data}
			for next.Add(1) <= int64(b.N) {
				l.Index++
				l.AppendedAt = time.Now()
				if err := st.StoreLogs([]*raft.Log{l}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
