package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/shard"
)

// keyIn returns a key of shard sid.
func keyIn(t *testing.T, sid shard.ID, shards uint32, prefix string) string {
	t.Helper()
	for i := range 100_000 {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if shard.Of([]byte(k), shards) == sid {
			return k
		}
	}
	t.Fatalf("no key of shard %d", sid)
	return ""
}

// leadOn makes node i lead shard sid.
func (c *testCluster) leadOn(sid shard.ID, i int) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("n%d leads shard %d", i+1, sid), func() bool {
		cur := c.leaderOf(sid)
		if cur == i {
			return true
		}
		if cur >= 0 {
			if g, ok := c.nodes[cur].ShardGroup(sid); ok {
				_ = g.TransferLeadershipTo(c.peers[i].ID, c.addrs[i]) // retried until it holds
			}
		}
		return false
	})
}

func counterValue(t *testing.T, o *overload, scope string) float64 {
	t.Helper()
	var m dto.Metric
	if err := o.rejected.WithLabelValues(scope).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestStuckShardFillsOnlyItsBulkhead: shard S loses its quorum while node A
// leads it (its other two replicas are cut off), so writes to it hang on A.
// They fill S's bound of requests in flight; further requests to S, sent to
// A or forwarded to A by another node, are refused with ResourceExhausted at
// once, well before their deadline; requests to shard T, also led by A,
// keep succeeding.
func TestStuckShardFillsOnlyItsBulkhead(t *testing.T) {
	const perShard = 3
	// The leader lease bounds how long A goes on believing it leads S
	// after losing its followers: long enough for the checks below.
	slow := replication.Timing{
		HeartbeatTimeout:   4 * time.Second,
		ElectionTimeout:    4 * time.Second,
		LeaderLeaseTimeout: 4 * time.Second,
		CommitTimeout:      50 * time.Millisecond,
	}
	c := startCluster(t, clusterOpts{nodes: 4, shards: 8, timing: slow,
		configure: func(_ int, cfg *Config) { cfg.MaxInflightPerShard = perShard }})

	// Four nodes, three replicas: S is on A, B and C; T is on A and D (and
	// at most one of B, C), so T keeps a quorum when B and C are cut off.
	st := c.nodes[0].Metadata()
	idx := func(id string) int { return slices.IndexFunc(c.peers, func(p Peer) bool { return p.ID == id }) }
	a, b, cc, d := -1, -1, -1, -1
	var sidS, sidT shard.ID
	for s := range st.ShardCount {
		for tt := range st.ShardCount {
			rs, rt := st.ReplicasOf(s), st.ReplicasOf(tt)
			if s == tt || a >= 0 {
				continue
			}
			for _, id := range rs {
				if !slices.Contains(rt, id) {
					continue
				}
				var others []string
				for _, o := range rs {
					if o != id {
						others = append(others, o)
					}
				}
				var missing string
				for _, p := range c.peers {
					if !slices.Contains(rs, p.ID) {
						missing = p.ID
					}
				}
				if slices.Contains(rt, missing) {
					a, b, cc, d = idx(id), idx(others[0]), idx(others[1]), idx(missing)
					sidS, sidT = shard.ID(s), shard.ID(tt)
					break
				}
			}
		}
	}
	if a < 0 {
		t.Fatalf("no two shards fit the test in placement %v", st.Shards)
	}
	t.Logf("S = shard %d on %v, T = shard %d on %v; A = n%d, cut off n%d and n%d; D = n%d",
		sidS, st.ReplicasOf(uint32(sidS)), sidT, st.ReplicasOf(uint32(sidT)), a+1, b+1, cc+1, d+1)
	c.leadOn(sidS, a)
	c.leadOn(sidT, a)
	keyS := keyIn(t, sidS, st.ShardCount, "stuck")
	keyT := keyIn(t, sidT, st.ShardCount, "healthy")
	if err := c.put(a, keyT, "before"); err != nil {
		t.Fatalf("Put(%q) before the fault: %v", keyT, err)
	}

	// S loses its quorum: B and C are cut off from everyone.
	c.net.isolate(c.addrs[b], c.addrs[a], c.addrs[cc], c.addrs[d])
	c.net.isolate(c.addrs[cc], c.addrs[a], c.addrs[d])
	lim := c.nodes[a].overload.shard(sidS)

	// Fill S's bulkhead with writes that hang on A.
	type result struct{ err error }
	hung := make(chan result, perShard)
	hangCtx, cancelHung := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelHung()
	for i := range perShard {
		key := keyIn(t, sidS, st.ShardCount, fmt.Sprintf("hung%d", i))
		go func() {
			id := &ringkvv1.RequestID{ClientId: c.clientID[:], Seq: c.seq.Add(1)}
			_, err := c.kv(a).Put(hangCtx, &ringkvv1.PutRequest{Key: []byte(key), Value: []byte("x"), RequestId: id})
			hung <- result{err}
		}()
	}
	full := func() bool { return lim.InFlight() == perShard }
	for deadline := time.Now().Add(5 * time.Second); !full() && time.Now().Before(deadline); {
		select {
		case r := <-hung:
			t.Fatalf("a write to the stuck shard returned %v; want it to wait for the lost quorum", r.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !full() {
		t.Fatalf("shard S's bulkhead holds %d requests; want %d", lim.InFlight(), perShard)
	}
	shardRejected := counterValue(t, c.nodes[a].overload, "shard")

	// Over the bound: refused at once, through A and forwarded through D.
	refused := func(what string, call func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		err := call(ctx)
		took := time.Since(start)
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), fmt.Sprintf("max-inflight-per-shard (%d)", perShard)) {
			t.Fatalf("%s to the stuck shard = %v; want ResourceExhausted naming max-inflight-per-shard (%d)", what, err, perShard)
		}
		if took > time.Second {
			t.Errorf("%s refused after %v; want at once (its deadline is 10s)", what, took)
		}
		t.Logf("%s: refused in %v: %s", what, took, st.Message())
	}
	refused("Put through the leader", func(ctx context.Context) error {
		_, err := c.kv(a).Put(ctx, &ringkvv1.PutRequest{Key: []byte(keyS), Value: []byte("y")})
		return err
	})
	refused("Get through the leader", func(ctx context.Context) error {
		_, err := c.kv(a).Get(ctx, &ringkvv1.GetRequest{Key: []byte(keyS)})
		return err
	})
	refused("Put forwarded by another node", func(ctx context.Context) error {
		_, err := c.kv(d).Put(ctx, &ringkvv1.PutRequest{Key: []byte(keyS), Value: []byte("y")})
		return err
	})

	// The healthy shard led by the same node keeps serving, directly and
	// forwarded.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.kv(a).Put(ctx, &ringkvv1.PutRequest{Key: []byte(keyT), Value: []byte("after")}); err != nil {
		t.Fatalf("Put(%q) to the healthy shard through A = %v; want success", keyT, err)
	}
	if resp, err := c.kv(d).Get(ctx, &ringkvv1.GetRequest{Key: []byte(keyT)}); err != nil || string(resp.GetValue()) != "after" {
		t.Fatalf("Get(%q) of the healthy shard through D = %v, %v; want after", keyT, resp, err)
	}
	if l, _ := c.nodes[a].ShardLeader(sidS); !l.Self {
		t.Fatalf("n%d lost the lease of shard %d before the checks ended: the test's timing is too tight", a+1, sidS)
	}
	if got := counterValue(t, c.nodes[a].overload, "shard"); got < shardRejected+3 {
		t.Errorf("ringkv_overload_rejected_total{scope=shard} on A = %v; want at least %v", got, shardRejected+3)
	}
	if got := counterValue(t, c.nodes[a].overload, "node"); got != 0 {
		t.Errorf("ringkv_overload_rejected_total{scope=node} on A = %v; want 0 (the node bound was never reached)", got)
	}

	// Heal: the hung writes end (committed, or failed when A stepped down)
	// and their slots come back.
	c.net.heal()
	for range perShard {
		select {
		case r := <-hung:
			if status.Code(r.err) == codes.ResourceExhausted {
				t.Errorf("an admitted write ended with %v", r.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a write to the stuck shard never ended")
		}
	}
	waitFor(t, 5*time.Second, "shard S's bulkhead empty", func() bool { return lim.InFlight() == 0 })
	if err := c.put(a, keyS, "healed"); err != nil {
		t.Fatalf("Put(%q) after healing = %v", keyS, err)
	}
}
