package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/shard"
)

// testTiming makes elections take a fraction of a second.
var testTiming = replication.Timing{
	HeartbeatTimeout:   200 * time.Millisecond,
	ElectionTimeout:    200 * time.Millisecond,
	LeaderLeaseTimeout: 100 * time.Millisecond,
	CommitTimeout:      20 * time.Millisecond,
}

type clusterOpts struct {
	nodes            int
	shards           int
	unsafeLocalReads bool
	// leaderBalance is the leader balancing interval; tests that pick a
	// leader and act on it leave it 0, which disables balancing here.
	leaderBalance time.Duration
	// timing defaults to testTiming; clusters of many groups want slower
	// timers so that elections settle on a loaded machine under -race.
	timing replication.Timing
	// raftLog is Config.RaftLog; empty means defaultTestRaftLog().
	raftLog string
	// configure, when set, adjusts node i's Config before it starts.
	configure func(i int, cfg *Config)
}

// testCluster is a cluster of in-process nodes on loopback, each with its
// own data directory, connected through a faultNet.
type testCluster struct {
	t     *testing.T
	opts  clusterOpts
	net   *faultNet
	addrs []string
	dirs  []string
	peers []Peer
	nodes []*Node
	conns []*grpc.ClientConn
	// clientID and seq make the request IDs of put.
	clientID [16]byte
	seq      atomic.Uint64
}

func startCluster(t *testing.T, opts clusterOpts) *testCluster {
	t.Helper()
	if opts.nodes == 0 {
		opts.nodes = 3
	}
	if opts.shards == 0 {
		opts.shards = 8
	}
	if opts.timing == (replication.Timing{}) {
		opts.timing = testTiming
	}
	if opts.raftLog == "" {
		opts.raftLog = defaultTestRaftLog()
	}
	c := &testCluster{t: t, opts: opts, net: newFaultNet()}
	rand.Read(c.clientID[:])
	base := t.TempDir()
	lis := make([]net.Listener, opts.nodes)
	for i := range lis {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis[i] = l
		c.addrs = append(c.addrs, l.Addr().String())
		c.dirs = append(c.dirs, filepath.Join(base, fmt.Sprintf("n%d", i+1)))
		c.peers = append(c.peers, Peer{ID: fmt.Sprintf("n%d", i+1), Addr: l.Addr().String()})
	}
	c.nodes = make([]*Node, opts.nodes)
	for i := range lis {
		c.start(i, lis[i])
	}
	for _, a := range c.addrs {
		cc, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		c.conns = append(c.conns, cc)
	}
	t.Cleanup(func() {
		for _, cc := range c.conns {
			cc.Close()
		}
		c.stopAll()
	})
	c.waitReady()
	return c
}

func (c *testCluster) start(i int, l net.Listener) {
	c.t.Helper()
	if l == nil {
		var err error
		l, err = net.Listen("tcp", c.addrs[i])
		if err != nil {
			c.t.Fatalf("relisten on %s: %v", c.addrs[i], err)
		}
	}
	logOut := io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	cfg := Config{
		ID:               c.peers[i].ID,
		Listener:         l,
		DataDir:          c.dirs[i],
		RaftLog:          c.opts.raftLog,
		InitialCluster:   c.peers,
		Shards:           c.opts.shards,
		Timing:           c.opts.timing,
		Logger:           slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn})),
		RaftLogOutput:    logOut,
		DialOptions:      []grpc.DialOption{grpc.WithContextDialer(c.net.dialer(c.addrs[i]))},
		UnsafeLocalReads: c.opts.unsafeLocalReads,
		LeaderBalanceInterval: func() time.Duration {
			if c.opts.leaderBalance == 0 {
				return -1
			}
			return c.opts.leaderBalance
		}(),
	}
	if c.opts.configure != nil {
		c.opts.configure(i, &cfg)
	}
	n, err := Start(cfg)
	if err != nil {
		c.t.Fatalf("start node %d: %v", i+1, err)
	}
	c.nodes[i] = n
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	if c.nodes[i] == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[i].Stop(ctx); err != nil {
		c.t.Errorf("stop node %d: %v", i+1, err)
	}
	c.nodes[i] = nil
}

func (c *testCluster) stopAll() {
	for i := range c.nodes {
		c.stop(i)
	}
}

// waitFor polls cond every 10ms until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReady waits until every running node has opened its replicas and
// every shard has a leader that has applied its no-op.
func (c *testCluster) waitReady() {
	c.t.Helper()
	start := time.Now()
	defer func() { c.t.Logf("cluster of %d shards ready in %v", c.opts.shards, time.Since(start)) }()
	waitFor(c.t, 60*time.Second, "cluster ready", func() bool {
		for _, n := range c.nodes {
			if n != nil && !n.Ready() {
				return false
			}
		}
		for s := 0; s < c.opts.shards; s++ {
			if c.leaderOf(shard.ID(s)) < 0 {
				return false
			}
		}
		return true
	})
}

// leaderOf returns the index of the running node that leads shard s, or -1.
func (c *testCluster) leaderOf(s shard.ID) int {
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		if l, ok := n.ShardLeader(s); ok && l.Self {
			return i
		}
	}
	return -1
}

func (c *testCluster) kv(i int) ringkvv1.KVClient { return ringkvv1.NewKVClient(c.conns[i]) }

// put writes through node i, retrying Unavailable (elections) within 10s.
// Each put carries a request ID, as the client library's do, so a retry
// after an unknown outcome is safe.
func (c *testCluster) put(i int, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := &ringkvv1.RequestID{ClientId: c.clientID[:], Seq: c.seq.Add(1)}
	for {
		_, err := c.kv(i).Put(ctx, &ringkvv1.PutRequest{Key: []byte(key), Value: []byte(value), RequestId: id})
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get reads through node i, retrying Unavailable within 10s.
func (c *testCluster) get(i int, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		resp, err := c.kv(i).Get(ctx, &ringkvv1.GetRequest{Key: []byte(key)})
		if err == nil {
			return string(resp.GetValue()), nil
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return "", err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWritesThroughAnyNodeReadableEverywhere(t *testing.T) {
	forEachRaftLog(t, testWritesThroughAnyNodeReadableEverywhere)
}

func testWritesThroughAnyNodeReadableEverywhere(t *testing.T, raftLog string) {
	c := startCluster(t, clusterOpts{raftLog: raftLog})
	for k := 0; k < 30; k++ {
		key, val := fmt.Sprintf("key-%d", k), fmt.Sprintf("value-%d", k)
		if err := c.put(k%3, key, val); err != nil {
			t.Fatalf("Put(%q) through n%d: %v", key, k%3+1, err)
		}
		for i := range c.nodes {
			got, err := c.get(i, key)
			if err != nil || got != val {
				t.Fatalf("Get(%q) through n%d = %q, %v; want %q", key, i+1, got, err, val)
			}
		}
	}
	// Delete through one node, gone through every node.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.kv(2).Delete(ctx, &ringkvv1.DeleteRequest{Key: []byte("key-0")})
	if err != nil || !resp.GetDeleted() {
		t.Fatalf("Delete(key-0) = %v, %v; want deleted", resp, err)
	}
	for i := range c.nodes {
		if _, err := c.get(i, "key-0"); status.Code(err) != codes.NotFound {
			t.Fatalf("Get(key-0) through n%d after delete: err %v; want NotFound", i+1, err)
		}
	}
}

func TestLeaderFailoverKeepsShardWritable(t *testing.T) {
	forEachRaftLog(t, testLeaderFailoverKeepsShardWritable)
}

func testLeaderFailoverKeepsShardWritable(t *testing.T, raftLog string) {
	c := startCluster(t, clusterOpts{raftLog: raftLog})
	key := "failover-key"
	sid := shard.Of([]byte(key), uint32(c.opts.shards))
	if err := c.put(0, key, "before"); err != nil {
		t.Fatal(err)
	}
	old := c.leaderOf(sid)
	c.stop(old)
	survivor := (old + 1) % 3
	waitFor(t, 10*time.Second, "new leader", func() bool { return c.leaderOf(sid) >= 0 })
	if err := c.put(survivor, key, "after"); err != nil {
		t.Fatalf("Put after killing leader n%d: %v", old+1, err)
	}
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		if got, err := c.get(i, key); err != nil || got != "after" {
			t.Fatalf("Get through n%d = %q, %v; want after", i+1, got, err)
		}
	}
	// The old leader comes back and catches up.
	c.start(old, nil)
	waitFor(t, 10*time.Second, "restarted node ready", c.nodes[old].Ready)
	g, _ := c.nodes[old].ShardGroup(sid)
	waitFor(t, 10*time.Second, "restarted replica catches up", func() bool {
		v, ok := c.nodes[old].mu.shards[sid].sm.Get([]byte(key))
		return g != nil && ok && string(v.Data) == "after"
	})
}

func TestRestartAllKeepsAcknowledgedWrites(t *testing.T) {
	forEachRaftLog(t, testRestartAllKeepsAcknowledgedWrites)
}

func testRestartAllKeepsAcknowledgedWrites(t *testing.T, raftLog string) {
	c := startCluster(t, clusterOpts{raftLog: raftLog})
	want := map[string]string{}
	for k := 0; k < 300; k++ {
		key, val := fmt.Sprintf("r-%d", k), fmt.Sprintf("v-%d", k)
		if err := c.put(k%3, key, val); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		want[key] = val
	}
	// Snapshot one node's groups so restart covers snapshot + log replay.
	for s := 0; s < c.opts.shards; s++ {
		if g, ok := c.nodes[0].ShardGroup(shard.ID(s)); ok {
			if err := g.Snapshot(); err != nil {
				t.Fatalf("snapshot shard %d: %v", s, err)
			}
		}
	}
	c.stopAll()
	for i := range c.nodes {
		c.start(i, nil)
	}
	c.waitReady()
	for key, val := range want {
		got, err := c.get(len(key)%3, key)
		if err != nil || got != val {
			t.Fatalf("after restart Get(%q) = %q, %v; want %q", key, got, err, val)
		}
	}
}

func TestLongKeysSpreadOverAllShards(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10,000 keys")
	}
	const keys = 10000
	c := startCluster(t, clusterOpts{shards: 64, timing: replication.Timing{
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      100 * time.Millisecond,
	}})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := w; k < keys; k += 32 {
				if err := c.put(k%3, fmt.Sprintf("spread-%d", k), "v"); err != nil {
					errs <- fmt.Errorf("put spread-%d: %w", k, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := c.nodes[0].Metadata()
	perShard := make([]int, st.ShardCount)
	for k := 0; k < keys; k++ {
		perShard[shard.Of([]byte(fmt.Sprintf("spread-%d", k)), st.ShardCount)]++
	}
	for s, n := range perShard {
		if n == 0 {
			t.Errorf("shard %d got no keys", s)
		}
		reps := st.ReplicasOf(uint32(s))
		seen := map[string]bool{}
		for _, r := range reps {
			seen[r] = true
		}
		if len(reps) != 3 || len(seen) != 3 {
			t.Errorf("shard %d replicas %v; want 3 distinct nodes", s, reps)
		}
	}
	// Every replica of every shard holds that shard's keys.
	for i, n := range c.nodes {
		waitFor(t, 20*time.Second, fmt.Sprintf("n%d replicas complete", i+1), func() bool {
			for s, want := range perShard {
				n.mu.Lock()
				r := n.mu.shards[shard.ID(s)]
				n.mu.Unlock()
				if r == nil || r.sm.Len() != want {
					return false
				}
			}
			return true
		})
	}
}

// TestReadPathLinearizableAcrossLeaderChange cuts a shard's leader off,
// lets the others elect a new leader and overwrite a key, then reads the key
// through the old leader's node: it must never return the overwritten
// value. The same scenario against UnsafeLocalReads must return it, which
// shows the test can catch a broken read path.
func TestReadPathLinearizableAcrossLeaderChange(t *testing.T) {
	for _, unsafe := range []bool{false, true} {
		t.Run(fmt.Sprintf("unsafeLocalReads=%v", unsafe), func(t *testing.T) {
			c := startCluster(t, clusterOpts{unsafeLocalReads: unsafe})
			key := "linearizable-key"
			sid := shard.Of([]byte(key), uint32(c.opts.shards))
			old := c.leaderOf(sid)
			if err := c.put(old, key, "v1"); err != nil {
				t.Fatal(err)
			}
			var others []string
			var otherIdx []int
			for i, a := range c.addrs {
				if i != old {
					others = append(others, a)
					otherIdx = append(otherIdx, i)
				}
			}
			c.net.isolate(c.addrs[old], others...)
			waitFor(t, 10*time.Second, "new leader among the majority", func() bool {
				for _, i := range otherIdx {
					if l, ok := c.nodes[i].ShardLeader(sid); ok && l.Self {
						return true
					}
				}
				return false
			})
			if err := c.put(otherIdx[0], key, "v2"); err != nil {
				t.Fatalf("Put v2 on the majority side: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			resp, err := c.kv(old).Get(ctx, &ringkvv1.GetRequest{Key: []byte(key)})
			stale := err == nil && string(resp.GetValue()) == "v1"
			if unsafe {
				if !stale {
					t.Fatalf("negative control: Get through cut-off n%d = %v, %v; want the stale v1 that unsafe local reads allow", old+1, resp, err)
				}
				return
			}
			if stale {
				t.Fatalf("Get through cut-off old leader n%d returned stale v1 after v2 was acknowledged", old+1)
			}
			if err == nil && string(resp.GetValue()) != "v2" {
				t.Fatalf("Get through n%d = %q; want v2 or an error", old+1, resp.GetValue())
			}
			c.net.heal()
			if got, err := c.get(old, key); err != nil || got != "v2" {
				t.Fatalf("after heal Get through n%d = %q, %v; want v2", old+1, got, err)
			}
		})
	}
}

func TestBadInputIsInvalidArgument(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv := c.kv(0)
	cases := []struct {
		name string
		call func() error
		msg  string
	}{
		{"empty key get", func() error { _, err := kv.Get(ctx, &ringkvv1.GetRequest{}); return err }, "key is empty"},
		{"empty key put", func() error { _, err := kv.Put(ctx, &ringkvv1.PutRequest{Value: []byte("v")}); return err }, "key is empty"},
		{"empty key delete", func() error { _, err := kv.Delete(ctx, &ringkvv1.DeleteRequest{}); return err }, "key is empty"},
		{"oversized key", func() error {
			_, err := kv.Put(ctx, &ringkvv1.PutRequest{Key: make([]byte, 4097), Value: []byte("v")})
			return err
		}, "limit is 4096 bytes"},
		{"oversized value", func() error {
			_, err := kv.Put(ctx, &ringkvv1.PutRequest{Key: []byte("k"), Value: make([]byte, 1<<20+1)})
			return err
		}, "limit is 1048576 bytes"},
		{"oversized client id", func() error {
			_, err := kv.Put(ctx, &ringkvv1.PutRequest{Key: []byte("k"), RequestId: &ringkvv1.RequestID{ClientId: make([]byte, 65)}})
			return err
		}, "client_id"},
		{"unknown shard in an internal call", func() error {
			_, err := ringkvv1.NewRaftTransportClient(c.conns[0]).AppendEntries(ctx, &ringkvv1.AppendEntriesRequest{Group: 999999})
			return err
		}, "999999"},
	}
	for _, tc := range cases {
		err := tc.call()
		st, _ := status.FromError(err)
		if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("%s: got %v; want InvalidArgument mentioning %q", tc.name, err, tc.msg)
		}
	}
	// The node still serves after all that.
	if err := c.put(0, "k", "v"); err != nil {
		t.Fatalf("Put after bad input: %v", err)
	}
}

// Leadership spreads over the nodes: each ends up leading about a third of
// the shards, however the first elections went.
func TestLeadershipBalances(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 12, leaderBalance: 100 * time.Millisecond})
	waitFor(t, 30*time.Second, "balanced leadership", func() bool {
		leads := make([]int, len(c.nodes))
		for s := 0; s < c.opts.shards; s++ {
			i := c.leaderOf(shard.ID(s))
			if i < 0 {
				return false
			}
			leads[i]++
		}
		for _, l := range leads {
			if l < 3 || l > 5 { // an even share is 4; PreferredLeaders is within one of it
				return false
			}
		}
		return true
	})
	// Writes keep working after the transfers.
	for k := 0; k < 12; k++ {
		if err := c.put(k%3, fmt.Sprintf("b-%d", k), "v"); err != nil {
			t.Fatal(err)
		}
	}
}

// Values at the size limit replicate, also to a follower that missed them
// and catches up from the log in AppendEntries batches of many such values.
func TestLongLargeValuesReplicateAndCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 70 MiB")
	}
	c := startCluster(t, clusterOpts{shards: 1})
	c.stop(2)
	val := strings.Repeat("x", 1<<20)
	// The follower's catch-up reads them back from the log in batches, so
	// the writes themselves need not be concurrent; four writers keep the
	// test quick.
	var wg sync.WaitGroup
	errs := make(chan error, 70)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := w; k < 70; k += 4 {
				if err := c.put(k%2, fmt.Sprintf("big-%d", k), val); err != nil {
					errs <- fmt.Errorf("put big-%d: %w", k, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.start(2, nil)
	waitFor(t, 30*time.Second, "n3 catches up on 70 MiB", func() bool {
		c.nodes[2].mu.Lock()
		r := c.nodes[2].mu.shards[0]
		c.nodes[2].mu.Unlock()
		return r != nil && r.sm.Len() == 70
	})
	got, err := c.get(2, "big-69")
	if err != nil || got != val {
		t.Fatalf("Get(big-69) through n3: %d bytes, %v; want %d bytes", len(got), err, len(val))
	}
}
