package rpc

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// Limits of the multi-key calls.
const (
	// MaxBatchKeys bounds the keys of one MultiGet or MultiPut.
	MaxBatchKeys = 1000
	// DefaultScanLimit is a Scan page's size when the request names none.
	DefaultScanLimit = 1000
	// MaxScanLimit bounds a Scan page.
	MaxScanLimit = 10_000
	// maxTTL is shard.MaxTTL in milliseconds.
	maxTTLMillis = int64(shard.MaxTTL / time.Millisecond)
)

// checkWriteSize bounds the keys and values one command carries (a Txn, or
// a MultiPut): it must fit one Raft entry as large as the largest Put.
func (l Limits) checkWriteSize(what string, n int) error {
	if limit := l.MaxKeySize + l.MaxValueSize; n > limit {
		return status.Errorf(codes.InvalidArgument, "%s carries %d bytes of keys and values; the limit is %d bytes", what, n, limit)
	}
	return nil
}

func checkTTL(ms int64) (time.Duration, error) {
	if ms < 0 || ms > maxTTLMillis {
		return 0, status.Errorf(codes.InvalidArgument, "ttl_ms is %d; want 0 (none) to %d (10 years)", ms, maxTTLMillis)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// ttlMillis is the time left before expires, rounded up to a millisecond; 0
// when the key has no TTL.
func ttlMillis(expires int64, now time.Time) int64 {
	if expires == 0 {
		return 0
	}
	left := expires - now.UnixNano()
	return max(1, (left+int64(time.Millisecond)-1)/int64(time.Millisecond))
}

// expiresAt inverts ttlMillis for a value forwarded from another node.
func expiresAt(ttlMs int64, now time.Time) int64 {
	if ttlMs <= 0 {
		return 0
	}
	return now.UnixNano() + ttlMs*int64(time.Millisecond)
}

func condition(c *ringkvv1.Condition) *router.Condition {
	if c == nil {
		return nil
	}
	switch x := c.GetCondition().(type) {
	case *ringkvv1.Condition_Absent:
		if x.Absent {
			return &router.Condition{Kind: router.CondAbsent}
		}
		return &router.Condition{Kind: router.CondExists}
	case *ringkvv1.Condition_Version:
		return &router.Condition{Kind: router.CondVersion, Version: x.Version}
	case *ringkvv1.Condition_Value:
		return &router.Condition{Kind: router.CondValue, Value: x.Value}
	}
	return nil // an empty Condition message: no condition
}

func (s *KVServer) txnOp(op *ringkvv1.RequestOp, where string) (shard.TxnOp, int, error) {
	switch x := op.GetOp().(type) {
	case *ringkvv1.RequestOp_Put:
		if err := s.limits.checkKey(x.Put.GetKey()); err != nil {
			return shard.TxnOp{}, 0, prefixStatus(where, err)
		}
		if err := s.limits.checkValue(x.Put.GetValue()); err != nil {
			return shard.TxnOp{}, 0, prefixStatus(where, err)
		}
		ttl, err := checkTTL(x.Put.GetTtlMs())
		if err != nil {
			return shard.TxnOp{}, 0, prefixStatus(where, err)
		}
		return shard.TxnOp{Kind: shard.TxnPut, Key: x.Put.GetKey(), Value: x.Put.GetValue(), TTL: ttl},
			len(x.Put.GetKey()) + len(x.Put.GetValue()), nil
	case *ringkvv1.RequestOp_Delete:
		if err := s.limits.checkKey(x.Delete.GetKey()); err != nil {
			return shard.TxnOp{}, 0, prefixStatus(where, err)
		}
		return shard.TxnOp{Kind: shard.TxnDelete, Key: x.Delete.GetKey()}, len(x.Delete.GetKey()), nil
	case *ringkvv1.RequestOp_Get:
		if err := s.limits.checkKey(x.Get.GetKey()); err != nil {
			return shard.TxnOp{}, 0, prefixStatus(where, err)
		}
		return shard.TxnOp{Kind: shard.TxnGet, Key: x.Get.GetKey()}, len(x.Get.GetKey()), nil
	}
	return shard.TxnOp{}, 0, status.Errorf(codes.InvalidArgument, "%s: no put, delete or get set", where)
}

func prefixStatus(where string, err error) error {
	st, _ := status.FromError(err)
	return status.Errorf(st.Code(), "%s: %s", where, st.Message())
}

// txnFromProto converts and checks a TxnRequest.
func (s *KVServer) txnFromProto(req *ringkvv1.TxnRequest) (router.Txn, error) {
	var t router.Txn
	if n := len(req.GetCompare()) + len(req.GetSuccess()) + len(req.GetFailure()); n > shard.MaxTxnOps {
		return t, status.Errorf(codes.InvalidArgument, "transaction has %d compares and operations; the limit is %d", n, shard.MaxTxnOps)
	} else if n == 0 {
		return t, status.Error(codes.InvalidArgument, "transaction is empty: it needs at least one compare or operation")
	}
	size := 0
	for i, c := range req.GetCompare() {
		where := fmt.Sprintf("compare %d", i)
		if err := s.limits.checkKey(c.GetKey()); err != nil {
			return t, prefixStatus(where, err)
		}
		cmp := shard.Compare{Key: c.GetKey(), Version: c.GetVersion(), Value: c.GetValue()}
		switch c.GetTarget() {
		case ringkvv1.Compare_TARGET_VERSION:
			cmp.Target = shard.TargetVersion
		case ringkvv1.Compare_TARGET_CREATE_VERSION:
			cmp.Target = shard.TargetCreateVersion
		case ringkvv1.Compare_TARGET_VALUE:
			cmp.Target = shard.TargetValue
			if err := s.limits.checkValue(c.GetValue()); err != nil {
				return t, prefixStatus(where, err)
			}
		default:
			return t, status.Errorf(codes.InvalidArgument, "%s: target %v: want VERSION, CREATE_VERSION or VALUE", where, c.GetTarget())
		}
		switch c.GetResult() {
		case ringkvv1.Compare_RESULT_EQUAL:
			cmp.Op = shard.Equal
		case ringkvv1.Compare_RESULT_NOT_EQUAL:
			cmp.Op = shard.NotEqual
		case ringkvv1.Compare_RESULT_LESS:
			cmp.Op = shard.Less
		case ringkvv1.Compare_RESULT_GREATER:
			cmp.Op = shard.Greater
		default:
			return t, status.Errorf(codes.InvalidArgument, "%s: result %v: want EQUAL, NOT_EQUAL, LESS or GREATER", where, c.GetResult())
		}
		size += len(cmp.Key) + len(cmp.Value)
		t.Compares = append(t.Compares, cmp)
	}
	for b, ops := range [][]*ringkvv1.RequestOp{req.GetSuccess(), req.GetFailure()} {
		name := "success"
		if b == 1 {
			name = "failure"
		}
		for i, op := range ops {
			o, n, err := s.txnOp(op, fmt.Sprintf("%s %d", name, i))
			if err != nil {
				return t, err
			}
			size += n
			if b == 0 {
				t.Then = append(t.Then, o)
			} else {
				t.Else = append(t.Else, o)
			}
		}
	}
	return t, s.limits.checkWriteSize("transaction", size)
}

// responseOps converts a branch's results.
func responseOps(ops []shard.TxnOp, res []shard.OpResult, now time.Time) []*ringkvv1.ResponseOp {
	out := make([]*ringkvv1.ResponseOp, 0, len(res))
	for i, r := range res {
		var op shard.TxnOpKind
		if i < len(ops) {
			op = ops[i].Kind
		}
		switch op {
		case shard.TxnPut:
			out = append(out, &ringkvv1.ResponseOp{Result: &ringkvv1.ResponseOp_Put{
				Put: &ringkvv1.PutResponse{Version: r.Value.Version, Succeeded: true}}})
		case shard.TxnDelete:
			out = append(out, &ringkvv1.ResponseOp{Result: &ringkvv1.ResponseOp_Delete{
				Delete: &ringkvv1.DeleteResponse{Deleted: r.Found, Version: r.Value.Version, Succeeded: true}}})
		default:
			out = append(out, &ringkvv1.ResponseOp{Result: &ringkvv1.ResponseOp_Get{
				Get: keyValue(nil, r.Found, r.Value, now)}})
		}
	}
	return out
}

func keyValue(key []byte, found bool, v shard.Value, now time.Time) *ringkvv1.KeyValue {
	if !found {
		return &ringkvv1.KeyValue{Key: key}
	}
	return &ringkvv1.KeyValue{Key: key, Found: true, Value: v.Data, Version: v.Version,
		CreateVersion: v.CreateVersion, TtlMs: ttlMillis(v.ExpiresAt, now)}
}

// Txn implements ringkvv1.KVServer.
func (s *KVServer) Txn(ctx context.Context, req *ringkvv1.TxnRequest) (*ringkvv1.TxnResponse, error) {
	t, err := s.txnFromProto(req)
	if err != nil {
		return nil, err
	}
	rid, err := requestID(req.GetRequestId())
	if err != nil {
		return nil, err
	}
	res, err := s.store.Txn(ctx, t, rid, isForwarded(ctx))
	if err != nil {
		return nil, fail(ctx, err, len(rid.ClientID) > 0 || t.ReadOnly())
	}
	setLeader(ctx, res.Leader)
	branch := t.Then
	if !res.Succeeded {
		branch = t.Else
	}
	return &ringkvv1.TxnResponse{
		Succeeded: res.Succeeded,
		Responses: responseOps(branch, res.Ops, time.Now()),
		Version:   res.Version,
		Duplicate: res.Duplicate,
	}, nil
}

// MultiGet implements ringkvv1.KVServer.
func (s *KVServer) MultiGet(ctx context.Context, req *ringkvv1.MultiGetRequest) (*ringkvv1.MultiGetResponse, error) {
	keys := req.GetKeys()
	if len(keys) > MaxBatchKeys {
		return nil, status.Errorf(codes.InvalidArgument, "MultiGet of %d keys; the limit is %d", len(keys), MaxBatchKeys)
	}
	for i, k := range keys {
		if err := s.limits.checkKey(k); err != nil {
			return nil, prefixStatus(fmt.Sprintf("key %d", i), err)
		}
	}
	items, err := s.store.MultiGet(ctx, keys, isForwarded(ctx))
	if err != nil {
		return nil, fail(ctx, err, true)
	}
	now := time.Now()
	resp := &ringkvv1.MultiGetResponse{Kvs: make([]*ringkvv1.KeyValue, len(items))}
	for i, it := range items {
		resp.Kvs[i] = keyValue(keys[i], it.Found, it.Value, now)
	}
	return resp, nil
}

// MultiPut implements ringkvv1.KVServer.
func (s *KVServer) MultiPut(ctx context.Context, req *ringkvv1.MultiPutRequest) (*ringkvv1.MultiPutResponse, error) {
	if len(req.GetPuts()) > MaxBatchKeys {
		return nil, status.Errorf(codes.InvalidArgument, "MultiPut of %d keys; the limit is %d", len(req.GetPuts()), MaxBatchKeys)
	}
	puts := make([]shard.TxnOp, len(req.GetPuts()))
	size := 0
	for i, p := range req.GetPuts() {
		op, n, err := s.txnOp(&ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Put{Put: p}}, fmt.Sprintf("put %d", i))
		if err != nil {
			return nil, err
		}
		puts[i], size = op, size+n
	}
	if err := s.limits.checkWriteSize("MultiPut", size); err != nil {
		return nil, err
	}
	rid, err := requestID(req.GetRequestId())
	if err != nil {
		return nil, err
	}
	versions, err := s.store.MultiPut(ctx, puts, rid, isForwarded(ctx))
	if err != nil {
		return nil, fail(ctx, err, len(rid.ClientID) > 0)
	}
	return &ringkvv1.MultiPutResponse{Versions: versions}, nil
}

// pageTokenVersion is the first byte of a Scan page token: the token is
// this byte and the last key returned.
const pageTokenVersion = 1

// Scan implements ringkvv1.KVServer.
func (s *KVServer) Scan(ctx context.Context, req *ringkvv1.ScanRequest) (*ringkvv1.ScanResponse, error) {
	q, err := s.limits.scanQuery(req.GetPrefix(), req.GetStartAfter(), req.GetLimit(), req.GetKeysOnly())
	if err != nil {
		return nil, err
	}
	if tok := req.GetPageToken(); len(tok) > 0 {
		if tok[0] != pageTokenVersion || len(tok) > 1+s.limits.MaxKeySize {
			return nil, status.Error(codes.InvalidArgument, "page_token is not a token a Scan response returned")
		}
		q.After = tok[1:]
	}
	page, err := s.store.Scan(ctx, q)
	if err != nil {
		return nil, fail(ctx, err, true)
	}
	now := time.Now()
	resp := &ringkvv1.ScanResponse{Kvs: make([]*ringkvv1.KeyValue, len(page.KVs))}
	for i, kv := range page.KVs {
		resp.Kvs[i] = keyValue(kv.Key, true, kv.Value, now)
	}
	if page.More {
		last := q.After
		if len(page.KVs) > 0 {
			last = page.KVs[len(page.KVs)-1].Key
		}
		resp.NextPageToken = append([]byte{pageTokenVersion}, last...)
	}
	return resp, nil
}

func (l Limits) scanQuery(prefix, after []byte, limit uint32, keysOnly bool) (router.ScanQuery, error) {
	if len(prefix) > l.MaxKeySize {
		return router.ScanQuery{}, status.Errorf(codes.InvalidArgument, "prefix is %d bytes; the limit is %d bytes", len(prefix), l.MaxKeySize)
	}
	if len(after) > l.MaxKeySize {
		return router.ScanQuery{}, status.Errorf(codes.InvalidArgument, "start_after is %d bytes; the limit is %d bytes", len(after), l.MaxKeySize)
	}
	if limit > MaxScanLimit {
		return router.ScanQuery{}, status.Errorf(codes.InvalidArgument, "limit is %d; the maximum is %d", limit, MaxScanLimit)
	}
	if limit == 0 {
		limit = DefaultScanLimit
	}
	q := router.ScanQuery{Prefix: prefix, Limit: int(limit), KeysOnly: keysOnly}
	if len(after) > 0 {
		q.After = after
	}
	return q, nil
}
