package router

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ringkv/ringkv/cluster"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/shard"
)

// fakeMap is a MapSource returning a fixed state.
type fakeMap struct{ st *cluster.State }

func (m fakeMap) Current() *cluster.State { return m.st }

// fakeReplica is a scripted Replica. Its zero value leads, has no keys and
// accepts no proposals (Propose must be scripted).
type fakeReplica struct {
	mu         sync.Mutex
	barrierErr error // returned by ReadBarrier
	proposeOut any   // returned by Propose, with proposeErr
	proposeErr error // returned by Propose
	leader     replication.LeaderInfo
	data       map[string]shard.Value
	barriers   int      // ReadBarrier calls
	proposals  [][]byte // Propose commands
}

func (f *fakeReplica) Propose(_ context.Context, cmd []byte) (any, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proposals = append(f.proposals, cmd)
	var index uint64
	if r, ok := f.proposeOut.(shard.Result); ok {
		index = r.Index
	}
	return f.proposeOut, index, f.proposeErr
}

func (f *fakeReplica) ReadBarrier(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.barriers++
	return f.barrierErr
}

func (f *fakeReplica) Leader() replication.LeaderInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

func (f *fakeReplica) Get(key []byte) (shard.Value, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[string(key)]
	return v, ok
}

// Scan returns the fake's keys in order, like shard.StateMachine.Scan.
func (f *fakeReplica) Scan(prefix, after []byte, limit int, keysOnly bool) ([]shard.KeyValue, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for k := range f.data {
		if strings.HasPrefix(k, string(prefix)) && (after == nil || k > string(after)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	var out []shard.KeyValue
	for _, k := range keys {
		v := f.data[k]
		if keysOnly {
			v.Data = nil
		}
		out = append(out, shard.KeyValue{Key: []byte(k), Value: v})
	}
	return out, more
}

// The fake holds no event history: watches are tested on real clusters.
func (f *fakeReplica) AppliedIndex() uint64 { return 0 }
func (f *fakeReplica) Events(uint64, func([]byte) bool, int) ([]shard.Event, uint64, error) {
	return nil, 0, nil
}
func (f *fakeReplica) WaitApplied(ctx context.Context, _ uint64) error {
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeReplica) counts() (barriers, proposals int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.barriers, len(f.proposals)
}

func (f *fakeReplica) lastProposal(t *testing.T) shard.Command {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.proposals) == 0 {
		t.Fatal("no proposal reached the local replica")
	}
	c, err := shard.DecodeCommand(f.proposals[len(f.proposals)-1])
	if err != nil {
		t.Fatalf("the router proposed an undecodable command: %v", err)
	}
	return c
}

// fakeReplicas is the set of replicas this node hosts.
type fakeReplicas map[shard.ID]*fakeReplica

func (r fakeReplicas) Replica(id shard.ID) (Replica, bool) {
	rep, ok := r[id]
	if !ok {
		return nil, false
	}
	return rep, true
}

// leaderReplica returns a replica that leads as node self.
func leaderReplica(self string) *fakeReplica {
	return &fakeReplica{
		leader: replication.LeaderInfo{ID: self, Addr: addr(self), Term: 3, Self: true},
		data:   map[string]shard.Value{},
	}
}

// followerReplica returns a replica that follows leader: its barrier and
// proposals fail with a NotLeaderError naming leader, wrapped as
// replication.Group wraps it.
func followerReplica(group shard.ID, leader string) *fakeReplica {
	nl := &replication.NotLeaderError{Group: uint64(group), LeaderID: leader, LeaderAddr: addr(leader)}
	return &fakeReplica{
		barrierErr: fmt.Errorf("read: %w", nl),
		proposeErr: nl,
		leader:     replication.LeaderInfo{ID: leader, Addr: addr(leader), Term: 3},
		data:       map[string]shard.Value{},
	}
}

// fwdCall is one call a Router made to its Forwarder.
type fwdCall struct {
	op    string // "get", "put" or "delete"
	addr  string
	key   string
	value string
	req   shard.RequestID
}

// fwdReply is a scripted answer of the node at one address.
type fwdReply struct {
	leader  string
	err     error
	value   shard.Value // Get
	version uint64      // Put, Delete
	existed bool        // Delete
	txn     TxnResult   // Txn
	items   []GetItem   // MultiGet
	page    ScanPage    // ScanShard
}

// fakeForwarder records calls and answers from a script per address. An
// address without a script fails the test and is unreachable.
type fakeForwarder struct {
	t  *testing.T
	mu struct {
		sync.Mutex
		replies map[string]fwdReply
		calls   []fwdCall
	}
}

func newFakeForwarder(t *testing.T) *fakeForwarder {
	f := &fakeForwarder{t: t}
	f.mu.replies = map[string]fwdReply{}
	return f
}

// set scripts the answer of the node at address a.
func (f *fakeForwarder) set(a string, r fwdReply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.replies[a] = r
}

func (f *fakeForwarder) reply(c fwdCall) fwdReply {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.calls = append(f.mu.calls, c)
	r, ok := f.mu.replies[c.addr]
	if !ok {
		f.t.Errorf("unexpected %s forwarded to %q", c.op, c.addr)
		return fwdReply{err: fmt.Errorf("%w: %s: not scripted", ErrUnreachable, c.addr)}
	}
	return r
}

// calls returns the calls so far and forgets them.
func (f *fakeForwarder) takeCalls() []fwdCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.mu.calls
	f.mu.calls = nil
	return c
}

// addrs returns the addresses of the calls so far and forgets them.
func (f *fakeForwarder) takeAddrs() []string {
	var out []string
	for _, c := range f.takeCalls() {
		out = append(out, c.addr)
	}
	return out
}

func (f *fakeForwarder) Get(_ context.Context, a string, key []byte) (shard.Value, string, error) {
	r := f.reply(fwdCall{op: "get", addr: a, key: string(key)})
	return r.value, r.leader, r.err
}

func (f *fakeForwarder) Put(_ context.Context, a string, key, value []byte, req shard.RequestID) (uint64, string, error) {
	r := f.reply(fwdCall{op: "put", addr: a, key: string(key), value: string(value), req: req})
	return r.version, r.leader, r.err
}

func (f *fakeForwarder) Delete(_ context.Context, a string, key []byte, req shard.RequestID) (bool, uint64, string, error) {
	r := f.reply(fwdCall{op: "delete", addr: a, key: string(key), req: req})
	return r.existed, r.version, r.leader, r.err
}

// Scripted answers.
func served(leader string) fwdReply { return fwdReply{leader: leader} }

func unreachable(a string) fwdReply {
	return fwdReply{err: fmt.Errorf("%w: %s: connection refused", ErrUnreachable, a)}
}

func notLeader(hint string) fwdReply {
	return fwdReply{err: &replication.NotLeaderError{LeaderID: hint}}
}

// addr is the address of node id in every test cluster.
func addr(id string) string {
	if id == "" {
		return ""
	}
	return "addr-" + id
}

// testCluster returns an initialized state with the given members and, for
// each shard, its replicas in placement order.
func testCluster(members []string, shards [][]string) *cluster.State {
	st := &cluster.State{
		Epoch:        1,
		ShardCount:   uint32(len(shards)),
		Replicas:     len(shards[0]),
		VirtualNodes: 128,
		Shards:       shards,
	}
	for _, m := range members {
		st.Members = append(st.Members, cluster.Member{ID: m, Addr: addr(m), State: cluster.MemberActive})
	}
	if err := st.Validate(); err != nil {
		panic(err)
	}
	return st
}

// keyFor returns a key whose shard among count shards is sid, computed with
// shard.Of, and fails the test if none of the first candidates qualifies.
func keyFor(t *testing.T, sid shard.ID, count uint32) []byte {
	t.Helper()
	for i := range 10000 {
		k := []byte(fmt.Sprintf("key-%d", i))
		if shard.Of(k, count) == sid {
			return k
		}
	}
	t.Fatalf("no key found for shard %d of %d", sid, count)
	return nil
}

func (f *fakeForwarder) Txn(_ context.Context, a string, t Txn, req shard.RequestID) (TxnResult, string, error) {
	r := f.reply(fwdCall{op: "txn", addr: a, key: string(t.keys()[0]), req: req})
	return r.txn, r.leader, r.err
}

func (f *fakeForwarder) MultiGet(_ context.Context, a string, keys [][]byte) ([]GetItem, string, error) {
	r := f.reply(fwdCall{op: "multiget", addr: a, key: string(keys[0])})
	return r.items, r.leader, r.err
}

func (f *fakeForwarder) ScanShard(_ context.Context, a string, sid shard.ID, q ScanQuery) (ScanPage, string, error) {
	r := f.reply(fwdCall{op: "scanshard", addr: a, key: string(q.After)})
	return r.page, r.leader, r.err
}

func (f *fakeForwarder) WatchShard(ctx context.Context, a string, sid shard.ID, q WatchQuery, after uint64, fromNow bool, recv func(WatchBatch) error) error {
	r := f.reply(fwdCall{op: "watchshard", addr: a, key: string(q.Key)})
	return r.err
}
