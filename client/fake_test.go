package client

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// The fake cluster: three in-process "nodes", real gRPC servers on
// 127.0.0.1:0, serving KV and Cluster from one shared in-memory map. Every
// node serves every key, as a real node forwards to the shard's leader, and
// answers with the shard's actual leader in the leader header. Tests script
// leadership and faults per node, and read back per-node call counts and
// the RequestID of every write that reached the map.

const (
	fakeShards = 8
	fakeMaxKey = 64 // longer keys are InvalidArgument
)

type fakeCluster struct {
	nodes []*fakeNode

	mu       sync.Mutex
	leaders  []string // per shard: the node that actually leads it
	reported []string // per shard: the leader Status reports ("" = leaders[sh])
	index    uint64   // the fake Raft index: one per applied write
	data     map[string]fakeValue
	results  map[fakeReq]fakeResult // applied writes, for deduplication
	writes   []*ringkvv1.RequestID  // every write that arrived, in order

	// The admin side, which tests script: Status reports states (member
	// ID -> state, "active" when absent) and targets (shard -> target,
	// none when absent); RemoveNode records the IDs it is called with in
	// removed and fails with removeErr if set, else answers epoch 2;
	// RebalanceStatus answers rebalance (empty when nil).
	states    map[string]string
	targets   map[int][]string
	removed   []string
	removeErr error
	rebalance *ringkvv1.RebalanceStatusResponse
}

type fakeValue struct {
	data            []byte
	version, create uint64
}

type fakeReq struct {
	client string
	seq    uint64
}

type fakeResult struct {
	version uint64
	deleted bool
}

var (
	_ ringkvv1.KVServer      = (*fakeNode)(nil)
	_ ringkvv1.ClusterServer = (*fakeNode)(nil)
)

type fakeNode struct {
	ringkvv1.UnimplementedKVServer
	ringkvv1.UnimplementedClusterServer

	c      *fakeCluster
	id     string
	addr   string
	srv    *grpc.Server
	served chan struct{} // closed when Serve returns

	mu          sync.Mutex
	kvCalls     int
	statusCalls int
	adminCalls  int        // RemoveNode and RebalanceStatus
	fail        codes.Code // not OK: every call fails with it
	failKV      codes.Code // not OK: every KV call fails with it
	// before runs first in every call; an error fails the call.
	before func(ctx context.Context, method string, key []byte) error
	// after runs once a write is applied; an error fails the call, as if
	// the response were lost.
	after func(ctx context.Context, method string, key []byte) error
}

// newFakeCluster starts three nodes, n1..n3, which the test's cleanup stops.
// Shard sh is placed on n(sh%3+1), then the next two, and led by the first.
func newFakeCluster(t testing.TB) *fakeCluster {
	t.Helper()
	c := &fakeCluster{
		leaders:  make([]string, fakeShards),
		reported: make([]string, fakeShards),
		data:     make(map[string]fakeValue),
		results:  make(map[fakeReq]fakeResult),
		states:   make(map[string]string),
		targets:  make(map[int][]string),
	}
	for i := range 3 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		n := &fakeNode{c: c, id: fmt.Sprintf("n%d", i+1), addr: lis.Addr().String(),
			srv: grpc.NewServer(), served: make(chan struct{})}
		ringkvv1.RegisterKVServer(n.srv, n)
		ringkvv1.RegisterClusterServer(n.srv, n)
		go func() {
			defer close(n.served)
			_ = n.srv.Serve(lis)
		}()
		t.Cleanup(n.stop)
		c.nodes = append(c.nodes, n)
	}
	for sh := range fakeShards {
		c.leaders[sh] = c.replicas(sh)[0]
	}
	return c
}

func (c *fakeCluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.addr)
	}
	return out
}

func (c *fakeCluster) node(id string) *fakeNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	panic("no node " + id)
}

func (c *fakeCluster) replicas(sh int) []string {
	var out []string
	for i := range 3 {
		out = append(out, c.nodes[(sh+i)%3].id)
	}
	return out
}

// setLeader makes id the leader of sh, and what Status reports.
func (c *fakeCluster) setLeader(sh shard.ID, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leaders[sh] = id
	c.reported[sh] = ""
}

// setReportedLeader makes Status report id as the leader of sh, whoever
// leads it.
func (c *fakeCluster) setReportedLeader(sh shard.ID, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reported[sh] = id
}

func (c *fakeCluster) leaderOf(key []byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaders[shard.Of(key, fakeShards)]
}

// writeIDs returns the RequestID of every write that arrived, in order.
func (c *fakeCluster) writeIDs() []*ringkvv1.RequestID {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*ringkvv1.RequestID, len(c.writes))
	for i, w := range c.writes {
		out[i] = proto.CloneOf(w)
	}
	return out
}

// applied returns how many writes were applied.
func (c *fakeCluster) applied() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index
}

// write applies a write once per RequestID: a repeat returns the first
// result.
func (c *fakeCluster) write(id *ringkvv1.RequestID, apply func(index uint64) fakeResult) fakeResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, proto.CloneOf(id))
	req := fakeReq{string(id.GetClientId()), id.GetSeq()}
	if r, ok := c.results[req]; ok && id != nil {
		return r
	}
	c.index++
	r := apply(c.index)
	if id != nil {
		c.results[req] = r
	}
	return r
}

func (n *fakeNode) stop() {
	n.srv.Stop()
	<-n.served
}

func (n *fakeNode) set(f func(n *fakeNode)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(n)
}

func (n *fakeNode) counts() (kv, status int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kvCalls, n.statusCalls
}

// adminCount returns the number of RemoveNode and RebalanceStatus calls n
// served.
func (n *fakeNode) adminCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.adminCalls
}

// enter counts a call and runs the scripted faults.
func (n *fakeNode) enter(ctx context.Context, method string, key []byte) error {
	kv := method == "Get" || method == "Put" || method == "Delete"
	n.mu.Lock()
	switch {
	case kv:
		n.kvCalls++
	case method == "Status":
		n.statusCalls++
	default:
		n.adminCalls++
	}
	fail, failKV, before := n.fail, n.failKV, n.before
	n.mu.Unlock()
	if fail != codes.OK {
		return status.Errorf(fail, "%s: scripted failure", n.id)
	}
	if kv && failKV != codes.OK {
		return status.Errorf(failKV, "%s: scripted KV failure", n.id)
	}
	if before != nil {
		if err := before(ctx, method, key); err != nil {
			return err
		}
	}
	if kv {
		if len(key) == 0 {
			return status.Error(codes.InvalidArgument, "key is empty")
		}
		if len(key) > fakeMaxKey {
			return status.Errorf(codes.InvalidArgument, "key is %d bytes; the limit is %d", len(key), fakeMaxKey)
		}
	}
	return nil
}

// leave runs the after hook of a write, then sets the leader header.
func (n *fakeNode) leave(ctx context.Context, method string, key []byte) error {
	n.mu.Lock()
	after := n.after
	n.mu.Unlock()
	if after != nil && method != "Get" {
		if err := after(ctx, method, key); err != nil {
			return err
		}
	}
	return grpc.SetHeader(ctx, metadata.Pairs(ringkvv1.MetadataLeader, n.c.leaderOf(key)))
}

func (n *fakeNode) Get(ctx context.Context, req *ringkvv1.GetRequest) (*ringkvv1.GetResponse, error) {
	if err := n.enter(ctx, "Get", req.GetKey()); err != nil {
		return nil, err
	}
	n.c.mu.Lock()
	v, ok := n.c.data[string(req.GetKey())]
	n.c.mu.Unlock()
	if err := n.leave(ctx, "Get", req.GetKey()); err != nil {
		return nil, err
	}
	if !ok {
		return nil, status.Error(codes.NotFound, "key not found")
	}
	return &ringkvv1.GetResponse{Value: v.data, Version: v.version, CreateVersion: v.create}, nil
}

func (n *fakeNode) Put(ctx context.Context, req *ringkvv1.PutRequest) (*ringkvv1.PutResponse, error) {
	if err := n.enter(ctx, "Put", req.GetKey()); err != nil {
		return nil, err
	}
	r := n.c.write(req.GetRequestId(), func(index uint64) fakeResult {
		k := string(req.GetKey())
		v := fakeValue{data: bytes.Clone(req.GetValue()), version: index, create: index}
		if old, ok := n.c.data[k]; ok {
			v.create = old.create
		}
		n.c.data[k] = v
		return fakeResult{version: index}
	})
	if err := n.leave(ctx, "Put", req.GetKey()); err != nil {
		return nil, err
	}
	return &ringkvv1.PutResponse{Version: r.version}, nil
}

func (n *fakeNode) Delete(ctx context.Context, req *ringkvv1.DeleteRequest) (*ringkvv1.DeleteResponse, error) {
	if err := n.enter(ctx, "Delete", req.GetKey()); err != nil {
		return nil, err
	}
	r := n.c.write(req.GetRequestId(), func(index uint64) fakeResult {
		k := string(req.GetKey())
		_, ok := n.c.data[k]
		delete(n.c.data, k)
		return fakeResult{version: index, deleted: ok}
	})
	if err := n.leave(ctx, "Delete", req.GetKey()); err != nil {
		return nil, err
	}
	return &ringkvv1.DeleteResponse{Deleted: r.deleted, Version: r.version}, nil
}

func (n *fakeNode) Status(ctx context.Context, _ *ringkvv1.StatusRequest) (*ringkvv1.StatusResponse, error) {
	if err := n.enter(ctx, "Status", nil); err != nil {
		return nil, err
	}
	resp := &ringkvv1.StatusResponse{Epoch: 1, ShardCount: fakeShards, ReplicationFactor: 3, NodeId: n.id}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	for _, m := range n.c.nodes {
		state := n.c.states[m.id]
		if state == "" {
			state = "active"
		}
		resp.Members = append(resp.Members, &ringkvv1.Member{Id: m.id, Address: m.addr, State: state})
	}
	for sh := range fakeShards {
		leader := n.c.leaders[sh]
		if n.c.reported[sh] != "" {
			leader = n.c.reported[sh]
		}
		resp.Shards = append(resp.Shards, &ringkvv1.ShardInfo{
			Id: uint32(sh), Replicas: n.c.replicas(sh), Leader: leader, LeaderTerm: 1,
			Target: n.c.targets[sh],
		})
	}
	return resp, nil
}

func (n *fakeNode) RemoveNode(ctx context.Context, req *ringkvv1.RemoveNodeRequest) (*ringkvv1.RemoveNodeResponse, error) {
	if err := n.enter(ctx, "RemoveNode", nil); err != nil {
		return nil, err
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	n.c.removed = append(n.c.removed, req.GetNodeId())
	if n.c.removeErr != nil {
		return nil, n.c.removeErr
	}
	return &ringkvv1.RemoveNodeResponse{Epoch: 2}, nil
}

func (n *fakeNode) RebalanceStatus(ctx context.Context, _ *ringkvv1.RebalanceStatusRequest) (*ringkvv1.RebalanceStatusResponse, error) {
	if err := n.enter(ctx, "RebalanceStatus", nil); err != nil {
		return nil, err
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.c.rebalance == nil {
		return &ringkvv1.RebalanceStatusResponse{Epoch: 1}, nil
	}
	return proto.CloneOf(n.c.rebalance), nil
}

// keyOn returns a key of shard sh.
func keyOn(t testing.TB, sh shard.ID, prefix string) []byte {
	t.Helper()
	for i := range 10000 {
		k := fmt.Appendf(nil, "%s-%d", prefix, i)
		if shard.Of(k, fakeShards) == sh {
			return k
		}
	}
	t.Fatalf("no key of shard %d", sh)
	return nil
}
