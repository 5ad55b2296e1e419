package router

import (
	"context"
	"fmt"
	"testing"

	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/shard"
)

// benchReplica is a leading replica that answers at once and records
// nothing, so the benchmarks measure the router, not a fake's bookkeeping.
type benchReplica struct {
	value shard.Value
}

func (r *benchReplica) Propose(context.Context, []byte) (any, uint64, error) {
	return shard.Result{Index: 7, Version: 7}, 7, nil
}
func (r *benchReplica) ReadBarrier(context.Context) error { return nil }
func (r *benchReplica) Leader() replication.LeaderInfo {
	return replication.LeaderInfo{ID: "n1", Addr: addr("n1"), Term: 1, Self: true}
}
func (r *benchReplica) Get([]byte) (shard.Value, bool) { return r.value, true }
func (r *benchReplica) Scan([]byte, []byte, int, bool) ([]shard.KeyValue, bool) {
	return nil, false
}
func (r *benchReplica) AppliedIndex() uint64 { return 0 }
func (r *benchReplica) Events(uint64, func([]byte) bool, int) ([]shard.Event, uint64, error) {
	return nil, 0, nil
}
func (r *benchReplica) WaitApplied(context.Context, uint64) error { return nil }

type benchReplicas []*benchReplica

func (r benchReplicas) Replica(id shard.ID) (Replica, bool) { return r[id], true }

// newBenchRouter returns the router of node n1, which hosts and leads all
// 64 shards of a 3-node cluster.
func newBenchRouter(b *testing.B) *Router {
	b.Helper()
	const shards = 64
	placement := make([][]string, shards)
	reps := make(benchReplicas, shards)
	for sh := range placement {
		placement[sh] = []string{"n1", "n2", "n3"}
		reps[sh] = &benchReplica{value: shard.Value{Data: make([]byte, 256), Version: 7, CreateVersion: 3}}
	}
	return New(Config{NodeID: "n1"}, fakeMap{testCluster([]string{"n1", "n2", "n3"}, placement)}, reps, nil)
}

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "bench/%08d", i)
	}
	return keys
}

// BenchmarkRouterGetLocal measures a read this node leads: map lookup,
// key → shard, the replica's read barrier (free here) and local read.
func BenchmarkRouterGetLocal(b *testing.B) {
	r := newBenchRouter(b)
	keys := benchKeys(1024)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := r.Get(ctx, keys[i&1023], false); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkRouterPutLocal measures a write this node leads: key → shard,
// building, validating and encoding the command (256-byte value), and
// handing it to the replica (which answers at once here).
func BenchmarkRouterPutLocal(b *testing.B) {
	r := newBenchRouter(b)
	keys := benchKeys(1024)
	value := make([]byte, 256)
	req := shard.RequestID{ClientID: make([]byte, 16)}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			req := req
			req.Seq = uint64(i + 1)
			if _, err := r.Put(ctx, keys[i&1023], value, req, false); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
