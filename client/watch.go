package client

import (
	"context"
	"errors"
	"io"
	"iter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// ErrCompacted means a watch fell behind (or resumed from) a position older
// than the history of events nodes keep: events after it may be gone. Read
// the current state and watch again from its version.
var ErrCompacted = errors.New("ringkv: watch position no longer retained")

// EventType is what a WatchEvent reports.
type EventType int

// The event types.
const (
	// EventPut: the key was set to Value.
	EventPut EventType = iota + 1
	// EventDelete: the key was deleted, or its TTL ran out.
	EventDelete
	// EventProgress carries no change: every event of Shard through
	// Version has been delivered (see WatchOptions.Progress).
	EventProgress
)

// WatchEvent is one change delivered by Watch.
type WatchEvent struct {
	Type EventType
	Key  []byte
	// Value is the new value (puts); Value.Version is the Raft index of
	// the change, also for deletes.
	Value
	// Shard is the key's shard; (Shard, Version) is the position to resume
	// after, with WatchOptions.StartAfter.
	Shard uint32
}

// WatchOptions change a Watch.
type WatchOptions struct {
	// Prefix watches every key that starts with the key given to Watch.
	Prefix bool
	// StartAfter resumes after a position per shard: the Version of the
	// last event (or progress) seen for that shard, or of a read of a key
	// on it. Shards not named start from their current state.
	StartAfter map[uint32]uint64
	// Progress also yields EventProgress events, about once a second per
	// shard whose position advances without matching changes, so that a
	// watcher can persist positions that stay within the retained history.
	Progress bool
}

// Watch yields every put and delete of key (or of every key with the prefix
// key, with opts.Prefix), in order per shard and so per key, until ctx ends
// or an error the watch cannot ride out, which it yields last. It rides out
// node failures, leader changes and shard moves: on a broken stream it
// reconnects to another node and resumes every shard after the last
// position it delivered, so no event is lost or repeated. A watcher too slow
// to keep up is cut off with ErrCompacted rather than buffered without bound.
func (c *Client) Watch(ctx context.Context, key []byte, opts WatchOptions) iter.Seq2[WatchEvent, error] {
	return func(yield func(WatchEvent, error) bool) {
		pos := map[uint32]uint64{}
		for sid, p := range opts.StartAfter {
			pos[sid] = p
		}
		tried := map[string]bool{}
		for attempt := 1; ; attempt++ {
			if ctx.Err() != nil {
				return
			}
			m := c.smap.Load()
			cands := m.all()
			if !opts.Prefix {
				cands = m.candidates(shard.Of(key, m.count))
			}
			addr := c.pick(cands, tried)
			delivered, err := c.watchOnce(ctx, addr, key, opts, pos, yield)
			if delivered {
				attempt = 1
				clear(tried)
			}
			switch {
			case err == nil || ctx.Err() != nil || errors.Is(err, errStopped):
				return
			case status.Code(err) == codes.OutOfRange:
				yield(WatchEvent{}, errors.Join(ErrCompacted, permanent("watch", err)))
				return
			case !retryable(err) && status.Code(err) != codes.Unknown:
				yield(WatchEvent{}, permanent("watch", err))
				return
			}
			tried[addr] = true
			c.log.Debug("ringkv: watch reconnecting", "node", addr, "attempt", attempt, "err", err)
			if err := c.pause(ctx, c.backoff(attempt), c.refresh()); err != nil {
				if errors.Is(err, ErrClosed) {
					yield(WatchEvent{}, ErrClosed)
				}
				return
			}
		}
	}
}

var errStopped = errors.New("watch stopped by its consumer")

// watchOnce runs one Watch stream on addr, updating pos as responses
// arrive. It reports whether it delivered anything.
func (c *Client) watchOnce(ctx context.Context, addr string, key []byte, opts WatchOptions, pos map[uint32]uint64, yield func(WatchEvent, error) bool) (bool, error) {
	cc, err := c.conns.get(addr)
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := make(map[uint32]uint64, len(pos))
	for k, v := range pos {
		start[k] = v
	}
	stream, err := ringkvv1.NewKVClient(cc).Watch(sctx, &ringkvv1.WatchRequest{Key: key, Prefix: opts.Prefix, StartAfter: start})
	if err != nil {
		return false, err
	}
	delivered := false
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return delivered, status.Error(codes.Unavailable, "watch stream ended")
		}
		if err != nil {
			return delivered, err
		}
		delivered = true
		sid := resp.GetShard()
		for _, e := range resp.GetEvents() {
			if e.GetVersion() <= pos[sid] {
				continue // never deliver twice, whatever a node sends
			}
			ev := WatchEvent{Type: EventPut, Key: e.GetKey(), Shard: sid,
				Value: Value{Data: e.GetValue(), Version: e.GetVersion(), CreateVersion: e.GetCreateVersion()}}
			if e.GetType() == ringkvv1.Event_TYPE_DELETE {
				ev.Type = EventDelete
			}
			if !yield(ev, nil) {
				return delivered, errStopped
			}
		}
		if resp.GetPosition() > pos[sid] || !hasKey(pos, sid) {
			pos[sid] = resp.GetPosition()
			if opts.Progress && len(resp.GetEvents()) == 0 {
				if !yield(WatchEvent{Type: EventProgress, Shard: sid, Value: Value{Version: resp.GetPosition()}}, nil) {
					return delivered, errStopped
				}
			}
		}
	}
}

func hasKey(m map[uint32]uint64, k uint32) bool {
	_, ok := m[k]
	return ok
}
