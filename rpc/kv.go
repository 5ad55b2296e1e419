package rpc

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// Store is what the KV service serves from; *router.Router implements it.
type Store interface {
	Get(ctx context.Context, key []byte, forwarded bool) (router.GetResult, error)
	PutWith(ctx context.Context, key, value []byte, opts router.WriteOptions, req shard.RequestID, forwarded bool) (router.WriteResult, error)
	DeleteWith(ctx context.Context, key []byte, opts router.WriteOptions, req shard.RequestID, forwarded bool) (router.WriteResult, error)
	Txn(ctx context.Context, t router.Txn, req shard.RequestID, forwarded bool) (router.TxnResult, error)
	MultiGet(ctx context.Context, keys [][]byte, forwarded bool) ([]router.GetItem, error)
	MultiPut(ctx context.Context, puts []shard.TxnOp, req shard.RequestID, forwarded bool) ([]uint64, error)
	Scan(ctx context.Context, q router.ScanQuery) (router.ScanPage, error)
	ScanShard(ctx context.Context, sid shard.ID, q router.ScanQuery, forwarded bool) (router.ScanPage, error)
	Watch(ctx context.Context, q router.WatchQuery, start map[shard.ID]uint64, send func(router.WatchBatch) error) error
	WatchShard(ctx context.Context, sid shard.ID, q router.WatchQuery, after uint64, fromNow bool, send func(router.WatchBatch) error) error
}

// KVServer implements the public KV service.
type KVServer struct {
	ringkvv1.UnimplementedKVServer
	store  Store
	limits Limits
}

// NewKVServer returns a KV service backed by store.
func NewKVServer(store Store, limits Limits) *KVServer {
	return &KVServer{store: store, limits: limits.WithDefaults()}
}

// Get implements ringkvv1.KVServer.
func (s *KVServer) Get(ctx context.Context, req *ringkvv1.GetRequest) (*ringkvv1.GetResponse, error) {
	if err := s.limits.checkKey(req.GetKey()); err != nil {
		return nil, err
	}
	res, err := s.store.Get(ctx, req.GetKey(), isForwarded(ctx))
	setLeader(ctx, res.Leader)
	if err != nil {
		return nil, fail(ctx, err, true)
	}
	return &ringkvv1.GetResponse{
		Value:         res.Value.Data,
		Version:       res.Value.Version,
		CreateVersion: res.Value.CreateVersion,
		TtlMs:         ttlMillis(res.Value.ExpiresAt, time.Now()),
	}, nil
}

// Put implements ringkvv1.KVServer.
func (s *KVServer) Put(ctx context.Context, req *ringkvv1.PutRequest) (*ringkvv1.PutResponse, error) {
	if err := s.limits.checkKey(req.GetKey()); err != nil {
		return nil, err
	}
	if err := s.limits.checkValue(req.GetValue()); err != nil {
		return nil, err
	}
	ttl, err := checkTTL(req.GetTtlMs())
	if err != nil {
		return nil, err
	}
	opts := router.WriteOptions{Cond: condition(req.GetCondition()), TTL: ttl}
	if opts.Cond != nil && opts.Cond.Kind == router.CondValue {
		if err := s.limits.checkValue(opts.Cond.Value); err != nil {
			return nil, prefixStatus("condition", err)
		}
	}
	rid, err := requestID(req.GetRequestId())
	if err != nil {
		return nil, err
	}
	res, err := s.store.PutWith(ctx, req.GetKey(), req.GetValue(), opts, rid, isForwarded(ctx))
	if err != nil {
		return nil, fail(ctx, err, len(rid.ClientID) > 0)
	}
	setLeader(ctx, res.Leader)
	return &ringkvv1.PutResponse{Version: res.Version, Succeeded: res.Succeeded}, nil
}

// Delete implements ringkvv1.KVServer.
func (s *KVServer) Delete(ctx context.Context, req *ringkvv1.DeleteRequest) (*ringkvv1.DeleteResponse, error) {
	if err := s.limits.checkKey(req.GetKey()); err != nil {
		return nil, err
	}
	rid, err := requestID(req.GetRequestId())
	if err != nil {
		return nil, err
	}
	opts := router.WriteOptions{Cond: condition(req.GetCondition())}
	if opts.Cond != nil && opts.Cond.Kind == router.CondValue {
		if err := s.limits.checkValue(opts.Cond.Value); err != nil {
			return nil, prefixStatus("condition", err)
		}
	}
	res, err := s.store.DeleteWith(ctx, req.GetKey(), opts, rid, isForwarded(ctx))
	if err != nil {
		return nil, fail(ctx, err, len(rid.ClientID) > 0)
	}
	setLeader(ctx, res.Leader)
	return &ringkvv1.DeleteResponse{Deleted: res.Existed && res.Succeeded, Version: res.Version, Succeeded: res.Succeeded}, nil
}

// fail converts err and, when it names a shard leader, passes the hint to
// the caller in the response header. retrySafe tells whether the request
// may be retried even if it took effect: reads, and writes that carry a
// request ID. A write without one whose outcome is unknown must not be
// answered with Unavailable, which means "retry".
func fail(ctx context.Context, err error, retrySafe bool) error {
	if hint := leaderHint(err); hint != "" {
		setLeader(ctx, hint)
	}
	if !retrySafe && errors.Is(err, replication.ErrOutcomeUnknown) {
		return status.Error(codes.Unknown, "the write may or may not have been applied; "+
			"send a request_id to make retries safe: "+err.Error())
	}
	return toStatus(err)
}

func requestID(r *ringkvv1.RequestID) (shard.RequestID, error) {
	if r == nil {
		return shard.RequestID{}, nil
	}
	if err := checkClientID(r.GetClientId()); err != nil {
		return shard.RequestID{}, err
	}
	return shard.RequestID{ClientID: r.GetClientId(), Seq: r.GetSeq(), AckedBelow: r.GetAckedBelow()}, nil
}

func isForwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(ringkvv1.MetadataForwarded)) > 0
}

func setLeader(ctx context.Context, leader string) {
	if leader == "" {
		return
	}
	// SetHeader fails only if headers were already sent, which cannot happen
	// before a unary handler returns.
	_ = grpc.SetHeader(ctx, metadata.Pairs(ringkvv1.MetadataLeader, leader))
}
