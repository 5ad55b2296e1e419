package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ringkv/ringkv/shard"
)

// ErrNotHosted: a per-shard request that only a replica can serve (a
// watch) reached a node that holds no replica of the shard, or whose
// replica went away.
var ErrNotHosted = errors.New("shard not hosted on this node")

// Watch tuning.
const (
	// watchBatch bounds the events of one WatchBatch (an index's events
	// are never split, so a batch may hold more).
	watchBatch = 1000
	// watchProgress is how often a shard without matching events reports
	// its advancing position, and how often a local watch checks that its
	// replica is still hosted.
	watchProgress = time.Second
	// watchBuffer bounds the batches waiting for a slow watcher. Beyond
	// it the shards stop reading; if they fall behind the history a
	// replica keeps, the watch ends with shard.ErrCompacted.
	watchBuffer = 64
	// watchRetry is the pause before a shard's watch tries another node.
	watchRetry = 200 * time.Millisecond
)

// WatchQuery selects the keys of a watch.
type WatchQuery struct {
	Key    []byte
	Prefix bool
}

func (q WatchQuery) match(k []byte) bool {
	if q.Prefix {
		return bytes.HasPrefix(k, q.Key)
	}
	return bytes.Equal(k, q.Key)
}

// Shards returns the shards whose keys the query can match, of count.
func (q WatchQuery) Shards(count uint32) []shard.ID {
	if !q.Prefix {
		return []shard.ID{shard.Of(q.Key, count)}
	}
	out := make([]shard.ID, count)
	for i := range out {
		out[i] = shard.ID(i)
	}
	return out
}

// WatchBatch is a shard's matching events after the previous batch's
// position, through Position.
type WatchBatch struct {
	Shard    shard.ID
	Events   []shard.Event
	Position uint64
}

// WatchShard streams the events of the local replica of sid that match q,
// after position after (or from the replica's applied index with fromNow),
// to send: first a batch with no events and the starting position, then a
// batch whenever events match, and a progress batch about once a second
// while the position advances without them. It returns when ctx ends, send
// fails, the replica goes away (ErrNotHosted) or the position falls out of
// the replica's history (shard.ErrCompacted).
func (r *Router) WatchShard(ctx context.Context, sid shard.ID, q WatchQuery, after uint64, fromNow bool, send func(WatchBatch) error) error {
	rep, ok := r.local.Replica(sid)
	if !ok {
		return fmt.Errorf("shard %d: %w", sid, ErrNotHosted)
	}
	pos := after
	if fromNow {
		pos = rep.AppliedIndex()
	}
	if err := send(WatchBatch{Shard: sid, Position: pos}); err != nil {
		return err
	}
	sentAt, sentPos := time.Now(), pos
	for {
		evs, through, err := rep.Events(pos, q.match, watchBatch)
		if err != nil {
			return fmt.Errorf("shard %d: %w", sid, err)
		}
		pos = max(pos, through)
		if len(evs) > 0 || (pos > sentPos && time.Since(sentAt) >= watchProgress) {
			if err := send(WatchBatch{Shard: sid, Events: evs, Position: pos}); err != nil {
				return err
			}
			sentAt, sentPos = time.Now(), pos
		}
		if len(evs) > 0 {
			continue // there may be more already
		}
		wctx, cancel := context.WithTimeout(ctx, watchProgress)
		_ = rep.WaitApplied(wctx, pos+1) // a timeout just means nothing new
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if cur, ok := r.local.Replica(sid); !ok || cur != rep {
			return fmt.Errorf("shard %d: replica closed: %w", sid, ErrNotHosted)
		}
	}
}

// Watch streams the events of every shard q covers to send, one batch at a
// time. start maps a shard to the position to resume after; other shards
// start from now. Each shard is read from this node's replica when it has
// one, else from another node's (any replica: the log is the same on all);
// when a source fails (the node died, the replica moved) the shard resumes
// on another node from its last position, so no event is lost or repeated.
// It returns when ctx ends, send fails, or a shard's position falls out of
// the history its replicas keep (shard.ErrCompacted): a watcher too slow to
// keep up is cut off that way rather than buffered without bound.
func (r *Router) Watch(ctx context.Context, q WatchQuery, start map[shard.ID]uint64, send func(WatchBatch) error) error {
	st := r.meta.Current()
	if !st.Initialized() {
		return ErrNotReady
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan WatchBatch, watchBuffer)
	errc := make(chan error, 1)
	shards := q.Shards(st.ShardCount)
	done := make(chan struct{}, len(shards))
	for _, sid := range shards {
		after, resume := start[sid]
		go func() {
			defer func() { done <- struct{}{} }()
			err := r.watchOne(ctx, sid, q, after, !resume, out)
			if err != nil && ctx.Err() == nil {
				select {
				case errc <- err:
				default:
				}
			}
		}()
	}
	defer func() {
		cancel()
		for range shards {
			<-done
		}
	}()
	for {
		select {
		case b := <-out:
			if err := send(b); err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watchOne feeds one shard's batches into out, from a local replica or a
// remote one, moving to another source when one fails.
func (r *Router) watchOne(ctx context.Context, sid shard.ID, q WatchQuery, after uint64, fromNow bool, out chan<- WatchBatch) error {
	push := func(b WatchBatch) error {
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		after, fromNow = b.Position, false
		return nil
	}
	tried := map[string]bool{}
	for {
		var err error
		if _, ok := r.local.Replica(sid); ok {
			err = r.WatchShard(ctx, sid, q, after, fromNow, push)
		} else {
			err = r.watchRemote(ctx, sid, q, after, fromNow, tried, push)
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, shard.ErrCompacted):
			return err
		}
		select {
		case <-time.After(watchRetry):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watchRemote streams sid from the next node not yet tried (the known
// leader first, then the replicas); once every node was tried it starts
// over.
func (r *Router) watchRemote(ctx context.Context, sid shard.ID, q WatchQuery, after uint64, fromNow bool, tried map[string]bool, push func(WatchBatch) error) error {
	st := r.meta.Current()
	var target string
	for _, c := range append([]string{r.leaderOf(sid)}, st.ReplicasOf(uint32(sid))...) {
		if c != "" && c != r.cfg.NodeID && !tried[c] {
			target = c
			break
		}
	}
	if target == "" {
		clear(tried)
		return fmt.Errorf("shard %d: %w: every replica tried", sid, ErrNoLeader)
	}
	tried[target] = true
	m, ok := st.Member(target)
	if !ok {
		return fmt.Errorf("shard %d: replica %s is not a member", sid, target)
	}
	err := r.fwd.WatchShard(ctx, m.Addr, sid, q, after, fromNow, func(b WatchBatch) error {
		clear(tried) // this source works: start over after it fails
		tried[target] = true
		return push(b)
	})
	return err
}
