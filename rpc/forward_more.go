package rpc

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// Txn implements router.Forwarder.
func (f *Forwarder) Txn(ctx context.Context, addr string, t router.Txn, req shard.RequestID) (router.TxnResult, string, error) {
	c, err := f.client(addr)
	if err != nil {
		return router.TxnResult{}, "", err
	}
	var hdr metadata.MD
	resp, err := c.Txn(forwardCtx(ctx), TxnToProto(t, req), grpc.Header(&hdr))
	leader := first(hdr.Get(ringkvv1.MetadataLeader))
	if err != nil {
		return router.TxnResult{}, "", fromRemote(addr, leader, err)
	}
	now := time.Now()
	res := router.TxnResult{Succeeded: resp.GetSucceeded(), Duplicate: resp.GetDuplicate(), Version: resp.GetVersion()}
	for _, op := range resp.GetResponses() {
		var r shard.OpResult
		switch x := op.GetResult().(type) {
		case *ringkvv1.ResponseOp_Put:
			r = shard.OpResult{Found: true, Value: shard.Value{Version: x.Put.GetVersion()}}
		case *ringkvv1.ResponseOp_Delete:
			r = shard.OpResult{Found: x.Delete.GetDeleted(), Value: shard.Value{Version: x.Delete.GetVersion()}}
		case *ringkvv1.ResponseOp_Get:
			r = shard.OpResult{Found: x.Get.GetFound(), Value: valueOf(x.Get, now)}
		}
		res.Ops = append(res.Ops, r)
	}
	return res, leader, nil
}

func valueOf(kv *ringkvv1.KeyValue, now time.Time) shard.Value {
	return shard.Value{Data: kv.GetValue(), Version: kv.GetVersion(), CreateVersion: kv.GetCreateVersion(),
		ExpiresAt: expiresAt(kv.GetTtlMs(), now)}
}

// TxnToProto converts a transaction to its request message. The client
// library uses it too.
func TxnToProto(t router.Txn, req shard.RequestID) *ringkvv1.TxnRequest {
	out := &ringkvv1.TxnRequest{RequestId: toProtoID(req)}
	for _, c := range t.Compares {
		pc := &ringkvv1.Compare{Key: c.Key, Version: c.Version, Value: c.Value}
		switch c.Target {
		case shard.TargetVersion:
			pc.Target = ringkvv1.Compare_TARGET_VERSION
		case shard.TargetCreateVersion:
			pc.Target = ringkvv1.Compare_TARGET_CREATE_VERSION
		case shard.TargetValue:
			pc.Target = ringkvv1.Compare_TARGET_VALUE
		}
		switch c.Op {
		case shard.Equal:
			pc.Result = ringkvv1.Compare_RESULT_EQUAL
		case shard.NotEqual:
			pc.Result = ringkvv1.Compare_RESULT_NOT_EQUAL
		case shard.Less:
			pc.Result = ringkvv1.Compare_RESULT_LESS
		case shard.Greater:
			pc.Result = ringkvv1.Compare_RESULT_GREATER
		}
		out.Compare = append(out.Compare, pc)
	}
	out.Success = opsToProto(t.Then)
	out.Failure = opsToProto(t.Else)
	return out
}

func opsToProto(ops []shard.TxnOp) []*ringkvv1.RequestOp {
	var out []*ringkvv1.RequestOp
	for _, op := range ops {
		var p *ringkvv1.RequestOp
		switch op.Kind {
		case shard.TxnPut:
			p = &ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Put{Put: &ringkvv1.PutOp{
				Key: op.Key, Value: op.Value, TtlMs: int64(op.TTL / time.Millisecond)}}}
		case shard.TxnDelete:
			p = &ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Delete{Delete: &ringkvv1.DeleteOp{Key: op.Key}}}
		default:
			p = &ringkvv1.RequestOp{Op: &ringkvv1.RequestOp_Get{Get: &ringkvv1.GetOp{Key: op.Key}}}
		}
		out = append(out, p)
	}
	return out
}

// MultiGet implements router.Forwarder.
func (f *Forwarder) MultiGet(ctx context.Context, addr string, keys [][]byte) ([]router.GetItem, string, error) {
	c, err := f.client(addr)
	if err != nil {
		return nil, "", err
	}
	var hdr metadata.MD
	resp, err := c.MultiGet(forwardCtx(ctx), &ringkvv1.MultiGetRequest{Keys: keys}, grpc.Header(&hdr))
	leader := first(hdr.Get(ringkvv1.MetadataLeader))
	if err != nil {
		return nil, "", fromRemote(addr, leader, err)
	}
	now := time.Now()
	items := make([]router.GetItem, len(resp.GetKvs()))
	for i, kv := range resp.GetKvs() {
		items[i] = router.GetItem{Found: kv.GetFound(), Value: valueOf(kv, now)}
	}
	return items, leader, nil
}

// ScanShard implements router.Forwarder.
func (f *Forwarder) ScanShard(ctx context.Context, addr string, sid shard.ID, q router.ScanQuery) (router.ScanPage, string, error) {
	cc, err := f.conns.Conn(addr)
	if err != nil {
		return router.ScanPage{}, "", err
	}
	var hdr metadata.MD
	resp, err := ringkvv1.NewShardKVClient(cc).ScanShard(forwardCtx(ctx), &ringkvv1.ScanShardRequest{
		Shard: uint32(sid), Prefix: q.Prefix, StartAfter: q.After, Limit: uint32(q.Limit), KeysOnly: q.KeysOnly,
	}, grpc.Header(&hdr))
	leader := first(hdr.Get(ringkvv1.MetadataLeader))
	if err != nil {
		return router.ScanPage{}, "", fromRemote(addr, leader, err)
	}
	now := time.Now()
	page := router.ScanPage{More: resp.GetMore(), KVs: make([]shard.KeyValue, len(resp.GetKvs()))}
	for i, kv := range resp.GetKvs() {
		page.KVs[i] = shard.KeyValue{Key: kv.GetKey(), Value: valueOf(kv, now)}
	}
	return page, leader, nil
}

// ShardKVServer serves the internal per-shard reads of multi-shard calls.
type ShardKVServer struct {
	ringkvv1.UnimplementedShardKVServer
	store  Store
	limits Limits
}

// NewShardKVServer returns the ShardKV service over store.
func NewShardKVServer(store Store, limits Limits) *ShardKVServer {
	return &ShardKVServer{store: store, limits: limits.WithDefaults()}
}

// ScanShard implements ringkvv1.ShardKVServer.
func (s *ShardKVServer) ScanShard(ctx context.Context, req *ringkvv1.ScanShardRequest) (*ringkvv1.ScanShardResponse, error) {
	q, err := s.limits.scanQuery(req.GetPrefix(), req.GetStartAfter(), req.GetLimit(), req.GetKeysOnly())
	if err != nil {
		return nil, err
	}
	page, err := s.store.ScanShard(ctx, shard.ID(req.GetShard()), q, isForwarded(ctx))
	if err != nil {
		return nil, fail(ctx, err, true)
	}
	now := time.Now()
	resp := &ringkvv1.ScanShardResponse{More: page.More, Kvs: make([]*ringkvv1.KeyValue, len(page.KVs))}
	for i, e := range page.KVs {
		resp.Kvs[i] = keyValue(e.Key, true, e.Value, now)
	}
	return resp, nil
}
