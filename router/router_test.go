package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/cluster"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/shard"
)

// The standard test cluster: five members, four shards of three replicas.
// n4 and n5 hold no replica of any shard.
var (
	members5 = []string{"n1", "n2", "n3", "n4", "n5"}
	shards4  = [][]string{
		{"n1", "n2", "n3"},
		{"n2", "n3", "n1"},
		{"n3", "n1", "n2"},
		{"n2", "n1", "n3"},
	}
)

var fixedNow = time.Unix(1700000000, 123)

// newTestRouter returns a router on node self with the given local
// replicas, a recording forwarder, and a fixed clock.
func newTestRouter(t *testing.T, cfg Config, st *cluster.State, local fakeReplicas) (*Router, *fakeForwarder) {
	t.Helper()
	fwd := newFakeForwarder(t)
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return fixedNow }
	}
	return New(cfg, fakeMap{st}, local, fwd), fwd
}

func TestShardOf(t *testing.T) {
	st := testCluster(members5, shards4)
	r, _ := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{})
	for _, k := range []string{"a", "b", "user:42", "{tag}.x", "{tag}.y"} {
		got, err := r.ShardOf([]byte(k))
		if want := shard.Of([]byte(k), st.ShardCount); err != nil || got != want {
			t.Errorf("ShardOf(%q) = %d, %v; want %d, nil", k, got, err, want)
		}
	}
}

func TestNotReady(t *testing.T) {
	for _, st := range []*cluster.State{nil, {}} {
		r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: leaderReplica("n1")})
		ctx := context.Background()
		if _, err := r.ShardOf([]byte("k")); !errors.Is(err, ErrNotReady) {
			t.Errorf("state %v: ShardOf = %v; want ErrNotReady", st, err)
		}
		if _, err := r.Get(ctx, []byte("k"), false); !errors.Is(err, ErrNotReady) {
			t.Errorf("state %v: Get = %v; want ErrNotReady", st, err)
		}
		if _, err := r.Put(ctx, []byte("k"), []byte("v"), shard.RequestID{}, false); !errors.Is(err, ErrNotReady) {
			t.Errorf("state %v: Put = %v; want ErrNotReady", st, err)
		}
		if _, err := r.Delete(ctx, []byte("k"), shard.RequestID{}, true); !errors.Is(err, ErrNotReady) {
			t.Errorf("state %v: Delete = %v; want ErrNotReady", st, err)
		}
		if calls := fwd.takeCalls(); len(calls) != 0 {
			t.Errorf("state %v: forwarded %v before metadata was loaded", st, calls)
		}
	}
}

func TestLocalLeaderServesGet(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 2, st.ShardCount)
	rep := leaderReplica("n1")
	want := shard.Value{Data: []byte("v1"), Version: 12, CreateVersion: 10}
	rep.data[string(key)] = want
	for _, forwarded := range []bool{false, true} {
		r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{2: rep})
		res, err := r.Get(context.Background(), key, forwarded)
		if err != nil {
			t.Fatalf("forwarded=%v: Get(%q) = %v", forwarded, key, err)
		}
		if string(res.Value.Data) != "v1" || res.Value.Version != 12 || res.Value.CreateVersion != 10 {
			t.Errorf("forwarded=%v: Get(%q) = %+v; want %+v", forwarded, key, res.Value, want)
		}
		if res.Leader != "n1" {
			t.Errorf("forwarded=%v: Get(%q).Leader = %q; want %q", forwarded, key, res.Leader, "n1")
		}
		if calls := fwd.takeCalls(); len(calls) != 0 {
			t.Errorf("forwarded=%v: the leader forwarded %v", forwarded, calls)
		}
		if got := r.Stats().Forwarded; got != 0 {
			t.Errorf("forwarded=%v: Stats().Forwarded = %d; want 0", forwarded, got)
		}
	}
	if barriers, _ := rep.counts(); barriers != 2 {
		t.Errorf("ReadBarrier called %d times for 2 reads; want 2", barriers)
	}
}

func TestLocalLeaderServesPut(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount)
	rep := leaderReplica("n1")
	rep.proposeOut = shard.Result{Index: 41, Version: 41, Existed: true}
	r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep})
	req := shard.RequestID{ClientID: []byte("client-a"), Seq: 7, AckedBelow: 5}

	res, err := r.Put(context.Background(), key, []byte("value"), req, false)
	if err != nil {
		t.Fatalf("Put(%q) = %v", key, err)
	}
	if res.Version != 41 || res.Leader != "n1" {
		t.Errorf("Put(%q) = %+v; want Version 41, Leader %q", key, res, "n1")
	}
	if calls := fwd.takeCalls(); len(calls) != 0 {
		t.Errorf("the leader forwarded %v", calls)
	}
	c := rep.lastProposal(t)
	if c.Op != shard.OpPut || string(c.Key) != string(key) || string(c.Value) != "value" {
		t.Errorf("proposed %v %q=%q; want Put %q=%q", c.Op, c.Key, c.Value, key, "value")
	}
	if string(c.Request.ClientID) != "client-a" || c.Request.Seq != 7 || c.Request.AckedBelow != 5 {
		t.Errorf("proposed request ID %+v; want %+v", c.Request, req)
	}
	if c.ProposedAt != fixedNow.UnixNano() {
		t.Errorf("proposed at %d; want Config.Now() = %d", c.ProposedAt, fixedNow.UnixNano())
	}
	if barriers, _ := rep.counts(); barriers != 0 {
		t.Errorf("a write called ReadBarrier %d times; want 0", barriers)
	}
}

func TestLocalLeaderServesDelete(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount)
	tests := []struct {
		name        string
		out         shard.Result
		wantVersion uint64
		wantExisted bool
	}{
		// A delete's version is its own log index, not the removed value's.
		{"existing key", shard.Result{Index: 50, Version: 33, Existed: true, Deleted: true}, 50, true},
		{"missing key", shard.Result{Index: 51}, 51, false},
		{"duplicate", shard.Result{Index: 44, Version: 30, Existed: true, Deleted: true, Duplicate: true}, 44, true},
	}
	for _, tt := range tests {
		rep := leaderReplica("n1")
		rep.proposeOut = tt.out
		r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep})
		req := shard.RequestID{ClientID: []byte("c"), Seq: 3}
		res, err := r.Delete(context.Background(), key, req, false)
		if err != nil {
			t.Fatalf("%s: Delete(%q) = %v", tt.name, key, err)
		}
		want := WriteResult{Version: tt.wantVersion, Existed: tt.wantExisted, Succeeded: true, Leader: "n1"}
		if res != want {
			t.Errorf("%s: Delete(%q) with apply result %+v = %+v; want %+v", tt.name, key, tt.out, res, want)
		}
		if calls := fwd.takeCalls(); len(calls) != 0 {
			t.Errorf("%s: the leader forwarded %v", tt.name, calls)
		}
		c := rep.lastProposal(t)
		if c.Op != shard.OpDelete || string(c.Key) != string(key) || c.Request.Seq != 3 {
			t.Errorf("%s: proposed %+v; want Delete of %q with seq 3", tt.name, c, key)
		}
	}
}

// Errors of the local leader are returned as they are: the request is not
// retried elsewhere.
func TestLocalErrorsReturnAtOnce(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 1, st.ShardCount)
	ctx := context.Background()
	staleErr := fmt.Errorf("client 63: seq 3 below 5: %w", shard.ErrStaleRequest)
	tests := []struct {
		name  string
		setup func(*fakeReplica)
		call  func(*Router) error
		want  error
	}{
		{"put stale request", func(f *fakeReplica) { f.proposeOut = shard.Result{Index: 9, Err: staleErr} },
			func(r *Router) error {
				_, err := r.Put(ctx, key, []byte("v"), shard.RequestID{ClientID: []byte("c"), Seq: 3}, false)
				return err
			}, shard.ErrStaleRequest},
		{"delete stale request", func(f *fakeReplica) { f.proposeOut = shard.Result{Index: 9, Err: staleErr} },
			func(r *Router) error {
				_, err := r.Delete(ctx, key, shard.RequestID{ClientID: []byte("c"), Seq: 3}, false)
				return err
			}, shard.ErrStaleRequest},
		{"put outcome unknown", func(f *fakeReplica) {
			f.proposeErr = fmt.Errorf("group 1: propose: %w: %w", replication.ErrOutcomeUnknown, context.DeadlineExceeded)
		}, func(r *Router) error {
			_, err := r.Put(ctx, key, []byte("v"), shard.RequestID{}, false)
			return err
		}, replication.ErrOutcomeUnknown},
		{"put shut down", func(f *fakeReplica) { f.proposeErr = replication.ErrShutdown },
			func(r *Router) error {
				_, err := r.Put(ctx, key, []byte("v"), shard.RequestID{}, false)
				return err
			}, replication.ErrShutdown},
		{"get missing key", func(*fakeReplica) {},
			func(r *Router) error {
				_, err := r.Get(ctx, key, false)
				return err
			}, ErrNotFound},
		{"get barrier deadline", func(f *fakeReplica) {
			f.barrierErr = fmt.Errorf("group 1: read: %w", context.DeadlineExceeded)
		}, func(r *Router) error {
			_, err := r.Get(ctx, key, false)
			return err
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		rep := leaderReplica("n2")
		tt.setup(rep)
		r, fwd := newTestRouter(t, Config{NodeID: "n2"}, st, fakeReplicas{1: rep})
		err := tt.call(r)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v; want %v", tt.name, err, tt.want)
		}
		if errors.Is(err, ErrNoLeader) {
			t.Errorf("%s: err = %v; want no ErrNoLeader for a local error", tt.name, err)
		}
		if calls := fwd.takeCalls(); len(calls) != 0 {
			t.Errorf("%s: forwarded %v after a local error", tt.name, calls)
		}
	}
}

// A missing key is an answer the leader served, and "every answer carries
// ringkv-leader" (docs/architecture.md, Routing), so the result names the
// leader as for a hit.
func TestNotFoundNamesServingLeader(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount)
	r, _ := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: leaderReplica("n1")})
	res, err := r.Get(context.Background(), key, false)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%q) = %v; want ErrNotFound", key, err)
	}
	if res.Leader != "n1" {
		t.Errorf("Get(%q) of a missing key: Leader = %q; want %q", key, res.Leader, "n1")
	}
}

// shard.Command.Validate's contract: "Proposers call it to refuse a
// request before it reaches the log". The router is the proposer.
func TestInvalidCommandNeverReachesTheLog(t *testing.T) {
	st := testCluster(members5, shards4)
	ctx := context.Background()
	long := bytes.Repeat([]byte("k"), shard.MaxKeySize+1)
	for _, key := range [][]byte{nil, long} {
		rep := leaderReplica("n1")
		rep.proposeOut = shard.Result{Index: 5, Err: fmt.Errorf("index 5: %w", shard.ErrBadCommand)}
		// Host every shard so the key is served locally whatever its shard.
		r, _ := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep, 1: rep, 2: rep, 3: rep})
		_, err := r.Put(ctx, key, []byte("v"), shard.RequestID{}, false)
		if !errors.Is(err, shard.ErrBadCommand) {
			t.Errorf("Put(key of %d bytes) = %v; want shard.ErrBadCommand", len(key), err)
		}
		_, err = r.Delete(ctx, key, shard.RequestID{}, false)
		if !errors.Is(err, shard.ErrBadCommand) {
			t.Errorf("Delete(key of %d bytes) = %v; want shard.ErrBadCommand", len(key), err)
		}
		if _, proposals := rep.counts(); proposals != 0 {
			t.Errorf("key of %d bytes: %d invalid commands proposed; want 0", len(key), proposals)
		}
	}
}

func TestLocalUnexpectedApplyResult(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 1, st.ShardCount)
	rep := leaderReplica("n2")
	rep.proposeOut = "not a shard.Result"
	r, _ := newTestRouter(t, Config{NodeID: "n2"}, st, fakeReplicas{1: rep})
	if _, err := r.Put(context.Background(), key, []byte("v"), shard.RequestID{}, false); err == nil {
		t.Errorf("Put with apply result %q = nil error; want an error", rep.proposeOut)
	}
}

func TestLocalFollowerForwardsToHint(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount) // replicas n1, n2, n3
	ctx := context.Background()
	req := shard.RequestID{ClientID: []byte("c1"), Seq: 4, AckedBelow: 2}

	t.Run("get", func(t *testing.T) {
		rep := followerReplica(0, "n3")
		r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep})
		fwd.set("addr-n3", fwdReply{leader: "n3", value: shard.Value{Data: []byte("remote"), Version: 8, CreateVersion: 2}})
		res, err := r.Get(ctx, key, false)
		if err != nil {
			t.Fatalf("Get(%q) = %v", key, err)
		}
		if string(res.Value.Data) != "remote" || res.Value.Version != 8 || res.Value.CreateVersion != 2 || res.Leader != "n3" {
			t.Errorf("Get(%q) = {%q %d %d} from %q; want {%q 8 2} from %q",
				key, res.Value.Data, res.Value.Version, res.Value.CreateVersion, res.Leader, "remote", "n3")
		}
		want := []fwdCall{{op: "get", addr: "addr-n3", key: string(key)}}
		if calls := fwd.takeCalls(); !slices.EqualFunc(calls, want, eqCall) {
			t.Errorf("forwards = %+v; want %+v", calls, want)
		}
		if got := r.Stats().Forwarded; got != 1 {
			t.Errorf("Stats().Forwarded = %d; want 1", got)
		}
	})

	t.Run("put", func(t *testing.T) {
		rep := followerReplica(0, "n3")
		r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep})
		fwd.set("addr-n3", fwdReply{leader: "n3", version: 77})
		res, err := r.Put(ctx, key, []byte("val"), req, false)
		if err != nil {
			t.Fatalf("Put(%q) = %v", key, err)
		}
		if want := (WriteResult{Version: 77, Succeeded: true, Leader: "n3"}); res != want {
			t.Errorf("Put(%q) = %+v; want %+v", key, res, want)
		}
		want := []fwdCall{{op: "put", addr: "addr-n3", key: string(key), value: "val", req: req}}
		if calls := fwd.takeCalls(); !slices.EqualFunc(calls, want, eqCall) {
			t.Errorf("forwards = %+v; want %+v", calls, want)
		}
		if _, proposals := rep.counts(); proposals != 1 {
			t.Errorf("local replica saw %d proposals; want 1 (refused as follower)", proposals)
		}
	})

	t.Run("delete", func(t *testing.T) {
		rep := followerReplica(0, "n3")
		r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep})
		fwd.set("addr-n3", fwdReply{leader: "n3", version: 78, existed: true})
		res, err := r.Delete(ctx, key, req, false)
		if err != nil {
			t.Fatalf("Delete(%q) = %v", key, err)
		}
		if want := (WriteResult{Version: 78, Existed: true, Succeeded: true, Leader: "n3"}); res != want {
			t.Errorf("Delete(%q) = %+v; want %+v", key, res, want)
		}
		want := []fwdCall{{op: "delete", addr: "addr-n3", key: string(key), req: req}}
		if calls := fwd.takeCalls(); !slices.EqualFunc(calls, want, eqCall) {
			t.Errorf("forwards = %+v; want %+v", calls, want)
		}
	})
}

func eqCall(a, b fwdCall) bool {
	return a.op == b.op && a.addr == b.addr && a.key == b.key && a.value == b.value &&
		string(a.req.ClientID) == string(b.req.ClientID) && a.req.Seq == b.req.Seq && a.req.AckedBelow == b.req.AckedBelow
}

// A follower without a leader hint tries the other replicas in placement
// order, skipping itself.
func TestLocalFollowerWithoutHint(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 2, st.ShardCount) // replicas n3, n1, n2
	rep := followerReplica(2, "")
	r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{2: rep})
	fwd.set("addr-n3", unreachable("addr-n3"))
	fwd.set("addr-n2", served("n2"))
	res, err := r.Get(context.Background(), key, false)
	if err != nil {
		t.Fatalf("Get(%q) = %v", key, err)
	}
	if res.Leader != "n2" {
		t.Errorf("Get(%q).Leader = %q; want %q", key, res.Leader, "n2")
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n3", "addr-n2"}; !slices.Equal(got, want) {
		t.Errorf("forwarded to %q; want %q", got, want)
	}
}

// A node that holds no replica tries the last leader it saw, then the
// shard's replicas in placement order.
func TestNonReplicaForwardOrderAndLeaderCache(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 3, st.ShardCount) // replicas n2, n1, n3
	ctx := context.Background()
	r, fwd := newTestRouter(t, Config{NodeID: "n4"}, st, fakeReplicas{})

	// Nothing cached: placement order, stopping at the first that serves.
	fwd.set("addr-n2", unreachable("addr-n2"))
	fwd.set("addr-n1", served("n1"))
	fwd.set("addr-n3", unreachable("addr-n3"))
	res, err := r.Put(ctx, key, []byte("v"), shard.RequestID{}, false)
	if err != nil || res.Leader != "n1" {
		t.Fatalf("Put(%q) = %+v, %v; want Leader n1", key, res, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n2", "addr-n1"}; !slices.Equal(got, want) {
		t.Errorf("first request forwarded to %q; want %q", got, want)
	}
	if got := r.KnownLeader(3); got != "n1" {
		t.Errorf("KnownLeader(3) = %q; want %q", got, "n1")
	}

	// The cached leader goes first.
	res2, err := r.Get(ctx, key, false)
	if err != nil || res2.Leader != "n1" {
		t.Fatalf("Get(%q) = %+v, %v; want Leader n1", key, res2, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n1"}; !slices.Equal(got, want) {
		t.Errorf("second request forwarded to %q; want %q", got, want)
	}

	// The cached leader is gone: the others in placement order.
	fwd.set("addr-n1", unreachable("addr-n1"))
	fwd.set("addr-n3", served("n3"))
	res3, err := r.Delete(ctx, key, shard.RequestID{}, false)
	if err != nil || res3.Leader != "n3" {
		t.Fatalf("Delete(%q) = %+v, %v; want Leader n3", key, res3, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n1", "addr-n2", "addr-n3"}; !slices.Equal(got, want) {
		t.Errorf("third request forwarded to %q; want %q", got, want)
	}
	if got := r.KnownLeader(3); got != "n3" {
		t.Errorf("KnownLeader(3) = %q; want %q", got, "n3")
	}
	if got := r.Stats().Forwarded; got != 6 {
		t.Errorf("Stats().Forwarded = %d; want 6 (one per forward)", got)
	}
	// Other shards have no cached leader.
	if got := r.KnownLeader(0); got != "" {
		t.Errorf("KnownLeader(0) = %q; want \"\"", got)
	}
}

func TestFollowsNotLeaderHints(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount) // replicas n1, n2, n3
	r, fwd := newTestRouter(t, Config{NodeID: "n5"}, st, fakeReplicas{})
	fwd.set("addr-n1", notLeader("n3"))
	fwd.set("addr-n3", served("n3"))
	res, err := r.Get(context.Background(), key, false)
	if err != nil {
		t.Fatalf("Get(%q) = %v", key, err)
	}
	if res.Leader != "n3" {
		t.Errorf("Get(%q).Leader = %q; want %q (the node that served)", key, res.Leader, "n3")
	}
	// n3 is tried before n2 because n1 named it.
	if got, want := fwd.takeAddrs(), []string{"addr-n1", "addr-n3"}; !slices.Equal(got, want) {
		t.Errorf("forwarded to %q; want %q", got, want)
	}

	// A chain of hints: n3 (cached) names n2, n2 names n1, n1 serves.
	fwd.set("addr-n3", notLeader("n2"))
	fwd.set("addr-n2", notLeader("n1"))
	fwd.set("addr-n1", served("n1"))
	res, err = r.Get(context.Background(), key, false)
	if err != nil || res.Leader != "n1" {
		t.Fatalf("Get(%q) = %+v, %v; want Leader n1", key, res, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n3", "addr-n2", "addr-n1"}; !slices.Equal(got, want) {
		t.Errorf("forwarded to %q; want %q", got, want)
	}
}

// Fresh hints outrank the cached leader: first the local replica's hint,
// then a hint from a node tried on the way, and only then the last leader
// seen.
func TestHintsBeforeCachedLeader(t *testing.T) {
	st := testCluster(members5, [][]string{members5}) // one shard on all five
	key := []byte("k")
	ctx := context.Background()
	rep := followerReplica(0, "")
	r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep})
	setHint := func(h string) {
		rep.mu.Lock()
		rep.barrierErr = fmt.Errorf("read: %w", &replication.NotLeaderError{LeaderID: h})
		rep.mu.Unlock()
	}

	// No hint: the replicas in order, skipping this node; n2 serves.
	fwd.set("addr-n2", served("n2"))
	if res, err := r.Get(ctx, key, false); err != nil || res.Leader != "n2" {
		t.Fatalf("Get(%q) = %+v, %v; want Leader n2", key, res, err)
	}
	fwd.takeCalls()

	// The local replica names n3: n3 goes before the cached n2.
	setHint("n3")
	fwd.set("addr-n3", served("n3"))
	if res, err := r.Get(ctx, key, false); err != nil || res.Leader != "n3" {
		t.Fatalf("Get(%q) = %+v, %v; want Leader n3", key, res, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n3"}; !slices.Equal(got, want) {
		t.Errorf("with a local hint, forwarded to %q; want %q", got, want)
	}

	// The local replica names n4 and n4 names n5, while n3 is cached: the
	// remote hint goes before the cached leader.
	setHint("n4")
	fwd.set("addr-n4", notLeader("n5"))
	fwd.set("addr-n5", served("n5"))
	if res, err := r.Get(ctx, key, false); err != nil || res.Leader != "n5" {
		t.Fatalf("Get(%q) = %+v, %v; want Leader n5", key, res, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n4", "addr-n5"}; !slices.Equal(got, want) {
		t.Errorf("with a remote hint, forwarded to %q; want %q", got, want)
	}
}

// A hint naming a node already tried, or no node, falls back to the
// remaining replicas; a node is never tried twice for one request.
func TestStaleHintsNeverRetryANode(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount) // replicas n1, n2, n3
	r, fwd := newTestRouter(t, Config{NodeID: "n4"}, st, fakeReplicas{})
	fwd.set("addr-n1", notLeader("n2"))
	fwd.set("addr-n2", notLeader("n1")) // tried already
	fwd.set("addr-n3", notLeader(""))
	_, err := r.Get(context.Background(), key, false)
	if !errors.Is(err, ErrNoLeader) || !errors.Is(err, replication.ErrNotLeader) {
		t.Errorf("Get(%q) = %v; want ErrNoLeader wrapping the last NotLeaderError", key, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n1", "addr-n2", "addr-n3"}; !slices.Equal(got, want) {
		t.Errorf("forwarded to %q; want %q", got, want)
	}
}

// A hint naming a node outside the membership is skipped without a call.
func TestHintToUnknownNodeIsSkipped(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount) // replicas n1, n2, n3
	r, fwd := newTestRouter(t, Config{NodeID: "n4"}, st, fakeReplicas{})
	fwd.set("addr-n1", notLeader("n9"))
	fwd.set("addr-n2", served("n2"))
	res, err := r.Get(context.Background(), key, false)
	if err != nil || res.Leader != "n2" {
		t.Fatalf("Get(%q) = %+v, %v; want Leader n2", key, res, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n1", "addr-n2"}; !slices.Equal(got, want) {
		t.Errorf("forwarded to %q; want %q", got, want)
	}
}

func TestAllUnreachable(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 1, st.ShardCount) // replicas n2, n3, n1
	r, fwd := newTestRouter(t, Config{NodeID: "n5"}, st, fakeReplicas{})
	for _, n := range []string{"n1", "n2", "n3"} {
		fwd.set(addr(n), unreachable(addr(n)))
	}
	_, err := r.Put(context.Background(), key, []byte("v"), shard.RequestID{}, false)
	if !errors.Is(err, ErrNoLeader) || !errors.Is(err, ErrUnreachable) {
		t.Errorf("Put(%q) = %v; want ErrNoLeader wrapping ErrUnreachable", key, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n2", "addr-n3", "addr-n1"}; !slices.Equal(got, want) {
		t.Errorf("forwarded to %q; want %q", got, want)
	}
	if got := r.KnownLeader(1); got != "" {
		t.Errorf("KnownLeader(1) = %q after no node served; want \"\"", got)
	}
}

func TestMaxHops(t *testing.T) {
	members := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7"}
	shards := [][]string{{"n1", "n2", "n3", "n4", "n5", "n6"}}
	st := testCluster(members, shards)
	key := []byte("any key") // one shard
	tests := []struct {
		maxHops   int
		wantAddrs []string
	}{
		{0, []string{"addr-n1", "addr-n2", "addr-n3", "addr-n4"}}, // default 4
		{1, []string{"addr-n1"}},
		{2, []string{"addr-n1", "addr-n2"}},
		{6, []string{"addr-n1", "addr-n2", "addr-n3", "addr-n4", "addr-n5", "addr-n6"}},
		{10, []string{"addr-n1", "addr-n2", "addr-n3", "addr-n4", "addr-n5", "addr-n6"}},
	}
	for _, tt := range tests {
		for _, via := range []string{"unreachable", "hints"} {
			r, fwd := newTestRouter(t, Config{NodeID: "n7", MaxHops: tt.maxHops}, st, fakeReplicas{})
			for i, n := range shards[0] {
				if via == "unreachable" {
					fwd.set(addr(n), unreachable(addr(n)))
				} else {
					// Each replica names the next as leader.
					fwd.set(addr(n), notLeader(shards[0][(i+1)%len(shards[0])]))
				}
			}
			_, err := r.Get(context.Background(), key, false)
			if !errors.Is(err, ErrNoLeader) {
				t.Errorf("MaxHops %d, %s: Get = %v; want ErrNoLeader", tt.maxHops, via, err)
			}
			if got := fwd.takeAddrs(); !slices.Equal(got, tt.wantAddrs) {
				t.Errorf("MaxHops %d, %s: forwarded to %q; want %q", tt.maxHops, via, got, tt.wantAddrs)
			}
			if got := r.Stats().Forwarded; got != uint64(len(tt.wantAddrs)) {
				t.Errorf("MaxHops %d, %s: Stats().Forwarded = %d; want %d", tt.maxHops, via, got, len(tt.wantAddrs))
			}
		}
	}
}

// A forwarded request is served locally or refused with the leader this
// node knows; it is never forwarded again.
func TestForwardedRequestIsNeverForwarded(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount) // replicas n1, n2, n3
	ctx := context.Background()

	checkRefusal := func(t *testing.T, err error, wantLeader string) {
		t.Helper()
		var nl *replication.NotLeaderError
		if !errors.As(err, &nl) {
			t.Fatalf("err = %v; want a *replication.NotLeaderError", err)
		}
		if nl.LeaderID != wantLeader {
			t.Errorf("NotLeaderError.LeaderID = %q; want %q", nl.LeaderID, wantLeader)
		}
		if errors.Is(err, ErrNoLeader) {
			t.Errorf("err = %v; a refused forwarded request must not be ErrNoLeader", err)
		}
	}

	t.Run("local follower", func(t *testing.T) {
		rep := followerReplica(0, "n3")
		r, fwd := newTestRouter(t, Config{NodeID: "n2"}, st, fakeReplicas{0: rep})
		_, err := r.Get(ctx, key, true)
		checkRefusal(t, err, "n3")
		_, err = r.Put(ctx, key, []byte("v"), shard.RequestID{}, true)
		checkRefusal(t, err, "n3")
		_, err = r.Delete(ctx, key, shard.RequestID{}, true)
		checkRefusal(t, err, "n3")
		if calls := fwd.takeCalls(); len(calls) != 0 {
			t.Errorf("forwarded a forwarded request: %+v", calls)
		}
		if got := r.Stats().Forwarded; got != 0 {
			t.Errorf("Stats().Forwarded = %d; want 0", got)
		}
	})

	t.Run("local follower without hint", func(t *testing.T) {
		rep := followerReplica(0, "")
		r, fwd := newTestRouter(t, Config{NodeID: "n2"}, st, fakeReplicas{0: rep})
		_, err := r.Get(ctx, key, true)
		checkRefusal(t, err, "")
		if calls := fwd.takeCalls(); len(calls) != 0 {
			t.Errorf("forwarded a forwarded request: %+v", calls)
		}
	})

	t.Run("no replica, nothing known", func(t *testing.T) {
		r, fwd := newTestRouter(t, Config{NodeID: "n4"}, st, fakeReplicas{})
		_, err := r.Put(ctx, key, []byte("v"), shard.RequestID{}, true)
		checkRefusal(t, err, "")
		var nl *replication.NotLeaderError
		if errors.As(err, &nl) && nl.Group != 0 {
			t.Errorf("NotLeaderError.Group = %d; want 0", nl.Group)
		}
		if calls := fwd.takeCalls(); len(calls) != 0 {
			t.Errorf("forwarded a forwarded request: %+v", calls)
		}
	})

	t.Run("no replica, leader cached", func(t *testing.T) {
		key3 := keyFor(t, 3, st.ShardCount)
		r, fwd := newTestRouter(t, Config{NodeID: "n4"}, st, fakeReplicas{})
		fwd.set("addr-n2", served("n2"))
		if _, err := r.Get(ctx, key3, false); err != nil {
			t.Fatalf("Get(%q) = %v", key3, err)
		}
		fwd.takeCalls()
		_, err := r.Delete(ctx, key3, shard.RequestID{}, true)
		checkRefusal(t, err, "n2")
		var nl *replication.NotLeaderError
		if errors.As(err, &nl) && nl.Group != 3 {
			t.Errorf("NotLeaderError.Group = %d; want 3", nl.Group)
		}
		if calls := fwd.takeCalls(); len(calls) != 0 {
			t.Errorf("forwarded a forwarded request: %+v", calls)
		}
	})
}

func TestRemoteNotFoundPassesThrough(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 2, st.ShardCount) // replicas n3, n1, n2
	r, fwd := newTestRouter(t, Config{NodeID: "n4"}, st, fakeReplicas{})
	fwd.set("addr-n3", fwdReply{err: ErrNotFound, leader: "n3"})
	_, err := r.Get(context.Background(), key, false)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(%q) = %v; want ErrNotFound", key, err)
	}
	if errors.Is(err, ErrNoLeader) {
		t.Errorf("Get(%q) = %v; want no ErrNoLeader", key, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n3"}; !slices.Equal(got, want) {
		t.Errorf("forwarded to %q; want %q (NotFound is an answer)", got, want)
	}
}

func TestOtherRemoteErrorsReturnAtOnce(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 2, st.ShardCount) // replicas n3, n1, n2
	boom := errors.New("remote: value too large")
	stale := fmt.Errorf("remote: %w", shard.ErrStaleRequest)
	deadline := fmt.Errorf("forward to addr-n3: %w", context.DeadlineExceeded)
	for _, want := range []error{boom, stale, deadline} {
		r, fwd := newTestRouter(t, Config{NodeID: "n4"}, st, fakeReplicas{})
		fwd.set("addr-n3", fwdReply{err: want})
		_, err := r.Put(context.Background(), key, []byte("v"), shard.RequestID{}, false)
		if !errors.Is(err, want) {
			t.Errorf("remote %v: Put = %v; want it wrapped", want, err)
		}
		if errors.Is(err, ErrNoLeader) {
			t.Errorf("remote %v: Put = %v; want no ErrNoLeader", want, err)
		}
		if got, want := fwd.takeAddrs(), []string{"addr-n3"}; !slices.Equal(got, want) {
			t.Errorf("remote %v: forwarded to %q; want %q", want, got, want)
		}
	}
}

func TestNoCandidates(t *testing.T) {
	// The only replica of the shard is this node, and it does not lead.
	st := testCluster([]string{"n1", "n2"}, [][]string{{"n1"}})
	rep := followerReplica(0, "")
	r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep})
	_, err := r.Get(context.Background(), []byte("k"), false)
	if !errors.Is(err, ErrNoLeader) {
		t.Errorf("Get = %v; want ErrNoLeader", err)
	}
	if calls := fwd.takeCalls(); len(calls) != 0 {
		t.Errorf("forwarded %+v; want nothing", calls)
	}
}

func TestCanceledContextStopsForwarding(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount) // replicas n1, n2, n3
	r, fwd := newTestRouter(t, Config{NodeID: "n4"}, st, fakeReplicas{})
	for _, n := range []string{"n1", "n2", "n3"} {
		fwd.set(addr(n), unreachable(addr(n)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Get(ctx, key, false)
	if !errors.Is(err, ErrNoLeader) {
		t.Errorf("Get with a canceled context = %v; want ErrNoLeader", err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n1"}; !slices.Equal(got, want) {
		t.Errorf("forwarded to %q with a canceled context; want %q", got, want)
	}
}

func TestUnsafeLocalReads(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount)

	// A follower serves its own (possibly stale) value without a barrier.
	rep := followerReplica(0, "n3")
	rep.data[string(key)] = shard.Value{Data: []byte("stale"), Version: 3}
	r, fwd := newTestRouter(t, Config{NodeID: "n1", UnsafeLocalReads: true}, st, fakeReplicas{0: rep})
	res, err := r.Get(context.Background(), key, false)
	if err != nil || string(res.Value.Data) != "stale" {
		t.Errorf("UnsafeLocalReads: Get(%q) = %q, %v; want %q, nil", key, res.Value.Data, err, "stale")
	}
	if barriers, _ := rep.counts(); barriers != 0 {
		t.Errorf("UnsafeLocalReads: ReadBarrier called %d times; want 0", barriers)
	}
	if calls := fwd.takeCalls(); len(calls) != 0 {
		t.Errorf("UnsafeLocalReads: forwarded %+v", calls)
	}

	// Writes are unaffected: the follower still forwards them.
	fwd.set("addr-n3", fwdReply{leader: "n3", version: 9})
	if _, err := r.Put(context.Background(), key, []byte("v"), shard.RequestID{}, false); err != nil {
		t.Errorf("UnsafeLocalReads: Put(%q) = %v", key, err)
	}
	if got, want := fwd.takeAddrs(), []string{"addr-n3"}; !slices.Equal(got, want) {
		t.Errorf("UnsafeLocalReads: Put forwarded to %q; want %q", got, want)
	}

	// Without the switch the same follower forwards the read.
	rep2 := followerReplica(0, "n3")
	rep2.data[string(key)] = shard.Value{Data: []byte("stale"), Version: 3}
	r2, fwd2 := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep2})
	fwd2.set("addr-n3", fwdReply{leader: "n3", value: shard.Value{Data: []byte("fresh"), Version: 5}})
	res2, err := r2.Get(context.Background(), key, false)
	if err != nil || string(res2.Value.Data) != "fresh" {
		t.Errorf("Get(%q) = %q, %v; want %q, nil", key, res2.Value.Data, err, "fresh")
	}
	if barriers, _ := rep2.counts(); barriers != 1 {
		t.Errorf("ReadBarrier called %d times; want 1", barriers)
	}
}

func TestDefaultClock(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount)
	rep := leaderReplica("n1")
	rep.proposeOut = shard.Result{Index: 1, Version: 1}
	r := New(Config{NodeID: "n1"}, fakeMap{st}, fakeReplicas{0: rep}, newFakeForwarder(t))
	before := time.Now().UnixNano()
	if _, err := r.Put(context.Background(), key, []byte("v"), shard.RequestID{}, false); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	if at := rep.lastProposal(t).ProposedAt; at < before || at > after {
		t.Errorf("ProposedAt = %d; want the wall clock, within [%d, %d]", at, before, after)
	}
}

// Concurrent requests, local and forwarded, share the leader cache and the
// counter; run with -race.
func TestConcurrentRequests(t *testing.T) {
	st := testCluster(members5, shards4)
	keys := [][]byte{keyFor(t, 0, 4), keyFor(t, 1, 4), keyFor(t, 2, 4), keyFor(t, 3, 4)}
	local := leaderReplica("n1")
	for _, k := range keys {
		local.data[string(k)] = shard.Value{Data: []byte("v"), Version: 1}
	}
	// n1 leads shard 0, follows shard 2 (leader n3), and hosts no replica
	// of shards 1 and 3, whose first replica n2 serves them.
	follower := followerReplica(2, "n3")
	r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: local, 2: follower})
	fwd.set("addr-n2", served("n2"))
	fwd.set("addr-n3", served("n3"))

	const workers, rounds = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				k := keys[(w+i)%len(keys)]
				if _, err := r.Get(context.Background(), k, false); err != nil {
					t.Errorf("Get(%q) = %v", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	forwards := uint64(len(fwd.takeCalls()))
	if got := r.Stats().Forwarded; got != forwards {
		t.Errorf("Stats().Forwarded = %d; the forwarder saw %d calls", got, forwards)
	}
	if want := uint64(workers * rounds * 3 / 4); forwards != want {
		t.Errorf("forwards = %d; want %d (every request but those for shard 0)", forwards, want)
	}
	for sid, want := range map[shard.ID]string{0: "n1", 1: "n2", 2: "n3", 3: "n2"} {
		if got := r.KnownLeader(sid); got != want {
			t.Errorf("KnownLeader(%d) = %q; want %q", sid, got, want)
		}
	}
}
