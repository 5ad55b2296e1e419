package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// SetKey returns the key of the n-th element of the set workload.
func SetKey(n int64) string { return fmt.Sprintf("set-%07d", n) }

// setValue returns the value written to the n-th element.
func setValue(n int64) string { return fmt.Sprintf("v%d", n) }

// Set is the set workload: workers write new keys, each exactly once, and
// after the cluster heals every key is read back.
type Set struct {
	// Workers are the writers, one goroutine each.
	Workers []Writer
	// Final serves the final reads.
	Final Reader
	// OpTimeout bounds each operation, retries included.
	OpTimeout time.Duration
	// Think is the mean pause between two writes of a worker.
	Think time.Duration
	// Seed seeds the workers' pauses.
	Seed int64
	// Clock and Recorder time and record the operations.
	Clock    *history.Clock
	Recorder *history.Recorder

	next atomic.Int64 // the number of the next element
}

// Run runs the writers until ctx ends. A write in flight then ends by
// itself within OpTimeout.
func (s *Set) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range s.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx, i)
		}()
	}
	wg.Wait()
}

func (s *Set) work(ctx context.Context, i int) {
	rng := rand.New(rand.NewPCG(uint64(s.Seed), uint64(1000+i)))
	process := i
	for ctx.Err() == nil {
		n := s.next.Add(1) - 1
		op := history.Op{Workload: history.Set, Process: process, Kind: history.Write, Key: SetKey(n), Value: setValue(n)}
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.OpTimeout)
		op.Call = s.Clock.Now()
		err := s.Workers[i].Put(octx, op.Key, op.Value)
		op.Return = s.Clock.Now()
		cancel()
		op.Outcome = outcome(err)
		if err != nil {
			op.Error = err.Error()
		}
		s.Recorder.Add(op)
		if op.Outcome == history.Unknown {
			process += len(s.Workers)
		}
		if !sleep(ctx, think(rng, s.Think)) {
			return
		}
	}
}

// Written returns how many keys the writers have tried.
func (s *Set) Written() int64 { return s.next.Load() }

// FinalReads reads every key the writers tried and extra keys past them,
// never written, which must be absent; parallel readers retry each key
// until a read succeeds or ctx ends. Every attempt is recorded as a final
// read. Run it once the writers have stopped and the cluster has healed.
func (s *Set) FinalReads(ctx context.Context, extra int64) {
	const readers = 8
	total := s.next.Load() + extra
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			process := 2000000 + i
			for n := next.Add(1) - 1; n < total; n = next.Add(1) - 1 {
				key := SetKey(n)
				for ctx.Err() == nil {
					op := history.Op{Workload: history.Set, Process: process, Kind: history.Read, Key: key, Final: true}
					octx, cancel := context.WithTimeout(ctx, s.OpTimeout)
					op.Call = s.Clock.Now()
					v, found, err := s.Final.Get(octx, key)
					op.Return = s.Clock.Now()
					cancel()
					op.Outcome = outcome(err)
					if err != nil {
						op.Error = err.Error()
					} else {
						op.Value, op.Empty = v, !found
					}
					s.Recorder.Add(op)
					if op.Outcome != history.Unknown {
						break
					}
					process += readers
					sleep(ctx, 100*time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}
