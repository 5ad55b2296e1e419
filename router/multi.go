package router

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/ringkv/ringkv/shard"
)

// fanOut bounds the shards a multi-shard request works on at once.
const fanOut = 16

// PutWith writes key like Put, with a condition and a TTL.
func (r *Router) PutWith(ctx context.Context, key, value []byte, opts WriteOptions, req shard.RequestID, forwarded bool) (WriteResult, error) {
	if opts.Cond == nil && opts.TTL == 0 {
		return r.Put(ctx, key, value, req, forwarded)
	}
	return r.conditional(ctx, key, shard.TxnOp{Kind: shard.TxnPut, Key: key, Value: value, TTL: opts.TTL}, opts, req, forwarded)
}

// DeleteWith removes key like Delete, if opts.Cond holds.
func (r *Router) DeleteWith(ctx context.Context, key []byte, opts WriteOptions, req shard.RequestID, forwarded bool) (WriteResult, error) {
	if opts.TTL != 0 {
		return WriteResult{}, fmt.Errorf("%w: a delete takes no TTL", ErrInvalid)
	}
	if opts.Cond == nil {
		return r.Delete(ctx, key, req, forwarded)
	}
	return r.conditional(ctx, key, shard.TxnOp{Kind: shard.TxnDelete, Key: key}, opts, req, forwarded)
}

// readLocal runs read on a replica this node leads, after a read barrier.
// read is given this node's clock and reports whether it saw a value whose
// TTL has run out by that clock but which the log has not expired yet. The
// router then commits a Noop stamped with that clock, which expires the
// value on every replica, and reads again: an expiry this node reports is
// in the log before the client hears of it, so no later leader, whatever
// its clock, returns the value again.
func (r *Router) readLocal(ctx context.Context, rep Replica, read func(now int64) (sawExpired bool)) error {
	if !r.cfg.UnsafeLocalReads {
		if err := rep.ReadBarrier(ctx); err != nil {
			return err
		}
	}
	now := r.cfg.Now().UnixNano()
	if !read(now) {
		return nil
	}
	if _, err := propose(ctx, rep, shard.Command{Op: shard.OpNoop, ProposedAt: now}); err != nil {
		return fmt.Errorf("expire keys: %w", err)
	}
	read(now)
	return nil
}

// GetItem is one key's answer to a MultiGet.
type GetItem struct {
	Found bool
	Value shard.Value
}

// groupByShard returns the indexes of keys per shard, in shard order.
func groupByShard(keys [][]byte, count uint32) (sids []shard.ID, groups map[shard.ID][]int) {
	groups = map[shard.ID][]int{}
	for i, k := range keys {
		sid := shard.Of(k, count)
		if _, ok := groups[sid]; !ok {
			sids = append(sids, sid)
		}
		groups[sid] = append(groups[sid], i)
	}
	slices.Sort(sids)
	return sids, groups
}

// MultiGet reads keys linearizably, each shard's keys after one read
// barrier, the shards in parallel. A forwarded MultiGet must name keys of
// one shard.
func (r *Router) MultiGet(ctx context.Context, keys [][]byte, forwarded bool) ([]GetItem, error) {
	st := r.meta.Current()
	if !st.Initialized() {
		return nil, ErrNotReady
	}
	out := make([]GetItem, len(keys))
	sids, groups := groupByShard(keys, st.ShardCount)
	if forwarded && len(sids) > 1 {
		_, err := sameShard(keys, st.ShardCount)
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fanOut)
	for _, sid := range sids {
		idx := groups[sid]
		g.Go(func() error {
			sub := make([][]byte, len(idx))
			for j, i := range idx {
				sub[j] = keys[i]
			}
			_, err := r.routeShard(gctx, st, sid, forwarded,
				func(rep Replica) error {
					return r.readLocal(gctx, rep, func(now int64) bool {
						expired := false
						for j, i := range idx {
							v, ok := rep.Get(sub[j])
							if ok && v.Expired(now) {
								ok, expired = false, true
							}
							out[i] = GetItem{Found: ok, Value: v}
						}
						return expired
					})
				},
				func(addr string) (string, error) {
					items, leader, err := r.fwd.MultiGet(gctx, addr, sub)
					if err == nil && len(items) != len(idx) {
						err = fmt.Errorf("%s answered %d keys of %d", addr, len(items), len(idx))
					}
					if err != nil {
						return leader, err
					}
					for j, i := range idx {
						out[i] = items[j]
					}
					return leader, nil
				})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// MultiPut writes puts, each shard's puts in one atomic Txn, the shards in
// parallel. It returns each put's version. On error some shards may have
// applied their puts; req makes a retry of the whole call apply each
// shard's puts at most once (each shard deduplicates on its own).
func (r *Router) MultiPut(ctx context.Context, puts []shard.TxnOp, req shard.RequestID, forwarded bool) ([]uint64, error) {
	st := r.meta.Current()
	if !st.Initialized() {
		return nil, ErrNotReady
	}
	keys := make([][]byte, len(puts))
	for i, p := range puts {
		if p.Kind != shard.TxnPut {
			return nil, fmt.Errorf("%w: MultiPut operation %d is a %v", ErrInvalid, i, p.Kind)
		}
		keys[i] = p.Key
	}
	out := make([]uint64, len(puts))
	sids, groups := groupByShard(keys, st.ShardCount)
	for _, sid := range sids {
		if n := len(groups[sid]); n > shard.MaxTxnOps {
			return nil, fmt.Errorf("%w: MultiPut puts %d keys in shard %d (key %q among them); the limit is %d keys of one shard per call, since a shard writes its keys as one transaction",
				ErrInvalid, n, sid, keys[groups[sid][0]], shard.MaxTxnOps)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fanOut)
	for _, sid := range sids {
		idx := groups[sid]
		g.Go(func() error {
			t := Txn{Then: make([]shard.TxnOp, len(idx))}
			for j, i := range idx {
				t.Then[j] = puts[i]
			}
			res, err := r.Txn(gctx, t, req, forwarded)
			if err != nil {
				return fmt.Errorf("shard %d: %w", sid, err)
			}
			for _, i := range idx {
				out[i] = res.Version
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// ScanQuery selects the keys of a scan.
type ScanQuery struct {
	// Prefix restricts the scan to keys with this prefix.
	Prefix []byte
	// After starts the scan after this key (nil: from the start).
	After []byte
	// Limit bounds the keys returned.
	Limit int
	// KeysOnly leaves values out.
	KeysOnly bool
}

// ScanPage is one shard's or the whole key space's page of a scan.
type ScanPage struct {
	KVs []shard.KeyValue
	// More reports that matching keys follow the last one.
	More bool
}

// ScanShard reads a page of shard sid on its leader, linearizably.
func (r *Router) ScanShard(ctx context.Context, sid shard.ID, q ScanQuery, forwarded bool) (ScanPage, error) {
	st := r.meta.Current()
	if !st.Initialized() {
		return ScanPage{}, ErrNotReady
	}
	if uint32(sid) >= st.ShardCount {
		return ScanPage{}, fmt.Errorf("%w: shard %d of %d", ErrInvalid, sid, st.ShardCount)
	}
	var page ScanPage
	_, err := r.routeShard(ctx, st, sid, forwarded,
		func(rep Replica) error {
			return r.readLocal(ctx, rep, func(now int64) bool {
				kvs, more := rep.Scan(q.Prefix, q.After, q.Limit, q.KeysOnly)
				expired := false
				page = ScanPage{KVs: kvs[:0:0], More: more}
				for _, kv := range kvs {
					if kv.Expired(now) {
						expired = true
						continue
					}
					page.KVs = append(page.KVs, kv)
				}
				return expired
			})
		},
		func(addr string) (string, error) {
			p, leader, err := r.fwd.ScanShard(ctx, addr, sid, q)
			page = p
			return leader, err
		})
	return page, err
}

// Scan returns a page of up to q.Limit keys in key order across all shards,
// and whether more follow. Each shard's part is read linearizably; the
// shards are read in parallel, not at one instant.
//
// Each shard is asked for at most about twice its share of the page (and at
// least 16 keys), so a page costs O(Limit) reads however many shards there
// are. A shard that has more keys than it returned bounds the page: only
// keys up to its last one are certain to be the smallest, so the page may
// hold fewer than q.Limit keys before the end. Only More == false means
// the end.
func (r *Router) Scan(ctx context.Context, q ScanQuery) (ScanPage, error) {
	st := r.meta.Current()
	if !st.Initialized() {
		return ScanPage{}, ErrNotReady
	}
	if q.Limit <= 0 {
		return ScanPage{}, fmt.Errorf("%w: scan limit %d", ErrInvalid, q.Limit)
	}
	n := int(st.ShardCount)
	sq := q
	sq.Limit = min(q.Limit, max(16, 2*q.Limit/n+1))
	pages := make([]ScanPage, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fanOut)
	for sid := range n {
		g.Go(func() error {
			p, err := r.ScanShard(gctx, shard.ID(sid), sq, false)
			if err != nil {
				return fmt.Errorf("scan shard %d: %w", sid, err)
			}
			pages[sid] = p
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return ScanPage{}, err
	}
	return mergePages(pages, q.Limit), nil
}

// mergePages merges per-shard pages into one page of at most limit keys
// that are certainly the smallest not yet returned.
func mergePages(pages []ScanPage, limit int) ScanPage {
	// bound is the smallest last key of a shard that has more: keys above
	// it may be preceded by keys that shard has not returned yet.
	var bound []byte
	more := false
	var all []shard.KeyValue
	for _, p := range pages {
		all = append(all, p.KVs...)
		if p.More {
			// A shard with more keys but none returned (cannot happen
			// after readLocal expired what it saw, but be safe) bounds the
			// page at nothing: the caller asks again.
			var last []byte
			if len(p.KVs) > 0 {
				last = p.KVs[len(p.KVs)-1].Key
			}
			if !more || bytes.Compare(last, bound) < 0 {
				bound = last
			}
			more = true
		}
	}
	sort.Slice(all, func(i, j int) bool { return bytes.Compare(all[i].Key, all[j].Key) < 0 })
	if more {
		cut := sort.Search(len(all), func(i int) bool { return bytes.Compare(all[i].Key, bound) > 0 })
		all = all[:cut]
	}
	if len(all) > limit {
		all, more = all[:limit], true
	}
	return ScanPage{KVs: all, More: more}
}
