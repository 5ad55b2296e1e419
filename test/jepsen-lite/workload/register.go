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

// Register is the register workload: workers read, write and
// compare-and-swap a few keys at random, each write or swap with a value
// never written before, so that the checker can tell every write apart.
type Register struct {
	// Keys are the registers.
	Keys []string
	// Workers are the clients, one goroutine each.
	Workers []RegisterWorker
	// Reads is the share of operations that are reads (0 to 1).
	Reads float64
	// CAS is the share of the other operations that are compare-and-swaps
	// rather than plain writes (0 to 1), when the worker's Client is a
	// Swapper. A swap expects the value the worker last read or wrote for
	// the key (most of the time) or one of the key's recent values seen
	// by any worker; with none known yet, the worker writes instead.
	CAS float64
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

	recent struct {
		sync.Mutex
		vals map[string][]string // per key, the last recentVals values seen OK
	}
}

// recentVals is how many recent values of a key the workers share as
// candidates for a swap's expected value.
const recentVals = 5

// saw notes that value was the key's value (an OK read, write or swap).
func (r *Register) saw(key, value string) {
	r.recent.Lock()
	defer r.recent.Unlock()
	if r.recent.vals == nil {
		r.recent.vals = map[string][]string{}
	}
	vs := append(r.recent.vals[key], value)
	if len(vs) > recentVals {
		vs = vs[len(vs)-recentVals:]
	}
	r.recent.vals[key] = vs
}

// recentValue returns one of the key's recent values, "" when none.
func (r *Register) recentValue(rng *rand.Rand, key string) string {
	r.recent.Lock()
	defer r.recent.Unlock()
	vs := r.recent.vals[key]
	if len(vs) == 0 {
		return ""
	}
	return vs[rng.IntN(len(vs))]
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
	swapper, canSwap := w.Client.(Swapper)
	last := map[string]string{} // the value this worker last saw per key
	for seq := 0; ctx.Err() == nil; seq++ {
		key := r.Keys[rng.IntN(len(r.Keys))]
		value := fmt.Sprintf("%d.%d", i, seq)
		var op history.Op
		read := rng.Float64() < r.Reads
		old := "" // the value a swap expects; "" for a plain write
		if !read && canSwap && rng.Float64() < r.CAS {
			if v, ok := last[key]; ok && rng.Float64() < 0.8 {
				old = v
			} else {
				old = r.recentValue(rng, key) // "" when none yet: a write
			}
		}
		switch {
		case read:
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
		case old != "":
			op = r.cas(ctx, swapper, key, old, value)
		default:
			op = r.write(ctx, w.Client, key, value)
		}
		op.Process = process
		r.Recorder.Add(op)
		switch {
		case op.Outcome == history.OK && (op.Kind != history.Read || !op.Empty):
			last[key] = op.Value
			r.saw(key, op.Value)
		case op.Kind != history.Read: // a failed swap or an unknown write: the value is not known
			delete(last, key)
		}
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

func (r *Register) cas(ctx context.Context, sw Swapper, key, old, value string) history.Op {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.OpTimeout)
	defer cancel()
	op := history.Op{Workload: history.Register, Kind: history.CAS, Key: key, Old: old, Value: value, Call: r.Clock.Now()}
	err := sw.CompareAndSwap(octx, key, old, value)
	op.Return = r.Clock.Now()
	op.Outcome = outcome(err)
	op.ConditionFailed = conditionFailed(err)
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
