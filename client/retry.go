package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// callFunc makes one RPC on cc. opts must be passed on to the RPC.
type callFunc func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) error

// request is one call of the client's API, as invoke runs it.
type request struct {
	op    string // for errors and logs: "get", "put", "delete", "status"
	keyed bool   // route by key; otherwise any node will do
	key   []byte
	call  callFunc
}

// invoke runs r until it succeeds, fails for good, or ctx ends (bounded by
// the default timeout when ctx has no deadline).
//
// Each attempt goes to the best candidate (see shardMap.candidates) whose
// breaker is closed and that this call has not tried yet; when all have
// been tried, the round starts over. After a retryable failure, invoke starts
// a shard map refresh (or joins the one in flight), waits for the backoff
// and for the refresh, and tries again.
//
// Every attempt carries the call's request ID (see WithTraceID), which the
// error, if any, carries too (TraceIDOf).
func (c *Client) invoke(ctx context.Context, r request) error {
	ctx, id := withCallTraceID(ctx)
	c.stats.calls.Add(1)
	if err := c.invokeTraced(ctx, r, id); err != nil {
		if !refusal(err) {
			c.stats.failed.Add(1)
		}
		return &tracedError{id: id, err: err}
	}
	return nil
}

// invokeTraced is invoke for the call of request ID traceID.
func (c *Client) invokeTraced(ctx context.Context, r request, traceID string) error {
	ctx, cancel := c.withDefaultTimeout(ctx)
	defer cancel()
	tried := make(map[string]bool)
	var last error
	for attempt := 1; ; attempt++ {
		if c.life.Err() != nil {
			return fmt.Errorf("ringkv: %s: %w", r.op, ErrClosed)
		}
		m := c.smap.Load()
		var sh shard.ID
		var cands []string
		if r.keyed {
			sh = shard.Of(r.key, m.count)
			cands = m.candidates(sh)
		} else {
			cands = m.all()
		}
		addr := c.pick(cands, tried)

		var hdr metadata.MD
		err := c.attempt(ctx, addr, r.call, grpc.Header(&hdr))
		if r.keyed {
			c.learnLeader(sh, hdr)
		}
		switch {
		case err == nil:
			return nil
		case ctxEnded(ctx):
			if last == nil {
				last = err
			}
			return gaveUp(ctx, r.op, attempt, last)
		case c.life.Err() != nil:
			return fmt.Errorf("ringkv: %s: %w", r.op, ErrClosed)
		case !retryable(err) && !overloaded(err):
			return permanent(r.op, err)
		}
		last = err
		tried[addr] = true
		c.stats.retries.Add(1)
		if overloaded(err) {
			c.stats.overloadRetries.Add(1)
		}
		c.log.Debug("ringkv: retrying", "op", r.op, "request_id", traceID, "node", addr, "attempt", attempt, "err", err)
		refreshed := noWait()
		if !overloaded(err) {
			refreshed = c.refresh()
		}
		if err := c.pause(ctx, c.backoff(attempt), refreshed); err != nil {
			if errors.Is(err, ErrClosed) {
				return fmt.Errorf("ringkv: %s: %w", r.op, ErrClosed)
			}
			return gaveUp(ctx, r.op, attempt, last)
		}
	}
}

// attempt makes one RPC to addr, bounded by the attempt timeout, and records
// the outcome in addr's breaker: a retryable failure counts against the
// node, any answer from it (even an error such as NotFound, or a refusal for
// load, see overloaded) for it. A
// failure because ctx itself ended says nothing about the node.
func (c *Client) attempt(ctx context.Context, addr string, call callFunc, opts ...grpc.CallOption) error {
	cc, err := c.conns.get(addr)
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			c.nodeFailed(addr, err)
		}
		return err
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.attemptTimeout)
	defer cancel()
	err = call(actx, cc, opts...)
	switch {
	case err == nil:
		c.breakers.success(addr)
	case ctxEnded(ctx) || c.life.Err() != nil:
	case overloaded(err):
		// Busy, not dead: the node answered.
		c.breakers.success(addr)
	case retryable(err):
		c.nodeFailed(addr, err)
	default:
		c.breakers.success(addr)
	}
	return err
}

// ctxEnded reports whether ctx has ended or its deadline has passed. gRPC
// fails a call whose deadline has passed by its own clock a moment before
// the context's timer fires; such a failure is the caller's deadline too.
func ctxEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

func (c *Client) nodeFailed(addr string, err error) {
	if opened, cooldown := c.breakers.failure(addr); opened {
		c.log.Warn("ringkv: skipping node", "node", addr, "for", cooldown, "err", err)
	}
}

// pick returns the first candidate whose breaker is closed and that is not
// in tried; if every breaker is open, it considers them all; if every one
// considered was tried, it clears tried and returns the first.
func (c *Client) pick(cands []string, tried map[string]bool) string {
	allowed := make([]string, 0, len(cands))
	for _, a := range cands {
		if c.breakers.allow(a) {
			allowed = append(allowed, a)
		}
	}
	if len(allowed) == 0 {
		allowed = cands
	}
	for _, a := range allowed {
		if !tried[a] {
			return a
		}
	}
	clear(tried)
	return allowed[0]
}

// backoff returns the pause after the attempt-th failed attempt: base
// doubled attempt-1 times, capped at max, drawn from its upper half.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.backoffMax
	if attempt <= 30 {
		d = min(c.cfg.backoffBase<<(attempt-1), d)
	}
	return d/2 + rand.N(d/2+1)
}

// pause waits for d to pass and then for refreshed to close. It returns
// ctx's error if ctx ends first, ErrClosed if the Client is closed first.
func (c *Client) pause(ctx context.Context, d time.Duration, refreshed <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.life.Done():
		return ErrClosed
	}
	select {
	case <-refreshed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.life.Done():
		return ErrClosed
	}
}

// learnLeader updates the cached leader of sh from the leader header of a
// response. A leader the map does not know as a member means the map is
// behind: it starts a refresh.
func (c *Client) learnLeader(sh shard.ID, hdr metadata.MD) {
	vals := hdr.Get(ringkvv1.MetadataLeader)
	if len(vals) == 0 || vals[0] == "" {
		return
	}
	id := vals[0]
	for {
		m := c.smap.Load()
		if int(sh) >= len(m.shards) || m.leader(sh) == id {
			return
		}
		if _, ok := m.addrs[id]; !ok {
			c.refresh()
			return
		}
		if c.smap.CompareAndSwap(m, m.withLeader(sh, id)) {
			c.log.Debug("ringkv: new shard leader", "shard", sh, "leader", id, "was", m.leader(sh))
			return
		}
	}
}
