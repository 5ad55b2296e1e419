package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// The fake cluster, a trimmed copy of the client package's: three
// in-process nodes, real gRPC servers on 127.0.0.1:0, serving KV and Cluster
// from one shared in-memory map. Shard sh is placed on n(sh%3+1) and the
// next two, and led by the first, except shard 1, which has no leader.

const (
	fakeShards = 4
	fakeMaxKey = 64 // longer keys are InvalidArgument
)

type fakeCluster struct {
	nodes []*fakeNode

	mu    sync.Mutex
	index uint64
	data  map[string]fakeValue
}

type fakeValue struct {
	data            []byte
	version, create uint64
}

type fakeNode struct {
	ringkvv1.UnimplementedKVServer
	ringkvv1.UnimplementedClusterServer
	c    *fakeCluster
	id   string
	addr string
}

func newFakeCluster(t testing.TB) *fakeCluster {
	t.Helper()
	c := &fakeCluster{data: make(map[string]fakeValue)}
	for i := range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		n := &fakeNode{c: c, id: fmt.Sprintf("n%d", i+1), addr: lis.Addr().String()}
		srv := grpc.NewServer()
		ringkvv1.RegisterKVServer(srv, n)
		ringkvv1.RegisterClusterServer(srv, n)
		served := make(chan struct{})
		go func() {
			defer close(served)
			_ = srv.Serve(lis)
		}()
		t.Cleanup(func() {
			srv.Stop()
			<-served
		})
		c.nodes = append(c.nodes, n)
	}
	return c
}

func (c *fakeCluster) endpoints() string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.addr)
	}
	return strings.Join(out, ",")
}

func (c *fakeCluster) replicas(sh int) []string {
	var out []string
	for i := range 3 {
		out = append(out, c.nodes[(sh+i)%3].id)
	}
	return out
}

func (c *fakeCluster) leader(sh int) string {
	if sh == 1 {
		return ""
	}
	return c.replicas(sh)[0]
}

func (n *fakeNode) check(ctx context.Context, key []byte) error {
	if len(key) > fakeMaxKey {
		return status.Errorf(codes.InvalidArgument, "key is %d bytes; the limit is %d", len(key), fakeMaxKey)
	}
	leader := n.c.leader(int(shard.Of(key, fakeShards)))
	if leader == "" {
		leader = n.id // the fake serves leaderless shards itself
	}
	return grpc.SetHeader(ctx, metadata.Pairs(ringkvv1.MetadataLeader, leader))
}

func (n *fakeNode) Get(ctx context.Context, req *ringkvv1.GetRequest) (*ringkvv1.GetResponse, error) {
	if err := n.check(ctx, req.GetKey()); err != nil {
		return nil, err
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	v, ok := n.c.data[string(req.GetKey())]
	if !ok {
		return nil, status.Error(codes.NotFound, "key not found")
	}
	return &ringkvv1.GetResponse{Value: v.data, Version: v.version, CreateVersion: v.create}, nil
}

func (n *fakeNode) Put(ctx context.Context, req *ringkvv1.PutRequest) (*ringkvv1.PutResponse, error) {
	if err := n.check(ctx, req.GetKey()); err != nil {
		return nil, err
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	n.c.index++
	k := string(req.GetKey())
	v := fakeValue{data: bytes.Clone(req.GetValue()), version: n.c.index, create: n.c.index}
	if old, ok := n.c.data[k]; ok {
		v.create = old.create
	}
	n.c.data[k] = v
	return &ringkvv1.PutResponse{Version: v.version}, nil
}

func (n *fakeNode) Delete(ctx context.Context, req *ringkvv1.DeleteRequest) (*ringkvv1.DeleteResponse, error) {
	if err := n.check(ctx, req.GetKey()); err != nil {
		return nil, err
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	n.c.index++
	_, ok := n.c.data[string(req.GetKey())]
	delete(n.c.data, string(req.GetKey()))
	return &ringkvv1.DeleteResponse{Deleted: ok, Version: n.c.index}, nil
}

func (n *fakeNode) Status(context.Context, *ringkvv1.StatusRequest) (*ringkvv1.StatusResponse, error) {
	resp := &ringkvv1.StatusResponse{Epoch: 7, ShardCount: fakeShards, ReplicationFactor: 3, NodeId: n.id}
	for _, m := range n.c.nodes {
		resp.Members = append(resp.Members, &ringkvv1.Member{Id: m.id, Address: m.addr, State: "active"})
	}
	for sh := range fakeShards {
		resp.Shards = append(resp.Shards, &ringkvv1.ShardInfo{
			Id: uint32(sh), Replicas: n.c.replicas(sh), Leader: n.c.leader(sh), LeaderTerm: 2,
		})
	}
	return resp, nil
}
