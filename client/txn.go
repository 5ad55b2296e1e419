package client

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// Relation is how a Compare relates a key's state to its operand.
type Relation int

// The relations.
const (
	Equal Relation = iota + 1
	NotEqual
	Less
	Greater
)

// Compare is one condition of a Txn. Build it with VersionIs,
// CreateVersionIs or ValueIs.
type Compare struct{ pb *ringkvv1.Compare }

func compare(key []byte, target ringkvv1.Compare_Target, rel Relation) *ringkvv1.Compare {
	return &ringkvv1.Compare{Key: key, Target: target, Result: ringkvv1.Compare_Result(rel)}
}

// VersionIs compares key's version (the Raft index of its last write, 0 if
// it is missing) with version.
func VersionIs(key []byte, rel Relation, version uint64) Compare {
	c := compare(key, ringkvv1.Compare_TARGET_VERSION, rel)
	c.Version = version
	return Compare{c}
}

// CreateVersionIs compares key's create version (0 if it is missing).
func CreateVersionIs(key []byte, rel Relation, version uint64) Compare {
	c := compare(key, ringkvv1.Compare_TARGET_CREATE_VERSION, rel)
	c.Version = version
	return Compare{c}
}

// ValueIs compares key's value with value, as byte strings. It never holds
// for a missing key.
func ValueIs(key []byte, rel Relation, value []byte) Compare {
	c := compare(key, ringkvv1.Compare_TARGET_VALUE, rel)
	c.Value = value
	return Compare{c}
}

// Op is one operation of a Txn branch: OpPut, OpDelete or OpGet.
type Op struct{ pb *ringkvv1.RequestOp }

// OpPut sets key to value; ttl > 0 gives it a TTL as WithTTL does.
func OpPut(key, value []byte, ttl time.Duration) Op {
	return Op{&ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Put{Put: &ringkvv1.PutOp{
		Key: key, Value: value, TtlMs: int64((ttl + time.Millisecond - 1) / time.Millisecond)}}}}
}

// OpDelete removes key.
func OpDelete(key []byte) Op {
	return Op{&ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Delete{Delete: &ringkvv1.DeleteOp{Key: key}}}}
}

// OpGet reads key; it sees the branch's earlier writes.
func OpGet(key []byte) Op {
	return Op{&ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Get{Get: &ringkvv1.GetOp{Key: key}}}}
}

// Txn is an atomic transaction on the keys of one shard: if every compare
// of If holds, Then runs, else Else. Keys of different shards are refused
// with ErrInvalidArgument; give keys that change together a common hash tag
// ("{user1}.a", "{user1}.b").
type Txn struct {
	If   []Compare
	Then []Op
	Else []Op
}

// TxnResult is a Txn's outcome.
type TxnResult struct {
	// Succeeded reports whether every compare held (Then ran).
	Succeeded bool
	// Version is the Raft index the Txn committed at: the new version of
	// every key it wrote.
	Version uint64
	// Results holds one entry per operation of the branch that ran: for a
	// get, the value read (Found false if missing); for a put, Found true;
	// for a delete, Found tells whether a key was removed.
	Results []TxnOpResult
	// Duplicate reports that a retry found the Txn applied by an earlier
	// attempt: Succeeded and Version are that attempt's, Results is empty.
	Duplicate bool
}

// TxnOpResult is the outcome of one operation.
type TxnOpResult struct {
	Found bool
	Value Value
}

// Txn runs t atomically. It is exactly-once like Put.
func (c *Client) Txn(ctx context.Context, t Txn) (TxnResult, error) {
	req := &ringkvv1.TxnRequest{}
	var key []byte
	for _, cmp := range t.If {
		req.Compare = append(req.Compare, cmp.pb)
		key = firstKey(key, cmp.pb.GetKey())
	}
	for _, op := range t.Then {
		req.Success = append(req.Success, op.pb)
		key = firstKey(key, opKey(op.pb))
	}
	for _, op := range t.Else {
		req.Failure = append(req.Failure, op.pb)
		key = firstKey(key, opKey(op.pb))
	}
	id := c.seq.begin()
	defer c.seq.end(id.GetSeq())
	req.RequestId = id
	var resp *ringkvv1.TxnResponse
	err := c.invoke(ctx, request{op: "txn", keyed: key != nil, key: key,
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewKVClient(cc).Txn(ctx, req, opts...)
			return err
		}})
	if err != nil {
		return TxnResult{}, err
	}
	out := TxnResult{Succeeded: resp.GetSucceeded(), Version: resp.GetVersion(), Duplicate: resp.GetDuplicate()}
	for _, r := range resp.GetResponses() {
		switch x := r.GetResult().(type) {
		case *ringkvv1.ResponseOp_Put:
			out.Results = append(out.Results, TxnOpResult{Found: true, Value: Value{Version: x.Put.GetVersion()}})
		case *ringkvv1.ResponseOp_Delete:
			out.Results = append(out.Results, TxnOpResult{Found: x.Delete.GetDeleted(), Value: Value{Version: x.Delete.GetVersion()}})
		case *ringkvv1.ResponseOp_Get:
			out.Results = append(out.Results, TxnOpResult{Found: x.Get.GetFound(), Value: valueOf(x.Get)})
		}
	}
	return out, nil
}

func firstKey(have, k []byte) []byte {
	if have != nil || len(k) == 0 {
		return have
	}
	return k
}

func opKey(op *ringkvv1.RequestOp) []byte {
	switch x := op.GetOp().(type) {
	case *ringkvv1.RequestOp_Put:
		return x.Put.GetKey()
	case *ringkvv1.RequestOp_Delete:
		return x.Delete.GetKey()
	case *ringkvv1.RequestOp_Get:
		return x.Get.GetKey()
	}
	return nil
}

func valueOf(kv *ringkvv1.KeyValue) Value {
	return Value{Data: kv.GetValue(), Version: kv.GetVersion(), CreateVersion: kv.GetCreateVersion(),
		TTL: time.Duration(kv.GetTtlMs()) * time.Millisecond}
}

// multiFanOut bounds the shards a MultiGet or MultiPut talks to at once.
const multiFanOut = 16

// byShard groups the indexes of keys by shard under the cached map.
func (c *Client) byShard(keys [][]byte) map[shard.ID][]int {
	count := c.smap.Load().count
	groups := map[shard.ID][]int{}
	for i, k := range keys {
		sid := shard.Of(k, count)
		groups[sid] = append(groups[sid], i)
	}
	return groups
}

// KeyValue is a key and its value, as MultiGet and Scan return them.
type KeyValue struct {
	Key []byte
	// Found is false for a key MultiGet did not find.
	Found bool
	Value
}

// MultiGet reads keys, each shard's keys in one request to its leader, the
// shards in parallel. Each key's read is linearizable; keys of different
// shards are not read at one instant. The result has one entry per key, in
// order.
func (c *Client) MultiGet(ctx context.Context, keys [][]byte) ([]KeyValue, error) {
	out := make([]KeyValue, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(multiFanOut)
	for _, idx := range c.byShard(keys) {
		g.Go(func() error {
			sub := make([][]byte, len(idx))
			for j, i := range idx {
				sub[j] = keys[i]
			}
			var resp *ringkvv1.MultiGetResponse
			err := c.invoke(gctx, request{op: "multiget", keyed: true, key: sub[0],
				call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
					var err error
					resp, err = ringkvv1.NewKVClient(cc).MultiGet(ctx, &ringkvv1.MultiGetRequest{Keys: sub}, opts...)
					return err
				}})
			if err != nil {
				return err
			}
			for j, kv := range resp.GetKvs() {
				if j < len(idx) {
					out[idx[j]] = KeyValue{Key: keys[idx[j]], Found: kv.GetFound(), Value: valueOf(kv)}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// MultiPut writes keys[i] = values[i], each shard's keys atomically in one
// request to its leader, the shards in parallel (not atomic across shards).
// It returns each key's new version. On error some shards may have applied
// their keys; each shard's part is exactly-once across retries as Put is.
func (c *Client) MultiPut(ctx context.Context, keys, values [][]byte) ([]uint64, error) {
	if len(keys) != len(values) {
		return nil, fmt.Errorf("ringkv: multiput: %w: %d keys but %d values", ErrInvalidArgument, len(keys), len(values))
	}
	id := c.seq.begin()
	defer c.seq.end(id.GetSeq())
	out := make([]uint64, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(multiFanOut)
	for _, idx := range c.byShard(keys) {
		g.Go(func() error {
			req := &ringkvv1.MultiPutRequest{RequestId: id}
			for _, i := range idx {
				req.Puts = append(req.Puts, &ringkvv1.PutOp{Key: keys[i], Value: values[i]})
			}
			var resp *ringkvv1.MultiPutResponse
			err := c.invoke(gctx, request{op: "multiput", keyed: true, key: keys[idx[0]],
				call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
					var err error
					resp, err = ringkvv1.NewKVClient(cc).MultiPut(ctx, req, opts...)
					return err
				}})
			if err != nil {
				return err
			}
			for j, v := range resp.GetVersions() {
				if j < len(idx) {
					out[idx[j]] = v
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// ScanOptions select a Scan's keys.
type ScanOptions struct {
	// StartAfter starts after this key (nil: from the first key of the
	// prefix).
	StartAfter []byte
	// PageSize is how many keys one request fetches: 0 means the server's
	// default (1,000), at most 10,000.
	PageSize int
	// KeysOnly leaves values out.
	KeysOnly bool
}

// ScanPage fetches one page of the keys with prefix after the position
// token (nil: the start, or opts.StartAfter), and returns the token of the
// next page, nil when the scan is complete. A page may hold fewer keys
// than PageSize before the end.
func (c *Client) ScanPage(ctx context.Context, prefix []byte, token []byte, opts ScanOptions) ([]KeyValue, []byte, error) {
	req := &ringkvv1.ScanRequest{Prefix: prefix, StartAfter: opts.StartAfter, PageToken: token,
		Limit: uint32(max(0, opts.PageSize)), KeysOnly: opts.KeysOnly}
	var resp *ringkvv1.ScanResponse
	err := c.invoke(ctx, request{op: "scan",
		call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			var err error
			resp, err = ringkvv1.NewKVClient(cc).Scan(ctx, req, opts...)
			return err
		}})
	if err != nil {
		return nil, nil, err
	}
	out := make([]KeyValue, len(resp.GetKvs()))
	for i, kv := range resp.GetKvs() {
		out[i] = KeyValue{Key: kv.GetKey(), Found: true, Value: valueOf(kv)}
	}
	next := resp.GetNextPageToken()
	if len(next) == 0 {
		next = nil
	}
	return out, next, nil
}

// Scan iterates over the keys with prefix in key order, across all shards,
// fetching a page at a time; it stops at the first error, which it yields.
// Each page is linearizable per shard; the scan as a whole is not one
// snapshot: keys written while it runs may or may not appear.
func (c *Client) Scan(ctx context.Context, prefix []byte, opts ScanOptions) iter.Seq2[KeyValue, error] {
	return func(yield func(KeyValue, error) bool) {
		var token []byte
		var last []byte
		for {
			page, next, err := c.ScanPage(ctx, prefix, token, opts)
			if err != nil {
				yield(KeyValue{}, err)
				return
			}
			for _, kv := range page {
				if last != nil && bytes.Compare(kv.Key, last) <= 0 {
					continue // never yield a key twice, whatever a node answers
				}
				last = kv.Key
				if !yield(kv, nil) {
					return
				}
			}
			if next == nil {
				return
			}
			token = next
		}
	}
}
