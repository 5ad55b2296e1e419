package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

// ImageStore is what the Backup service serves from; *router.Router
// implements it.
type ImageStore interface {
	ShardImage(ctx context.Context, sid shard.ID, forwarded bool, send func(router.ImageChunk) error) error
}

// BackupServer implements the Backup service.
type BackupServer struct {
	ringkvv1.UnimplementedBackupServer
	store ImageStore
}

// NewBackupServer returns the Backup service over store.
func NewBackupServer(store ImageStore) *BackupServer {
	return &BackupServer{store: store}
}

var _ router.ImageForwarder = (*Forwarder)(nil)

// SnapshotShard implements ringkvv1.BackupServer.
func (s *BackupServer) SnapshotShard(req *ringkvv1.SnapshotShardRequest, stream ringkvv1.Backup_SnapshotShardServer) error {
	ctx := stream.Context()
	resp := &ringkvv1.SnapshotShardResponse{}
	err := s.store.ShardImage(ctx, shard.ID(req.GetShard()), isForwarded(ctx), func(c router.ImageChunk) error {
		resp.Reset()
		if c.Info != nil {
			resp.Header = &ringkvv1.SnapshotHeader{Shard: uint32(c.Info.Shard), ShardCount: c.Info.ShardCount,
				AppliedIndex: c.Info.Index, TakenAtUnixNano: c.Info.TakenAt.UnixNano(), Leader: c.Info.Leader}
		}
		resp.Records = make([]*ringkvv1.SnapshotRecord, len(c.Records))
		for i, r := range c.Records {
			resp.Records[i] = &ringkvv1.SnapshotRecord{Key: r.Key, Value: r.Value, TtlMs: ttlMillisOf(r.TTL)}
		}
		if c.End {
			resp.Trailer = &ringkvv1.SnapshotTrailer{Records: c.Count, Bytes: c.Bytes}
		}
		return stream.Send(resp)
	})
	return imageStatus(ctx, stream, err)
}

// ttlMillisOf is d in milliseconds, rounded up; 0 for none.
func ttlMillisOf(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// imageStatus maps the error that ended an image stream: a stream broken
// after its start is Aborted (start the shard over), and a leader hint
// goes into the header, as for unary calls.
func imageStatus(ctx context.Context, stream grpc.ServerStream, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, router.ErrImageInterrupted):
		return status.Error(codes.Aborted, err.Error())
	}
	if hint := leaderHint(err); hint != "" {
		// Fails only if headers were sent, which a message would have done;
		// then the error is ErrImageInterrupted, handled above.
		_ = stream.SetHeader(metadata.Pairs(ringkvv1.MetadataLeader, hint))
	}
	return toStatus(err)
}

// ShardImage implements router.ImageForwarder.
func (f *Forwarder) ShardImage(ctx context.Context, addr string, sid shard.ID, send func(router.ImageChunk) error) (string, error) {
	cc, err := f.conns.Conn(addr)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", router.ErrUnreachable, addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var hdr metadata.MD
	stream, err := ringkvv1.NewBackupClient(cc).SnapshotShard(forwardCtx(ctx),
		&ringkvv1.SnapshotShardRequest{Shard: uint32(sid)}, grpc.Header(&hdr))
	if err != nil {
		return "", fromRemote(addr, "", err)
	}
	var leader string
	var chunk router.ImageChunk
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return leader, fmt.Errorf("%w: %s ended the stream of shard %d before its trailer", router.ErrImageInterrupted, addr, sid)
		}
		if err != nil {
			if leader == "" {
				leader = first(hdr.Get(ringkvv1.MetadataLeader))
			}
			if status.Code(err) == codes.Aborted {
				return leader, fmt.Errorf("%w: %s: %s", router.ErrImageInterrupted, addr, status.Convert(err).Message())
			}
			return leader, fromRemote(addr, leader, err)
		}
		chunk = router.ImageChunk{Records: chunk.Records[:0]}
		if h := resp.GetHeader(); h != nil {
			leader = h.GetLeader()
			chunk.Info = &router.ShardImageInfo{Shard: shard.ID(h.GetShard()), ShardCount: h.GetShardCount(),
				Index: h.GetAppliedIndex(), TakenAt: time.Unix(0, h.GetTakenAtUnixNano()), Leader: h.GetLeader()}
		}
		for _, r := range resp.GetRecords() {
			chunk.Records = append(chunk.Records, router.ImageRecord{Key: r.GetKey(), Value: r.GetValue(),
				TTL: time.Duration(r.GetTtlMs()) * time.Millisecond})
		}
		if t := resp.GetTrailer(); t != nil {
			chunk.End, chunk.Count, chunk.Bytes = true, t.GetRecords(), t.GetBytes()
		}
		if err := send(chunk); err != nil {
			return leader, err
		}
		if chunk.End {
			return leader, nil
		}
	}
}
