package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// The fake cluster, a trimmed copy of the client package's: in-process
// nodes, real gRPC servers on 127.0.0.1:0, serving KV and Cluster from one
// shared in-memory map. Shard sh is placed on the members in turn from the
// (sh mod members)-th, and led by the first of its replicas, except shard 1,
// which has no leader.
//
// The admin side is a toy rebalancer, deterministic and driven by the calls
// it serves. RemoveNode drains a member (or refuses, as a real node does,
// when too few would be left); join (a test's call) adds a spare node. Each
// makes a new target placement: shard sh on the nodes that are joining or
// active, in turn from the (sh mod their number)-th; and one pending move
// per replica that differs. Each RebalanceStatus call answers, then ticks:
// the active moves finish (done, fakeMoveBytes each) and up to
// fakeMaxMoves pending ones start; once none is left, draining nodes leave
// the membership and joining ones become active.

const (
	fakeShards    = 4
	fakeMaxKey    = 64 // longer keys are InvalidArgument
	fakeRF        = 3
	fakeEpoch     = 7 // the epoch at the start
	fakeMaxMoves  = 2
	fakeMoveBytes = 3 << 19 // 1.5 MiB
	fakeFinished  = 20      // finished moves kept
)

type fakeCluster struct {
	nodes []*fakeNode // every server, members or spare

	mu    sync.Mutex
	index uint64
	data  map[string]fakeValue

	// The admin side, as described above.
	epoch     uint64
	members   []fakeMember // in order of joining
	placement [][]string   // per shard: its replicas
	target    [][]string   // per shard: its target replicas
	pending   []*ringkvv1.Move
	active    []*ringkvv1.Move
	finished  []*ringkvv1.Move // newest last, at most fakeFinished
	// finishedSince and bytesSince count the moves finished since the
	// target last changed, and their bytes.
	finishedSince, bytesSince uint64
	frozen                    bool // ticks do nothing: moves never end
	rebalanceCalls            int
	rebalanceErr              error // if set, every RebalanceStatus call fails with it
	// scanGate, if set, holds every Scan of a page but the first until it
	// is closed (or the call's context ends).
	scanGate chan struct{}
}

type fakeMember struct {
	id, addr, state string
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

// newFakeCluster starts three nodes, n1..n3, all members.
func newFakeCluster(t testing.TB) *fakeCluster {
	t.Helper()
	return newFakeClusterOf(t, 3, 3)
}

// newFakeClusterOf starts nodes nodes, n1..nN, of which the first members
// are members; the others are spares, which join adds.
func newFakeClusterOf(t testing.TB, nodes, members int) *fakeCluster {
	t.Helper()
	c := &fakeCluster{data: make(map[string]fakeValue), epoch: fakeEpoch}
	for i := range nodes {
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
		if i < members {
			c.members = append(c.members, fakeMember{id: n.id, addr: n.addr, state: "active"})
		}
	}
	c.target = c.targetLocked()
	for _, r := range c.target {
		c.placement = append(c.placement, slices.Clone(r))
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

// leaderLocked returns the leader of shard sh: its first replica, none for
// shard 1.
func (c *fakeCluster) leaderLocked(sh int) string {
	if sh == 1 || len(c.placement[sh]) == 0 {
		return ""
	}
	return c.placement[sh][0]
}

func (c *fakeCluster) memberLocked(id string) *fakeMember {
	for i := range c.members {
		if c.members[i].id == id {
			return &c.members[i]
		}
	}
	return nil
}

// setState sets the state of member id, without changing the target.
func (c *fakeCluster) setState(id, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.memberLocked(id).state = state
}

// targetLocked returns the target placement of the members: shard sh on
// the joining and active ones in turn from the (sh mod their number)-th.
func (c *fakeCluster) targetLocked() [][]string {
	var eligible []string
	for _, m := range c.members {
		if m.state == "joining" || m.state == "active" {
			eligible = append(eligible, m.id)
		}
	}
	out := make([][]string, fakeShards)
	for sh := range out {
		for i := range min(fakeRF, len(eligible)) {
			out[sh] = append(out[sh], eligible[(sh+i)%len(eligible)])
		}
	}
	return out
}

// replanLocked makes a new target and one pending move per replica that
// differs from it, in shard order; shards with an active move wait for it.
func (c *fakeCluster) replanLocked() {
	c.epoch++
	c.target = c.targetLocked()
	c.pending = nil
	c.finishedSince, c.bytesSince = 0, 0
	for sh := range fakeShards {
		if slices.ContainsFunc(c.active, func(m *ringkvv1.Move) bool { return int(m.Shard) == sh }) {
			continue
		}
		var out, in []string
		for _, id := range c.placement[sh] {
			if !slices.Contains(c.target[sh], id) {
				out = append(out, id)
			}
		}
		for _, id := range c.target[sh] {
			if !slices.Contains(c.placement[sh], id) {
				in = append(in, id)
			}
		}
		for i := range max(len(out), len(in)) {
			m := &ringkvv1.Move{Shard: uint32(sh), Phase: "pending"}
			if i < len(out) {
				m.FromNode = out[i]
			}
			if i < len(in) {
				m.ToNode = in[i]
			}
			c.pending = append(c.pending, m)
		}
	}
}

// tickLocked advances the rebalancer by one step, as described above.
func (c *fakeCluster) tickLocked() {
	if c.frozen {
		return
	}
	now := time.Now().UnixMilli()
	for _, m := range c.active {
		r := c.placement[m.Shard]
		switch i := slices.Index(r, m.FromNode); {
		case m.FromNode == "":
			r = append(r, m.ToNode)
		case m.ToNode == "":
			r = slices.Delete(r, i, i+1)
		default:
			r[i] = m.ToNode
		}
		c.placement[m.Shard] = r
		m.Phase, m.FinishedUnixMs, m.Bytes = "done", now, fakeMoveBytes
		c.finishedSince++
		c.bytesSince += fakeMoveBytes
		c.finished = append(c.finished, m)
	}
	c.active = nil
	if n := len(c.finished); n > fakeFinished {
		c.finished = slices.Clone(c.finished[n-fakeFinished:])
	}
	for len(c.pending) > 0 && len(c.active) < fakeMaxMoves {
		m := c.pending[0]
		c.pending = c.pending[1:]
		m.Phase, m.StartedUnixMs = "active", now
		c.active = append(c.active, m)
	}
	if len(c.pending) > 0 || len(c.active) > 0 {
		return
	}
	changed := false
	c.members = slices.DeleteFunc(c.members, func(m fakeMember) bool {
		gone := m.state == "draining" && !slices.ContainsFunc(c.placement, func(r []string) bool { return slices.Contains(r, m.id) })
		changed = changed || gone
		return gone
	})
	for i := range c.members {
		if c.members[i].state == "joining" {
			c.members[i].state = "active"
			changed = true
		}
	}
	if changed {
		c.epoch++
	}
}

// join adds the spare node id as a joining member and replans.
func (c *fakeCluster) join(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.id == id {
			c.members = append(c.members, fakeMember{id: id, addr: n.addr, state: "joining"})
			c.replanLocked()
			return
		}
	}
	panic("no node " + id)
}

func (n *fakeNode) check(ctx context.Context, key []byte) error {
	if len(key) > fakeMaxKey {
		return status.Errorf(codes.InvalidArgument, "key is %d bytes; the limit is %d", len(key), fakeMaxKey)
	}
	n.c.mu.Lock()
	leader := n.c.leaderLocked(int(shard.Of(key, fakeShards)))
	n.c.mu.Unlock()
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
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := &ringkvv1.StatusResponse{Epoch: c.epoch, ShardCount: fakeShards, ReplicationFactor: fakeRF, NodeId: n.id}
	for _, m := range c.members {
		resp.Members = append(resp.Members, &ringkvv1.Member{Id: m.id, Address: m.addr, State: m.state})
	}
	for sh := range fakeShards {
		resp.Shards = append(resp.Shards, &ringkvv1.ShardInfo{
			Id: uint32(sh), Replicas: slices.Clone(c.placement[sh]), Leader: c.leaderLocked(sh), LeaderTerm: 2,
			Target: slices.Clone(c.target[sh]),
		})
	}
	return resp, nil
}

func (n *fakeNode) RemoveNode(_ context.Context, req *ringkvv1.RemoveNodeRequest) (*ringkvv1.RemoveNodeResponse, error) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	id := req.GetNodeId()
	m := c.memberLocked(id)
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "node ID is empty")
	case m == nil:
		return nil, status.Errorf(codes.NotFound, "%s is not a member", id)
	case m.state == "draining":
		return &ringkvv1.RemoveNodeResponse{Epoch: c.epoch}, nil
	}
	left := 0
	for _, o := range c.members {
		if o.id != id && (o.state == "active" || o.state == "joining") {
			left++
		}
	}
	if left < fakeRF {
		return nil, status.Errorf(codes.FailedPrecondition, "removing %s would leave %d nodes for replication factor %d", id, left, fakeRF)
	}
	m.state = "draining"
	c.replanLocked()
	return &ringkvv1.RemoveNodeResponse{Epoch: c.epoch}, nil
}

func (n *fakeNode) RebalanceStatus(context.Context, *ringkvv1.RebalanceStatusRequest) (*ringkvv1.RebalanceStatusResponse, error) {
	c := n.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rebalanceCalls++
	if c.rebalanceErr != nil {
		return nil, c.rebalanceErr
	}
	clone := func(ms []*ringkvv1.Move) []*ringkvv1.Move {
		out := make([]*ringkvv1.Move, len(ms))
		for i, m := range ms {
			out[i] = proto.CloneOf(m)
		}
		return out
	}
	resp := &ringkvv1.RebalanceStatusResponse{
		Epoch:               c.epoch,
		Pending:             clone(c.pending),
		Active:              clone(c.active),
		Finished:            clone(c.finished),
		FinishedSinceChange: c.finishedSince,
		BytesSinceChange:    c.bytesSince,
		MaxMovesPerNode:     fakeMaxMoves,
	}
	c.tickLocked()
	return resp, nil
}

// Scan serves the keys with the prefix in key order, limit (default 1000)
// a page; the page token is the last key served.
func (n *fakeNode) Scan(ctx context.Context, req *ringkvv1.ScanRequest) (*ringkvv1.ScanResponse, error) {
	n.c.mu.Lock()
	gate := n.c.scanGate
	n.c.mu.Unlock()
	if gate != nil && len(req.GetPageToken()) > 0 {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	after := req.GetStartAfter()
	if len(req.GetPageToken()) > 0 {
		after = req.GetPageToken()
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = 1000
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	var keys []string
	for k := range n.c.data {
		if strings.HasPrefix(k, string(req.GetPrefix())) && k > string(after) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	resp := &ringkvv1.ScanResponse{}
	for i, k := range keys {
		if i == limit {
			resp.NextPageToken = []byte(keys[i-1])
			break
		}
		v := n.c.data[k]
		kv := &ringkvv1.KeyValue{Key: []byte(k), Found: true, Version: v.version, CreateVersion: v.create}
		if !req.GetKeysOnly() {
			kv.Value = v.data
		}
		resp.Kvs = append(resp.Kvs, kv)
	}
	return resp, nil
}
