package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ringkv/ringkv/shard"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// RegisterKeys returns n register keys, spread so that the first
// min(n, shards) of them land on distinct shards.
func RegisterKeys(n int, shards uint32) []string {
	var keys []string
	used := map[shard.ID]bool{}
	for i := 0; len(keys) < n && i < 100000; i++ {
		k := fmt.Sprintf("reg-%d", i)
		sh := shard.Of([]byte(k), shards)
		if used[sh] && len(used) < int(shards) {
			continue
		}
		used[sh] = true
		keys = append(keys, k)
	}
	return keys
}

// RegisterWorker is one concurrent client of the register workload.
type RegisterWorker struct {
	// Client serves its writes and most reads.
	Client ReadWriter
	// Direct, when not nil, serves a share of its reads
	// (Register.DirectReads), sent to DirectNode.
	Direct     Reader
	DirectNode string
	// DirectPick, when not nil, replaces Direct and DirectNode: it is
	// called before each direct read and returns the node to read from
	// and a Reader that reads from it, so that the node can change as
	// nodes join and leave. An empty node skips the direct read (the
	// read goes through Client).
	DirectPick func() (node string, rd Reader)
}

// Register is the register workload: workers read and write a few keys at
// random, each write with a value never written before, so that the
// checker can tell every write apart.
type Register struct {
	// Keys are the registers.
	Keys []string
	// Workers are the clients, one goroutine each.
	Workers []RegisterWorker
	// Reads is the share of operations that are reads (0 to 1).
	Reads float64
	// DirectReads is the share of reads sent through a worker's Direct
	// reader rather than its Client.
	DirectReads float64
	// OpTimeout bounds each operation, retries included.
	OpTimeout time.Duration
	// Think is the mean pause between two operations of a worker.
	Think time.Duration
	// Seed seeds the workers' choices.
	Seed int64
	// Clock and Recorder time and record the operations.
	Clock    *history.Clock
	Recorder *history.Recorder
}

// Run runs the workers until ctx ends. An operation in flight then is not
// cut short: it ends by itself within OpTimeout.
func (r *Register) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range r.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx, i)
		}()
	}
	wg.Wait()
}

func (r *Register) work(ctx context.Context, i int) {
	w := r.Workers[i]
	rng := rand.New(rand.NewPCG(uint64(r.Seed), uint64(i)))
	process := i
	for seq := 0; ctx.Err() == nil; seq++ {
		key := r.Keys[rng.IntN(len(r.Keys))]
		var op history.Op
		if rng.Float64() < r.Reads {
			rd, node := Reader(w.Client), ""
			if (w.Direct != nil || w.DirectPick != nil) && rng.Float64() < r.DirectReads {
				if w.DirectPick == nil {
					rd, node = w.Direct, w.DirectNode
				} else if n, d := w.DirectPick(); n != "" {
					rd, node = d, n
				}
			}
			op = r.read(ctx, rd, key)
			op.Node = node
		} else {
			op = r.write(ctx, w.Client, key, fmt.Sprintf("%d.%d", i, seq))
		}
		op.Process = process
		r.Recorder.Add(op)
		if op.Outcome == history.Unknown {
			process += len(r.Workers) // the old process may still be in flight
		}
		if !sleep(ctx, think(rng, r.Think)) {
			return
		}
	}
}

func (r *Register) read(ctx context.Context, rd Reader, key string) history.Op {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.OpTimeout)
	defer cancel()
	op := history.Op{Workload: history.Register, Kind: history.Read, Key: key, Call: r.Clock.Now()}
	v, found, err := rd.Get(octx, key)
	op.Return = r.Clock.Now()
	op.Outcome = outcome(err)
	if err != nil {
		op.Error = err.Error()
	} else {
		op.Value, op.Empty = v, !found
	}
	return op
}

func (r *Register) write(ctx context.Context, wr Writer, key, value string) history.Op {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.OpTimeout)
	defer cancel()
	op := history.Op{Workload: history.Register, Kind: history.Write, Key: key, Value: value, Call: r.Clock.Now()}
	err := wr.Put(octx, key, value)
	op.Return = r.Clock.Now()
	op.Outcome = outcome(err)
	if err != nil {
		op.Error = err.Error()
	}
	return op
}

// FinalReads reads every key once more through the first worker's client,
// retrying each until a read succeeds or ctx ends, and records every
// attempt as a final read. Run it once the cluster has healed.
func (r *Register) FinalReads(ctx context.Context) {
	process := len(r.Workers) * 1000000 // apart from the workers' numbers
	for _, key := range r.Keys {
		for ctx.Err() == nil {
			op := r.read(ctx, r.Workers[0].Client, key)
			op.Final, op.Process = true, process
			r.Recorder.Add(op)
			if op.Outcome != history.Unknown {
				break
			}
			process++
			sleep(ctx, 100*time.Millisecond)
		}
	}
}

// think draws a pause uniformly from [0, 2*mean).
func think(rng *rand.Rand, mean time.Duration) time.Duration {
	if mean <= 0 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(2 * mean)))
}

// sleep waits for d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
