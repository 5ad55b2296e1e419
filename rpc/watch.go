package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

func watchResponse(b router.WatchBatch) *ringkvv1.WatchResponse {
	resp := &ringkvv1.WatchResponse{Shard: uint32(b.Shard), Position: b.Position,
		Events: make([]*ringkvv1.Event, len(b.Events))}
	for i, e := range b.Events {
		pe := &ringkvv1.Event{Type: ringkvv1.Event_TYPE_PUT, Key: e.Key, Value: e.Data,
			Version: e.Version, CreateVersion: e.CreateVersion}
		if e.Type == shard.EventDelete {
			pe.Type, pe.Value = ringkvv1.Event_TYPE_DELETE, nil
		}
		resp.Events[i] = pe
	}
	return resp
}

func (l Limits) watchQuery(key []byte, prefix bool) (router.WatchQuery, error) {
	if !prefix {
		if err := l.checkKey(key); err != nil {
			return router.WatchQuery{}, err
		}
	} else if len(key) > l.MaxKeySize {
		return router.WatchQuery{}, status.Errorf(codes.InvalidArgument, "prefix is %d bytes; the limit is %d bytes", len(key), l.MaxKeySize)
	}
	return router.WatchQuery{Key: key, Prefix: prefix}, nil
}

// Watch implements ringkvv1.KVServer.
func (s *KVServer) Watch(req *ringkvv1.WatchRequest, stream ringkvv1.KV_WatchServer) error {
	q, err := s.limits.watchQuery(req.GetKey(), req.GetPrefix())
	if err != nil {
		return err
	}
	start := make(map[shard.ID]uint64, len(req.GetStartAfter()))
	for sid, pos := range req.GetStartAfter() {
		start[shard.ID(sid)] = pos
	}
	if len(start) > shard.MaxCount {
		return status.Errorf(codes.InvalidArgument, "start_after names %d shards; a cluster has at most %d", len(start), shard.MaxCount)
	}
	err = s.store.Watch(stream.Context(), q, start, func(b router.WatchBatch) error {
		return stream.Send(watchResponse(b))
	})
	return watchStatus(stream.Context(), err)
}

// watchStatus maps the error that ended a watch.
func watchStatus(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, shard.ErrCompacted):
		return status.Error(codes.OutOfRange, "the watch fell behind the events nodes keep: "+err.Error()+
			"; read the current state and watch again from its version")
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	return toStatus(err)
}

// WatchShard implements ringkvv1.ShardKVServer.
func (s *ShardKVServer) WatchShard(req *ringkvv1.WatchShardRequest, stream ringkvv1.ShardKV_WatchShardServer) error {
	q, err := s.limits.watchQuery(req.GetKey(), req.GetPrefix())
	if err != nil {
		return err
	}
	err = s.store.WatchShard(stream.Context(), shard.ID(req.GetShard()), q, req.GetAfter(), req.GetFromNow(),
		func(b router.WatchBatch) error { return stream.Send(watchResponse(b)) })
	return watchStatus(stream.Context(), err)
}

// WatchShard implements router.Forwarder.
func (f *Forwarder) WatchShard(ctx context.Context, addr string, sid shard.ID, q router.WatchQuery, after uint64, fromNow bool, recv func(router.WatchBatch) error) error {
	cc, err := f.conns.Conn(addr)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", router.ErrUnreachable, addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ringkvv1.NewShardKVClient(cc).WatchShard(forwardCtx(ctx), &ringkvv1.WatchShardRequest{
		Shard: uint32(sid), Key: q.Key, Prefix: q.Prefix, After: after, FromNow: fromNow})
	if err != nil {
		return fromRemote(addr, "", err)
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return fmt.Errorf("watch of shard %d on %s ended", sid, addr)
		}
		if err != nil {
			if status.Code(err) == codes.OutOfRange {
				return fmt.Errorf("%s: %w: %s", addr, shard.ErrCompacted, status.Convert(err).Message())
			}
			return fromRemote(addr, "", err)
		}
		b := router.WatchBatch{Shard: shard.ID(resp.GetShard()), Position: resp.GetPosition()}
		for _, e := range resp.GetEvents() {
			ev := shard.Event{Type: shard.EventPut, Key: e.GetKey(),
				Value: shard.Value{Data: e.GetValue(), Version: e.GetVersion(), CreateVersion: e.GetCreateVersion()}}
			if e.GetType() == ringkvv1.Event_TYPE_DELETE {
				ev.Type = shard.EventDelete
			}
			b.Events = append(b.Events, ev)
		}
		if err := recv(b); err != nil {
			return err
		}
	}
}
