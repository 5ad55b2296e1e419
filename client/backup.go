package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/backup"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// ErrNotEmpty means RestoreSnapshot found keys in the target cluster and
// was not told to write over them (RestoreOptions.Force), and wrote
// nothing.
var ErrNotEmpty = errors.New("ringkv: the target cluster is not empty")

// Restore batching: one MultiPut request carries the keys of one target
// shard, at most restoreBatchKeys of them and about restoreBatchBytes of
// keys and values (a larger record goes alone); at most restorePending
// bytes wait in batches, and restoreInFlight requests run at once.
const (
	restoreBatchKeys  = shard.MaxTxnOps // a shard's part of a MultiPut is one Txn
	restoreBatchBytes = 512 << 10
	restorePending    = 16 << 20
	restoreInFlight   = 8
	// snapshotMaxMessage bounds a SnapshotShard message.
	snapshotMaxMessage = 64 << 20
)

// SaveProgress reports a SaveSnapshot after each shard.
type SaveProgress struct {
	// Shard is the shard just saved, of Shards.
	Shard, Shards uint32
	// ShardRecords is the number of keys of that shard; Records and Bytes
	// count the keys and the file bytes written so far.
	ShardRecords, Records uint64
	Bytes                 int64
}

// SaveSnapshot writes a backup of the whole cluster to w in the format of
// package backup: each shard's keys, values and remaining TTLs as of one
// linearizable instant of that shard (taken on its leader after a read
// barrier; shards are taken one after another, not at one instant). It
// calls progress, when not nil, after each shard, and returns the summary
// of the file written.
//
// A shard whose stream fails before it starts is retried, on another node
// if need be, until ctx ends; a stream that breaks midway fails the save,
// since part of the shard is already in w: write to a temporary file and
// keep it only when SaveSnapshot succeeds (kvctl snapshot save does).
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer, progress func(SaveProgress)) (*backup.Summary, error) {
	count := c.smap.Load().count
	bw, err := backup.NewWriter(w, backup.Header{ShardCount: count, Created: time.Now()})
	if err != nil {
		return nil, fmt.Errorf("ringkv: snapshot save: %w", err)
	}
	for sid := range count {
		n, err := c.saveShard(ctx, bw, count, sid)
		if err != nil {
			return nil, fmt.Errorf("ringkv: snapshot save: shard %d: %w", sid, err)
		}
		if progress != nil {
			sum := bw.Summary()
			progress(SaveProgress{Shard: sid, Shards: count, ShardRecords: n, Records: sum.Records, Bytes: bw.Written()})
		}
	}
	if err := bw.Close(); err != nil {
		return nil, fmt.Errorf("ringkv: snapshot save: %w", err)
	}
	return bw.Summary(), nil
}

// saveShard streams shard sid into bw, retrying until the stream starts.
// It returns the shard's record count.
func (c *Client) saveShard(ctx context.Context, bw *backup.Writer, count, sid uint32) (uint64, error) {
	tried := map[string]bool{}
	for attempt := 1; ; attempt++ {
		if c.life.Err() != nil {
			return 0, ErrClosed
		}
		addr := c.pick(c.smap.Load().candidates(shard.ID(sid)), tried)
		n, started, err := c.saveShardOnce(ctx, addr, bw, count, sid)
		switch {
		case err == nil:
			return n, nil
		case started:
			return 0, err
		case ctxEnded(ctx):
			return 0, gaveUp(ctx, "snapshot save", attempt, err)
		case !retryable(err):
			return 0, permanent("snapshot save", err)
		}
		tried[addr] = true
		c.log.Debug("ringkv: retrying shard snapshot", "shard", sid, "node", addr, "attempt", attempt, "err", err)
		if perr := c.pause(ctx, c.backoff(attempt), c.refresh()); perr != nil {
			if errors.Is(perr, ErrClosed) {
				return 0, ErrClosed
			}
			return 0, gaveUp(ctx, "snapshot save", attempt, err)
		}
	}
}

// saveShardOnce runs one SnapshotShard stream on addr. started reports
// whether anything of the shard reached bw.
func (c *Client) saveShardOnce(ctx context.Context, addr string, bw *backup.Writer, count, sid uint32) (n uint64, started bool, err error) {
	cc, err := c.conns.get(addr)
	if err != nil {
		return 0, false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A chunk is at most about 256 KiB, or one record alone, which may be
	// as large as a node's value limit allows (at most 16 MiB).
	stream, err := ringkvv1.NewBackupClient(cc).SnapshotShard(sctx, &ringkvv1.SnapshotShardRequest{Shard: sid},
		grpc.MaxCallRecvMsgSize(snapshotMaxMessage))
	if err != nil {
		return 0, false, err
	}
	var total uint64
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			err = status.Error(codes.Unavailable, "stream ended before its trailer")
		}
		if err != nil {
			if started {
				return 0, true, fmt.Errorf("the stream broke after %d keys (%w); save again", n, err)
			}
			c.nodeFailed(addr, err)
			return 0, false, err
		}
		if !started {
			h := resp.GetHeader()
			switch {
			case h == nil:
				return 0, true, fmt.Errorf("%s sent records before the header", addr)
			case h.GetShard() != sid || h.GetShardCount() != count:
				return 0, true, fmt.Errorf("%s sent shard %d of %d; want shard %d of %d (did the cluster change?)",
					addr, h.GetShard(), h.GetShardCount(), sid, count)
			}
			started = true
			c.breakers.success(addr)
			if err := bw.BeginShard(backup.ShardBegin{ID: sid, Index: h.GetAppliedIndex(),
				TakenAt: time.Unix(0, h.GetTakenAtUnixNano())}); err != nil {
				return 0, true, err
			}
		}
		for _, r := range resp.GetRecords() {
			if r.GetTtlMs() < 0 {
				return 0, true, fmt.Errorf("%s sent key %q with TTL %d ms", addr, r.GetKey(), r.GetTtlMs())
			}
			if err := bw.Add(backup.Record{Key: r.GetKey(), Value: r.GetValue(),
				TTL: time.Duration(r.GetTtlMs()) * time.Millisecond}); err != nil {
				return 0, true, err
			}
			n++
			total += uint64(len(r.GetKey()) + len(r.GetValue()))
		}
		if t := resp.GetTrailer(); t != nil {
			if t.GetRecords() != n || t.GetBytes() != total {
				return 0, true, fmt.Errorf("%s sent %d keys of %d bytes; its trailer says %d of %d",
					addr, n, total, t.GetRecords(), t.GetBytes())
			}
			return n, true, bw.EndShard()
		}
	}
}

// RestoreOptions tune RestoreSnapshot.
type RestoreOptions struct {
	// Force writes the backup's keys even when the cluster already holds
	// keys: those of the backup are overwritten, others are left alone.
	// Use it to finish a restore that failed midway (writing a key again
	// with the same value is harmless).
	Force bool
	// Progress, when not nil, is called as keys are written, from the
	// goroutine that called RestoreSnapshot.
	Progress func(RestoreProgress)
}

// RestoreProgress reports a RestoreSnapshot.
type RestoreProgress struct {
	// Written is the number of keys the cluster acknowledged, of Total.
	Written, Total uint64
}

// RestoreSnapshot loads the backup read from r into the cluster: every key
// with its value, and with the TTL it had left when it was saved (counted
// again from its write now). Keys go to their shards under this cluster's
// shard map, which may have another shard count than the source.
//
// It reads r twice: first it verifies the whole file (nothing is written
// from a truncated, damaged or foreign file: the error wraps
// backup.ErrCorrupt, ErrNotBackup or ErrVersion); then it checks that the
// cluster holds no key (else ErrNotEmpty, unless opts.Force), seeks r back
// to its start and writes the keys in batches (MultiPut, each shard's
// batch atomic and exactly-once). Versions are the target's own: the
// source's versions, event history and client sessions are not restored.
//
// On an error some keys may have been written: run it again with Force.
func (c *Client) RestoreSnapshot(ctx context.Context, r io.ReadSeeker, opts RestoreOptions) (*backup.Summary, error) {
	sum, err := backup.Verify(r)
	if err != nil {
		return nil, fmt.Errorf("ringkv: snapshot restore: %w", err)
	}
	if !opts.Force {
		kvs, _, err := c.ScanPage(ctx, nil, nil, ScanOptions{PageSize: 1, KeysOnly: true})
		if err != nil {
			return sum, fmt.Errorf("ringkv: snapshot restore: checking that the cluster is empty: %w", err)
		}
		if len(kvs) > 0 {
			return sum, fmt.Errorf("%w: it holds key %q (and maybe more)", ErrNotEmpty, kvs[0].Key)
		}
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return sum, fmt.Errorf("ringkv: snapshot restore: rewinding the file: %w", err)
	}
	l := &loader{c: c, batches: map[shard.ID]*restoreBatch{}}
	l.g, l.ctx = errgroup.WithContext(ctx)
	l.g.SetLimit(restoreInFlight)
	report := func() {
		if opts.Progress != nil {
			opts.Progress(RestoreProgress{Written: l.written.Load(), Total: sum.Records})
		}
	}
	_, err = backup.Read(r, func(_ backup.ShardBegin, recs []backup.Record) error {
		for _, rec := range recs {
			if err := l.add(rec); err != nil {
				return err
			}
		}
		report()
		return nil
	})
	if err == nil {
		l.flushAll()
	}
	// A failed batch stops the reading with the group's context error:
	// report the batch's own.
	if werr := l.g.Wait(); werr != nil {
		err = werr
	}
	if err != nil {
		return sum, fmt.Errorf("ringkv: snapshot restore: after %d of %d keys: %w", l.written.Load(), sum.Records, err)
	}
	report()
	return sum, nil
}

// loader batches records by target shard and writes the batches.
type loader struct {
	c       *Client
	g       *errgroup.Group
	ctx     context.Context
	batches map[shard.ID]*restoreBatch
	pending int // bytes waiting in batches
	written atomic.Uint64
}

type restoreBatch struct {
	puts  []*ringkvv1.PutOp
	bytes int
}

// add puts a copy of rec in its shard's batch, sending the batch first if
// rec would overfill it.
func (l *loader) add(rec backup.Record) error {
	if err := l.ctx.Err(); err != nil {
		return err // a batch failed: stop reading
	}
	sid := shard.Of(rec.Key, l.c.smap.Load().count)
	b := l.batches[sid]
	if b == nil {
		b = &restoreBatch{}
		l.batches[sid] = b
	}
	n := len(rec.Key) + len(rec.Value)
	if len(b.puts) > 0 && (len(b.puts) >= restoreBatchKeys || b.bytes+n > restoreBatchBytes) {
		l.flush(sid, b)
	}
	b.puts = append(b.puts, &ringkvv1.PutOp{Key: bytes.Clone(rec.Key), Value: bytes.Clone(rec.Value),
		TtlMs: int64((rec.TTL + time.Millisecond - 1) / time.Millisecond)})
	b.bytes += n
	l.pending += n
	if l.pending > restorePending {
		l.flushAll()
	}
	return nil
}

func (l *loader) flushAll() {
	for sid, b := range l.batches {
		if len(b.puts) > 0 {
			l.flush(sid, b)
		}
	}
}

// flush sends b's puts in the background (waiting while restoreInFlight
// requests run) and empties b.
func (l *loader) flush(_ shard.ID, b *restoreBatch) {
	puts := b.puts
	l.pending -= b.bytes
	b.puts, b.bytes = nil, 0
	l.g.Go(func() error {
		id := l.c.seq.begin()
		defer l.c.seq.end(id.GetSeq())
		req := &ringkvv1.MultiPutRequest{Puts: puts, RequestId: id}
		err := l.c.invoke(l.ctx, request{op: "snapshot restore", keyed: true, key: puts[0].GetKey(),
			call: func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
				_, err := ringkvv1.NewKVClient(cc).MultiPut(ctx, req, opts...)
				return err
			}})
		if err != nil {
			return err
		}
		l.written.Add(uint64(len(puts)))
		return nil
	})
}
