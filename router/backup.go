package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ringkv/ringkv/shard"
)

// ErrImageInterrupted: a shard image stream broke after its first chunk
// was sent (the leader stopped, a forwarding hop failed). It is never
// retried on another node, because the receiver already has part of the
// image: the caller starts the shard over.
var ErrImageInterrupted = errors.New("shard image stream interrupted")

// imageChunkBytes bounds a chunk of an image, counting each record's keys
// and values and imageRecordOverhead for its encoding; a record larger
// than that goes alone.
const (
	imageChunkBytes     = 256 << 10
	imageRecordOverhead = 24
)

// ImageReplica is a replica that can take a point-in-time image of its
// state machine; the node's replicas implement it besides Replica.
type ImageReplica interface {
	// Image captures the state machine now, cheaply (see
	// shard.StateMachine.Snapshot). The caller releases it.
	Image() (*shard.Snapshot, error)
}

// ImageForwarder streams a shard image from another node, marked as
// forwarded; the Forwarder given to New implements it besides Forwarder.
// It returns the ID of the node that served it, and errors as Forwarder
// calls do.
type ImageForwarder interface {
	ShardImage(ctx context.Context, addr string, sid shard.ID, send func(ImageChunk) error) (string, error)
}

// ShardImageInfo describes a shard image.
type ShardImageInfo struct {
	Shard shard.ID
	// ShardCount is the cluster's shard count.
	ShardCount uint32
	// Index is the Raft index of the image.
	Index uint64
	// TakenAt is when the image was taken, by the leader's clock.
	TakenAt time.Time
	// Leader is the ID of the node that took the image.
	Leader string
}

// ImageRecord is one key of an image.
type ImageRecord struct {
	Key, Value []byte
	// TTL is the time the key had left when the image was taken; 0: none.
	TTL time.Duration
}

// ImageChunk is one piece of a shard image stream: the first carries
// Info, the last has End set with the counts of the whole stream, and any
// may carry records.
type ImageChunk struct {
	Info    *ShardImageInfo
	Records []ImageRecord
	End     bool
	// Count and Bytes, on the last chunk: the records sent and the size of
	// their keys and values.
	Count, Bytes uint64
}

// ShardImage streams the keys of shard sid as of one linearizable instant
// to send: on the shard's leader, after a read barrier, it takes an image
// of the state machine and sends its keys in key order with their values
// and remaining TTLs, leaving out keys whose TTL has run out; the shard
// keeps applying writes meanwhile. A node that does not lead the shard
// forwards the request (once, like every request). Client sessions,
// versions and event history are not part of the image.
//
// Errors before the first chunk are those of any read (ErrNoLeader, ...);
// once a chunk was sent, a broken stream is ErrImageInterrupted. The chunks
// passed to send are valid only during the call.
func (r *Router) ShardImage(ctx context.Context, sid shard.ID, forwarded bool, send func(ImageChunk) error) error {
	st := r.meta.Current()
	if !st.Initialized() {
		return ErrNotReady
	}
	if uint32(sid) >= st.ShardCount {
		return fmt.Errorf("%w: shard %d of %d", ErrInvalid, sid, st.ShardCount)
	}
	started := false
	_, err := r.routeShard(ctx, st, sid, forwarded,
		func(rep Replica) error {
			ir, ok := rep.(ImageReplica)
			if !ok {
				return fmt.Errorf("replica of shard %d (%T) cannot take images", sid, rep)
			}
			var snap *shard.Snapshot
			var imgErr error
			var now int64
			err := r.readLocal(ctx, rep, func(n int64) bool {
				now = n
				snap, imgErr = ir.Image()
				return false
			})
			if err == nil {
				err = imgErr
			}
			if err != nil {
				return err
			}
			defer snap.Release()
			started = true
			info := &ShardImageInfo{Shard: sid, ShardCount: st.ShardCount, Index: snap.Index(),
				TakenAt: time.Unix(0, now), Leader: r.cfg.NodeID}
			if err := sendImage(snap, info, now, send); err != nil {
				return fmt.Errorf("%w: %w", ErrImageInterrupted, err)
			}
			return nil
		},
		func(addr string) (string, error) {
			fwd, ok := r.fwd.(ImageForwarder)
			if !ok {
				return "", fmt.Errorf("forwarder %T cannot stream shard images", r.fwd)
			}
			leader, err := fwd.ShardImage(ctx, addr, sid, func(c ImageChunk) error {
				started = true
				return send(c)
			})
			if err != nil && started && !errors.Is(err, ErrImageInterrupted) {
				// Keep the cause's text but not its identity: a broken
				// stream must not be retried elsewhere.
				err = fmt.Errorf("%w: from %s: %v", ErrImageInterrupted, addr, err)
			}
			return leader, err
		})
	return err
}

// sendImage sends snap's live keys in chunks, then the end.
func sendImage(snap *shard.Snapshot, info *ShardImageInfo, now int64, send func(ImageChunk) error) error {
	chunk := ImageChunk{Info: info}
	var size int
	var count, total uint64
	var err error
	if aerr := snap.Ascend(func(kv shard.KeyValue) bool {
		var ttl time.Duration
		if kv.ExpiresAt != 0 {
			if kv.Expired(now) {
				return true
			}
			ttl = time.Duration(kv.ExpiresAt - now)
		}
		// Cut the chunk before a record that would overfill it, so that a
		// chunk is either at most imageChunkBytes or one record alone: it
		// then fits any message that fits the record (a forwarding node
		// receives at most the largest key and value, plus 64 KiB).
		n := len(kv.Key) + len(kv.Data)
		if len(chunk.Records) > 0 && size+n+imageRecordOverhead > imageChunkBytes {
			if err = send(chunk); err != nil {
				return false
			}
			chunk = ImageChunk{Records: chunk.Records[:0]}
			size = 0
		}
		chunk.Records = append(chunk.Records, ImageRecord{Key: kv.Key, Value: kv.Data, TTL: ttl})
		size += n + imageRecordOverhead
		count++
		total += uint64(n)
		return true
	}); aerr != nil {
		return aerr
	}
	if err != nil {
		return err
	}
	chunk.End, chunk.Count, chunk.Bytes = true, count, total
	return send(chunk)
}
