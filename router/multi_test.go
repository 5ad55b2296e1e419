package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/shard"
)

func TestTxnRefusesKeysOfTwoShards(t *testing.T) {
	st := testCluster(members5, shards4)
	rep := leaderReplica("n1")
	r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep, 1: rep, 2: rep, 3: rep})
	a, b := keyFor(t, 0, st.ShardCount), keyFor(t, 1, st.ShardCount)
	_, err := r.Txn(context.Background(), Txn{Then: []shard.TxnOp{
		{Kind: shard.TxnPut, Key: a}, {Kind: shard.TxnPut, Key: b},
	}}, shard.RequestID{}, false)
	if !errors.Is(err, ErrCrossShard) || !strings.Contains(err.Error(), "hash tag") ||
		!strings.Contains(err.Error(), string(a)) || !strings.Contains(err.Error(), string(b)) {
		t.Fatalf("Txn over two shards = %v; want ErrCrossShard naming both keys and hash tags", err)
	}
	if _, n := rep.counts(); n != 0 || len(fwd.takeCalls()) != 0 {
		t.Fatal("a refused Txn reached a replica")
	}
	if _, err := r.Txn(context.Background(), Txn{}, shard.RequestID{}, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty Txn = %v; want ErrInvalid", err)
	}
	// Hash-tagged keys share a shard whatever follows the tag.
	if _, err := sameShard([][]byte{[]byte("{u1}.a"), []byte("{u1}.b"), []byte("x{u1}y")}, 64); err != nil {
		t.Fatalf("hash-tagged keys: %v", err)
	}
}

// A MultiPut with more keys of one shard than a shard transaction holds
// is refused whole, naming the shard and the limit, before any shard
// writes; at the limit it goes through.
func TestMultiPutBoundsKeysPerShard(t *testing.T) {
	st := testCluster(members5, shards4)
	rep := leaderReplica("n1")
	r, fwd := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep, 1: rep, 2: rep, 3: rep})
	puts := func(n int) []shard.TxnOp {
		ops := []shard.TxnOp{{Kind: shard.TxnPut, Key: keyFor(t, 1, st.ShardCount), Value: []byte("v")}}
		for i := range n {
			ops = append(ops, shard.TxnOp{Kind: shard.TxnPut, Key: []byte(fmt.Sprintf("{tag}.%d", i)), Value: []byte("v")})
		}
		return ops
	}
	_, err := r.MultiPut(context.Background(), puts(shard.MaxTxnOps+1), shard.RequestID{}, false)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("puts %d keys in shard", shard.MaxTxnOps+1)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("limit is %d", shard.MaxTxnOps)) {
		t.Fatalf("MultiPut of %d keys of one shard = %v; want ErrInvalid naming the count and the limit", shard.MaxTxnOps+1, err)
	}
	if _, n := rep.counts(); n != 0 || len(fwd.takeCalls()) != 0 {
		t.Fatal("a refused MultiPut reached a replica")
	}
	// At the limit the call reaches the replicas (whose fake apply has no
	// result for it: only that it got there matters here).
	if _, err := r.MultiPut(context.Background(), puts(shard.MaxTxnOps), shard.RequestID{}, false); errors.Is(err, ErrInvalid) {
		t.Fatalf("MultiPut of %d keys of one shard = %v; want it let through", shard.MaxTxnOps, err)
	}
	if _, n := rep.counts(); n == 0 {
		t.Fatal("a MultiPut at the limit did not reach a replica")
	}
}

func TestConditionalPutBecomesTxn(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount)
	rep := leaderReplica("n1")
	rep.proposeOut = shard.Result{Index: 9, Version: 9, Txn: true, Succeeded: false,
		Ops: []shard.OpResult{{Found: true, Value: shard.Value{Version: 5}}}}
	r, _ := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep})
	res, err := r.PutWith(context.Background(), key, []byte("v"),
		WriteOptions{Cond: &Condition{Kind: CondVersion, Version: 4}}, shard.RequestID{}, false)
	if err != nil || res.Succeeded || res.Version != 5 {
		t.Fatalf("PutWith = %+v, %v; want a failed condition reporting version 5", res, err)
	}
	c := rep.lastProposal(t)
	if c.Op != shard.OpTxn || len(c.Compares) != 1 || c.Compares[0].Version != 4 ||
		len(c.Then) != 1 || c.Then[0].Kind != shard.TxnPut || len(c.Else) != 1 || c.Else[0].Kind != shard.TxnGet {
		t.Fatalf("proposed %+v; want a Txn: version == 4 ? put : get", c)
	}
}

// A read that finds a value whose TTL ran out by the leader's clock commits
// a Noop (which expires it on every replica) before answering "not found".
func TestGetOfExpiredKeyExpiresItThroughTheLog(t *testing.T) {
	st := testCluster(members5, shards4)
	key := keyFor(t, 0, st.ShardCount)
	rep := leaderReplica("n1")
	rep.data[string(key)] = shard.Value{Data: []byte("v"), Version: 3, CreateVersion: 3, ExpiresAt: fixedNow.UnixNano()}
	rep.data["live"] = shard.Value{Data: []byte("v"), Version: 3, CreateVersion: 3, ExpiresAt: fixedNow.UnixNano() + 1}
	rep.proposeOut = shard.Result{Index: 4}
	r, _ := newTestRouter(t, Config{NodeID: "n1"}, st, fakeReplicas{0: rep})
	if _, err := r.Get(context.Background(), key, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an expired key = %v; want ErrNotFound", err)
	}
	if c := rep.lastProposal(t); c.Op != shard.OpNoop || c.ProposedAt != fixedNow.UnixNano() {
		t.Fatalf("proposed %+v; want a Noop stamped with the read's clock", c)
	}
	// A key not yet expired is read without a proposal.
	if sid := shard.Of([]byte("live"), st.ShardCount); sid == 0 {
		_, before := rep.counts()
		if _, err := r.Get(context.Background(), []byte("live"), false); err != nil {
			t.Fatal(err)
		}
		if _, after := rep.counts(); after != before {
			t.Fatal("a live key's read proposed something")
		}
	}
}

func TestMergePages(t *testing.T) {
	kv := func(keys ...string) []shard.KeyValue {
		var out []shard.KeyValue
		for _, k := range keys {
			out = append(out, shard.KeyValue{Key: []byte(k)})
		}
		return out
	}
	names := func(p ScanPage) string {
		var s []string
		for _, e := range p.KVs {
			s = append(s, string(e.Key))
		}
		return fmt.Sprintf("%s more=%v", strings.Join(s, ","), p.More)
	}
	for _, tc := range []struct {
		name  string
		pages []ScanPage
		limit int
		want  string
	}{
		{"all done", []ScanPage{{KVs: kv("b", "d")}, {KVs: kv("a", "c")}}, 10, "a,b,c,d more=false"},
		{"limit cuts", []ScanPage{{KVs: kv("b", "d")}, {KVs: kv("a", "c")}}, 3, "a,b,c more=true"},
		{"a shard with more bounds the page", []ScanPage{{KVs: kv("b", "c"), More: true}, {KVs: kv("a", "d", "e")}}, 10, "a,b,c more=true"},
		{"the smallest bound wins", []ScanPage{{KVs: kv("c", "f"), More: true}, {KVs: kv("a", "d"), More: true}, {KVs: kv("b", "z")}}, 10, "a,b,c,d more=true"},
		{"more without keys returns nothing", []ScanPage{{More: true}, {KVs: kv("a")}}, 10, " more=true"},
		{"empty", []ScanPage{{}, {}}, 10, " more=false"},
	} {
		if got := names(mergePages(tc.pages, tc.limit)); got != tc.want {
			t.Errorf("%s: %s; want %s", tc.name, got, tc.want)
		}
	}
}

// Paging through a Scan returns every key once, in order, whatever the
// page size and however the keys fall on shards.
func TestScanPagesCoverEveryKeyOnce(t *testing.T) {
	st := testCluster(members5, shards4)
	local := fakeReplicas{}
	for sid := range shard.ID(4) {
		local[sid] = leaderReplica("n1")
	}
	var want []string
	for i := range 500 {
		k := fmt.Sprintf("app/%04d", i)
		want = append(want, k)
		local[shard.Of([]byte(k), st.ShardCount)].data[k] = shard.Value{Data: []byte("v"), Version: 1, CreateVersion: 1}
	}
	local[0].data["other/1"] = shard.Value{Version: 1, CreateVersion: 1}
	r, _ := newTestRouter(t, Config{NodeID: "n1"}, st, local)
	for _, limit := range []int{1, 7, 100, 1000} {
		var got []string
		var after []byte
		for pages := 0; ; pages++ {
			if pages > 1000 {
				t.Fatalf("limit %d: no end after 1000 pages", limit)
			}
			p, err := r.Scan(context.Background(), ScanQuery{Prefix: []byte("app/"), After: after, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.KVs) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(p.KVs))
			}
			for _, e := range p.KVs {
				got = append(got, string(e.Key))
			}
			if !p.More {
				break
			}
			if len(p.KVs) > 0 {
				after = bytes.Clone(p.KVs[len(p.KVs)-1].Key)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("limit %d: scanned %d keys, want %d in order", limit, len(got), len(want))
		}
	}
}
