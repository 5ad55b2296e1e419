package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/client"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

func TestConditionalWrites(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 4})
	cl := c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := []byte("cond")

	v1, err := cl.Put(ctx, k, []byte("a"), client.IfAbsent(true))
	if err != nil {
		t.Fatalf("Put IfAbsent on a missing key: %v", err)
	}
	_, err = cl.Put(ctx, k, []byte("b"), client.IfAbsent(true))
	var ce *client.ConditionError
	if !errors.Is(err, client.ErrConditionFailed) || !errors.As(err, &ce) || ce.Version != v1 {
		t.Fatalf("second Put IfAbsent = %v; want ErrConditionFailed with version %d", err, v1)
	}
	if _, err := cl.Put(ctx, k, []byte("b"), client.IfVersion(v1+1000)); !errors.Is(err, client.ErrConditionFailed) {
		t.Fatalf("Put IfVersion(wrong) = %v; want ErrConditionFailed", err)
	}
	v2, err := cl.Put(ctx, k, []byte("b"), client.IfVersion(v1))
	if err != nil || v2 <= v1 {
		t.Fatalf("Put IfVersion(current) = %d, %v; want a version above %d", v2, err, v1)
	}
	if _, _, err := cl.Delete(ctx, k, client.IfVersion(v1)); !errors.Is(err, client.ErrConditionFailed) {
		t.Fatalf("Delete IfVersion(old) = %v; want ErrConditionFailed", err)
	}
	if got, err := cl.Get(ctx, k); err != nil || string(got.Data) != "b" {
		t.Fatalf("after refused delete Get = %q, %v; want b", got.Data, err)
	}
	if deleted, _, err := cl.Delete(ctx, k, client.IfVersion(v2)); err != nil || !deleted {
		t.Fatalf("Delete IfVersion(current) = %v, %v; want deleted", deleted, err)
	}
	if _, err := cl.CompareAndSwap(ctx, k, []byte("b"), []byte("c")); !errors.Is(err, client.ErrConditionFailed) {
		t.Fatalf("CAS on a missing key = %v; want ErrConditionFailed", err)
	}
}

// Two clients race compare-and-swap from the same value: exactly one wins
// each round.
func TestCompareAndSwapRaceOneWinner(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 4})
	a, b := c.client(t), c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k := []byte("cas")
	if _, err := a.Put(ctx, k, []byte("0")); err != nil {
		t.Fatal(err)
	}
	for round := range 30 {
		old, next := []byte(fmt.Sprint(round)), []byte(fmt.Sprint(round+1))
		var wins atomic.Int32
		var wg sync.WaitGroup
		for _, cl := range []*client.Client{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := cl.CompareAndSwap(ctx, k, old, next)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, client.ErrConditionFailed):
					t.Errorf("round %d: CAS: %v", round, err)
				}
			}()
		}
		wg.Wait()
		if w := wins.Load(); w != 1 {
			t.Fatalf("round %d: %d winners; want exactly 1", round, w)
		}
	}
	if v, err := a.Get(ctx, k); err != nil || string(v.Data) != "30" {
		t.Fatalf("final value %q, %v; want 30", v.Data, err)
	}
}

// Transfers between two hash-tagged accounts race with each other through
// optimistic transactions; every atomic read of both sees the same total.
func TestTxnKeepsInvariantUnderConflicts(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 8})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ka, kb := []byte("{bank}.alice"), []byte("{bank}.bob")
	setup := c.client(t)
	if _, err := setup.MultiPut(ctx, [][]byte{ka, kb}, [][]byte{[]byte("50"), []byte("50")}); err != nil {
		t.Fatal(err)
	}
	readBoth := func(cl *client.Client) (int, int, uint64, uint64) {
		r, err := cl.Txn(ctx, client.Txn{Then: []client.Op{client.OpGet(ka), client.OpGet(kb)}})
		if err != nil {
			t.Errorf("read txn: %v", err)
			return 0, 0, 0, 0
		}
		if len(r.Results) != 2 {
			t.Fatalf("read txn = %+v; want two results", r)
		}
		var x, y int
		fmt.Sscan(string(r.Results[0].Value.Data), &x)
		fmt.Sscan(string(r.Results[1].Value.Data), &y)
		return x, y, r.Results[0].Value.Version, r.Results[1].Value.Version
	}
	var committed, conflicts atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		cl := c.client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				x, y, va, vb := readBoth(cl)
				amount := (w+i)%7 - 3
				r, err := cl.Txn(ctx, client.Txn{
					If: []client.Compare{client.VersionIs(ka, client.Equal, va), client.VersionIs(kb, client.Equal, vb)},
					Then: []client.Op{
						client.OpPut(ka, []byte(fmt.Sprint(x-amount)), 0),
						client.OpPut(kb, []byte(fmt.Sprint(y+amount)), 0),
					},
				})
				if err != nil {
					t.Errorf("transfer: %v", err)
					return
				}
				if r.Succeeded {
					committed.Add(1)
				} else {
					conflicts.Add(1)
				}
			}
		}()
	}
	reader := c.client(t)
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if x, y, _, _ := readBoth(reader); x+y != 100 {
				t.Errorf("atomic read saw %d + %d = %d; want 100", x, y, x+y)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	rwg.Wait()
	if x, y, _, _ := readBoth(reader); x+y != 100 {
		t.Fatalf("final %d + %d; want 100", x, y)
	}
	t.Logf("%d transfers committed, %d lost their race", committed.Load(), conflicts.Load())
	if committed.Load() == 0 {
		t.Fatal("no transfer committed")
	}
}

func TestMultiGetAndPut(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 8})
	cl := c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys, values [][]byte
	for i := range 100 {
		keys = append(keys, []byte(fmt.Sprintf("m/%03d", i)))
		values = append(values, []byte(fmt.Sprintf("v%d", i)))
	}
	versions, err := cl.MultiPut(ctx, keys, values)
	if err != nil || len(versions) != 100 {
		t.Fatalf("MultiPut = %d versions, %v", len(versions), err)
	}
	ask := append([][]byte{[]byte("m/missing")}, keys...)
	got, err := cl.MultiGet(ctx, ask)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Found {
		t.Errorf("missing key found: %+v", got[0])
	}
	for i, kv := range got[1:] {
		if !kv.Found || !bytes.Equal(kv.Data, values[i]) || kv.Version != versions[i] || !bytes.Equal(kv.Key, keys[i]) {
			t.Errorf("MultiGet[%d] = %+v; want %s=%s at version %d", i+1, kv, keys[i], values[i], versions[i])
		}
	}
	// Through the raw API on a node that leads none of them, too: the node
	// fans out and forwards.
	resp, err := c.kv(0).MultiGet(ctx, &ringkvv1.MultiGetRequest{Keys: ask})
	if err != nil || len(resp.GetKvs()) != len(ask) || resp.GetKvs()[0].GetFound() || string(resp.GetKvs()[5].GetValue()) != "v4" {
		t.Fatalf("raw MultiGet = %v, %v", resp, err)
	}
}

// A prefix scan of 50,000 keys across all shards returns each key exactly
// once, in order, across pages.
func TestLongScanFiftyThousandKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("50,000 keys")
	}
	c := startCluster(t, clusterOpts{shards: 16})
	cl := c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const n = 50_000
	for start := 0; start < n; start += 1000 {
		var keys, values [][]byte
		for i := start; i < start+1000; i++ {
			keys = append(keys, []byte(fmt.Sprintf("scan/%06d", i)))
			values = append(values, []byte("x"))
		}
		if _, err := cl.MultiPut(ctx, keys, values); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"scan", "scan0", "scam/1", "other"} { // around the prefix
		if _, err := cl.Put(ctx, []byte(k), []byte("y")); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	for kv, err := range cl.Scan(ctx, []byte("scan/"), client.ScanOptions{PageSize: 1000, KeysOnly: true}) {
		if err != nil {
			t.Fatalf("after %d keys: %v", i, err)
		}
		if want := fmt.Sprintf("scan/%06d", i); string(kv.Key) != want {
			t.Fatalf("key %d = %q; want %q", i, kv.Key, want)
		}
		i++
	}
	if i != n {
		t.Fatalf("scanned %d keys; want %d", i, n)
	}
}

// A key with a TTL is gone for every client and on every replica after its
// deadline, also when its shard's leader changed in between.
func TestTTLExpiresEverywhereAcrossLeaderChange(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 4})
	cl := c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k := []byte("ttl-key")
	sid := shard.Of(k, 4)
	const ttl = 8 * time.Second
	if _, err := cl.Put(ctx, k, []byte("v"), client.WithTTL(ttl)); err != nil {
		t.Fatal(err)
	}
	// The leader stamped the write before Put returned: its deadline is no
	// later than this (all nodes share this machine's clock).
	deadline := time.Now().Add(ttl)
	v, err := cl.Get(ctx, k)
	if err != nil || v.TTL <= 0 || v.TTL > ttl {
		t.Fatalf("Get before the deadline = %+v, %v; want the value with 0 < TTL <= %v", v, err, ttl)
	}
	// Move the shard's leadership before the deadline.
	old := c.leaderOf(sid)
	c.stop(old)
	waitFor(t, 30*time.Second, "a new leader", func() bool { return c.leaderOf(sid) >= 0 })
	if time.Now().After(deadline) {
		t.Skip("the leader change outlasted the TTL; the check below would not be about a leader change")
	}
	time.Sleep(time.Until(deadline)) // the condition here is the clock itself
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		var err error
		waitFor(t, 10*time.Second, "an answer that is not Unavailable", func() bool {
			_, err = c.kv(i).Get(ctx, &ringkvv1.GetRequest{Key: k})
			return status.Code(err) != codes.Unavailable
		})
		if status.Code(err) != codes.NotFound {
			t.Errorf("Get through n%d after the deadline = %v; want NotFound", i+1, err)
		}
	}
	if _, err := cl.Get(ctx, k); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("client Get after the deadline = %v; want ErrNotFound", err)
	}
	// Every live replica drops the key through the log.
	waitFor(t, 10*time.Second, "every replica to drop the key", func() bool {
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			n.mu.Lock()
			r, ok := n.mu.shards[sid]
			n.mu.Unlock()
			if ok {
				if _, found := r.sm.Get(k); found {
					return false
				}
			}
		}
		return true
	})
}

func TestNewCallsRefuseBadInput(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 8})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv := c.kv(0)
	var many [][]byte
	for i := range 1001 {
		many = append(many, []byte(fmt.Sprint(i)))
	}
	// Two keys that fall on different shards.
	a, b := []byte("a"), []byte("b")
	for i := 0; shard.Of(a, 8) == shard.Of(b, 8); i++ {
		b = []byte(fmt.Sprintf("b%d", i))
	}
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"cross-shard txn", func() error {
			_, err := kv.Txn(ctx, &ringkvv1.TxnRequest{Success: []*ringkvv1.RequestOp{
				{Op: &ringkvv1.RequestOp_Put{Put: &ringkvv1.PutOp{Key: a}}},
				{Op: &ringkvv1.RequestOp_Put{Put: &ringkvv1.PutOp{Key: b}}}}})
			return err
		}, "hash tag"},
		{"empty txn", func() error { _, err := kv.Txn(ctx, &ringkvv1.TxnRequest{}); return err }, "empty"},
		{"txn op without kind", func() error {
			_, err := kv.Txn(ctx, &ringkvv1.TxnRequest{Success: []*ringkvv1.RequestOp{{}}})
			return err
		}, "success 0"},
		{"compare without target", func() error {
			_, err := kv.Txn(ctx, &ringkvv1.TxnRequest{Compare: []*ringkvv1.Compare{{Key: a, Result: ringkvv1.Compare_RESULT_EQUAL}}})
			return err
		}, "compare 0: target"},
		{"negative ttl", func() error {
			_, err := kv.Put(ctx, &ringkvv1.PutRequest{Key: a, TtlMs: -1})
			return err
		}, "ttl_ms"},
		{"multiget over the limit", func() error { _, err := kv.MultiGet(ctx, &ringkvv1.MultiGetRequest{Keys: many}); return err }, "limit is 1000"},
		{"multiget empty key", func() error {
			_, err := kv.MultiGet(ctx, &ringkvv1.MultiGetRequest{Keys: [][]byte{a, nil}})
			return err
		}, "key 1: key is empty"},
		{"scan over the limit", func() error { _, err := kv.Scan(ctx, &ringkvv1.ScanRequest{Limit: 10_001}); return err }, "maximum is 10000"},
		{"bad page token", func() error { _, err := kv.Scan(ctx, &ringkvv1.ScanRequest{PageToken: []byte{9}}); return err }, "page_token"},
		{"watch of an empty key", func() error {
			stream, err := kv.Watch(ctx, &ringkvv1.WatchRequest{})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}, "key is empty"},
	} {
		err := tc.call()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want InvalidArgument mentioning %q", tc.name, err, tc.want)
		}
	}
}
