package client

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// benchStatus is the Status answer of a 3-node cluster with 64 shards, each
// on three nodes and led by the first, as kvnode's defaults make.
func benchStatus() *ringkvv1.StatusResponse {
	const shards = 64
	resp := &ringkvv1.StatusResponse{Epoch: 1, ShardCount: shards, ReplicationFactor: 3, NodeId: "n1"}
	ids := []string{"n1", "n2", "n3"}
	for i, id := range ids {
		resp.Members = append(resp.Members, &ringkvv1.Member{Id: id, Address: fmt.Sprintf("127.0.0.1:%d", 7001+i), State: "active"})
	}
	for sh := range shards {
		reps := []string{ids[sh%3], ids[(sh+1)%3], ids[(sh+2)%3]}
		resp.Shards = append(resp.Shards, &ringkvv1.ShardInfo{Id: uint32(sh), Replicas: reps, Leader: reps[0], LeaderTerm: 1})
	}
	return resp
}

// benchKeys returns n keys of the shape the load generator uses.
func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "bench/%08d", i)
	}
	return keys
}

// BenchmarkRoute measures the routing decision of every keyed call: load
// the shard map, hash the key to its shard, list the candidates (leader
// first) and pick the first whose breaker is closed, as invoke does.
func BenchmarkRoute(b *testing.B) {
	c := &Client{log: slog.New(slog.DiscardHandler), breakers: newBreakers(DefaultBreakerFailures, DefaultBreakerCooldown)}
	if err := c.install(benchStatus()); err != nil {
		b.Fatal(err)
	}
	keys := benchKeys(1024)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m := c.smap.Load()
			sh := shard.Of(keys[i&1023], m.count)
			if addr := c.pick(m.candidates(sh), make(map[string]bool)); addr == "" {
				b.Fatal("no address")
			}
			i++
		}
	})
}

// BenchmarkShardMapLeader measures the bare lookup: key → shard → leader's
// address, without the candidate list and breakers.
func BenchmarkShardMapLeader(b *testing.B) {
	m, err := newShardMap(benchStatus(), nil)
	if err != nil {
		b.Fatal(err)
	}
	keys := benchKeys(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if m.addrs[m.leader(shard.Of(keys[i&1023], m.count))] == "" {
			b.Fatal("no leader")
		}
		i++
	}
}

// BenchmarkGetLoopback measures a whole Get through the client against
// in-process fake nodes on loopback gRPC: the client's cost plus one gRPC
// round trip, with as many goroutines calling at once as GOMAXPROCS × -cpu.
func BenchmarkGetLoopback(b *testing.B) {
	fc := newFakeCluster(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := New(ctx, fc.addrs())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := benchKeys(64)
	for _, k := range keys {
		if _, err := c.Put(ctx, k, make([]byte, 256)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Get(ctx, keys[i&63]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
