// Package router serves the key-value API on one node: it finds a key's
// shard, runs the request on the local replica when this node leads that
// shard, and otherwise forwards it to the shard's leader.
//
// Any node accepts any request, so a client with a stale shard map, or one
// that knows nothing of the map, still gets an answer. A request is forwarded
// at most once: a node that receives a forwarded request and does not lead
// the shard answers with a NotLeaderError naming the leader it knows, and the
// forwarding node, which owns the retry, follows that hint. Stale maps and
// leader changes therefore cost extra hops inside the cluster, not errors at
// the client.
//
// The router knows the network only through the Forwarder interface it
// declares; package rpc implements it over gRPC.
package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/cluster"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/shard"
)

// Errors a Router returns. Callers test them with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("key not found")
	// ErrNoLeader: no leader of the key's shard could be reached now; the
	// request did not take effect unless wrapped with
	// replication.ErrOutcomeUnknown. Retry later.
	ErrNoLeader = errors.New("no reachable leader for shard")
	// ErrNotReady: this node has not yet learned the cluster's metadata.
	ErrNotReady = errors.New("node not ready: cluster metadata not loaded")
	// ErrUnreachable: a forwarded request could not reach its node. The
	// Forwarder wraps it; the request did not take effect.
	ErrUnreachable = errors.New("node unreachable")
)

// Replica is a shard replica hosted on this node.
type Replica interface {
	// Propose replicates a command (see replication.Group.Propose).
	Propose(ctx context.Context, cmd []byte) (any, uint64, error)
	// ReadBarrier returns once a local read is linearizable.
	ReadBarrier(ctx context.Context) error
	// Leader reports the shard's leader as known locally.
	Leader() replication.LeaderInfo
	// Get reads the local state machine.
	Get(key []byte) (shard.Value, bool)
	// Scan reads keys of the local state machine in order (see
	// shard.StateMachine.Scan).
	Scan(prefix, after []byte, limit int, keysOnly bool) ([]shard.KeyValue, bool)
	// AppliedIndex, Events and WaitApplied serve watches (see
	// shard.StateMachine).
	AppliedIndex() uint64
	Events(after uint64, match func(key []byte) bool, limit int) ([]shard.Event, uint64, error)
	WaitApplied(ctx context.Context, index uint64) error
}

// Replicas finds the replicas this node hosts.
type Replicas interface {
	Replica(id shard.ID) (Replica, bool)
}

// MapSource provides the current cluster metadata.
type MapSource interface {
	Current() *cluster.State
}

// Forwarder sends a request to another node's KV service, marked as
// forwarded. Each call returns the ID of the node that served it. Errors
// the router acts on: ErrNotFound, a *replication.NotLeaderError (the
// request did not take effect there), and anything wrapping ErrUnreachable
// (it did not reach the node). Other errors are returned to the caller.
type Forwarder interface {
	Get(ctx context.Context, addr string, key []byte) (shard.Value, string, error)
	Put(ctx context.Context, addr string, key, value []byte, req shard.RequestID) (uint64, string, error)
	Delete(ctx context.Context, addr string, key []byte, req shard.RequestID) (bool, uint64, string, error)
	Txn(ctx context.Context, addr string, t Txn, req shard.RequestID) (TxnResult, string, error)
	// MultiGet reads keys of one shard.
	MultiGet(ctx context.Context, addr string, keys [][]byte) ([]GetItem, string, error)
	// ScanShard reads a page of one shard (see Router.ScanShard).
	ScanShard(ctx context.Context, addr string, sid shard.ID, q ScanQuery) (ScanPage, string, error)
	// WatchShard streams a shard's events from the node at addr to recv
	// until ctx ends, recv fails or the stream breaks; a position out of
	// the node's history is shard.ErrCompacted.
	WatchShard(ctx context.Context, addr string, sid shard.ID, q WatchQuery, after uint64, fromNow bool, recv func(WatchBatch) error) error
}

// Config configures a Router.
type Config struct {
	// NodeID is this node's ID. Required.
	NodeID string
	// MaxHops bounds the nodes a forwarded request is tried on. Default 4.
	MaxHops int
	// Now returns the proposer timestamp written into commands. Default
	// time.Now.
	Now func() time.Time
	// UnsafeLocalReads serves reads from any local replica without
	// confirming leadership. NOT linearizable: it is the negative control
	// that the read-path tests and jepsen-lite must catch.
	UnsafeLocalReads bool
}

// Router routes key-value requests. It is safe for concurrent use.
type Router struct {
	cfg   Config
	meta  MapSource
	local Replicas
	fwd   Forwarder

	forwarded atomic.Uint64 // requests sent on to another node

	mu struct {
		sync.Mutex
		leaders map[shard.ID]string // last leader seen per shard
	}
}

// Stats counts what a Router has done since it started.
type Stats struct {
	// Forwarded counts requests this node sent on to another node because
	// it did not lead the key's shard. A client that routes by the shard
	// map keeps it near zero.
	Forwarded uint64
}

// Stats returns the router's counters.
func (r *Router) Stats() Stats { return Stats{Forwarded: r.forwarded.Load()} }

// New returns a Router.
func New(cfg Config, meta MapSource, local Replicas, fwd Forwarder) *Router {
	if cfg.MaxHops == 0 {
		cfg.MaxHops = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Router{cfg: cfg, meta: meta, local: local, fwd: fwd}
	r.mu.leaders = map[shard.ID]string{}
	return r
}

// GetResult is a read's answer.
type GetResult struct {
	Value shard.Value
	// Leader is the ID of the shard leader that served the request.
	Leader string
}

// Get reads key linearizably. forwarded marks a request another node
// forwarded here; it is served locally or refused, never forwarded again.
func (r *Router) Get(ctx context.Context, key []byte, forwarded bool) (GetResult, error) {
	var res GetResult
	leader, err := r.route(ctx, key, forwarded,
		func(rep Replica) error {
			found := false
			err := r.readLocal(ctx, rep, func(now int64) bool {
				v, ok := rep.Get(key)
				if ok && v.Expired(now) {
					found = false
					return true
				}
				res.Value, found = v, ok
				return false
			})
			if err != nil {
				return err
			}
			if !found {
				return ErrNotFound
			}
			return nil
		},
		func(addr string) (string, error) {
			v, leader, err := r.fwd.Get(ctx, addr, key)
			res.Value = v
			return leader, err
		})
	res.Leader = leader
	return res, err
}

// WriteResult is a write's answer.
type WriteResult struct {
	// Version is the Raft index the write committed at.
	Version uint64
	// Existed is, for a delete, whether the key existed.
	Existed bool
	// Succeeded is false when a write's condition did not hold; Version is
	// then the key's current version (0: missing).
	Succeeded bool
	// Leader is the ID of the shard leader that served the request.
	Leader string
}

// Put writes key. req makes it exactly-once (see shard.RequestID).
func (r *Router) Put(ctx context.Context, key, value []byte, req shard.RequestID, forwarded bool) (WriteResult, error) {
	var res WriteResult
	leader, err := r.route(ctx, key, forwarded,
		func(rep Replica) error {
			c := shard.Command{Op: shard.OpPut, Key: key, Value: value, Request: req, ProposedAt: r.cfg.Now().UnixNano()}
			out, err := propose(ctx, rep, c)
			res.Version, res.Succeeded = out.Version, err == nil
			return err
		},
		func(addr string) (string, error) {
			v, leader, err := r.fwd.Put(ctx, addr, key, value, req)
			res.Version, res.Succeeded = v, err == nil
			return leader, err
		})
	res.Leader = leader
	return res, err
}

// Delete removes key. req makes it exactly-once.
func (r *Router) Delete(ctx context.Context, key []byte, req shard.RequestID, forwarded bool) (WriteResult, error) {
	var res WriteResult
	leader, err := r.route(ctx, key, forwarded,
		func(rep Replica) error {
			c := shard.Command{Op: shard.OpDelete, Key: key, Request: req, ProposedAt: r.cfg.Now().UnixNano()}
			out, err := propose(ctx, rep, c)
			res.Version, res.Existed, res.Succeeded = out.Index, out.Existed, err == nil
			return err
		},
		func(addr string) (string, error) {
			existed, v, leader, err := r.fwd.Delete(ctx, addr, key, req)
			res.Version, res.Existed, res.Succeeded = v, existed, err == nil
			return leader, err
		})
	res.Leader = leader
	return res, err
}

// propose validates c, so that a command the state machine would refuse
// never reaches the log, and replicates it.
func propose(ctx context.Context, rep Replica, c shard.Command) (shard.Result, error) {
	if err := c.Validate(); err != nil {
		return shard.Result{}, err
	}
	out, _, err := rep.Propose(ctx, c.Encode())
	if err != nil {
		return shard.Result{}, err
	}
	res, ok := out.(shard.Result)
	if !ok {
		return shard.Result{}, fmt.Errorf("router: unexpected apply result %T", out)
	}
	if res.Err != nil {
		return res, res.Err
	}
	return res, nil
}

// ShardOf returns the shard of key under the current metadata.
func (r *Router) ShardOf(key []byte) (shard.ID, error) {
	st := r.meta.Current()
	if !st.Initialized() {
		return 0, ErrNotReady
	}
	return shard.Of(key, st.ShardCount), nil
}

// route runs a request on the local replica when it leads key's shard, or
// forwards it. It returns the ID of the leader that served it.
func (r *Router) route(ctx context.Context, key []byte, forwarded bool,
	local func(Replica) error, remote func(addr string) (string, error)) (string, error) {
	st := r.meta.Current()
	if !st.Initialized() {
		return "", ErrNotReady
	}
	return r.routeShard(ctx, st, shard.Of(key, st.ShardCount), forwarded, local, remote)
}

// routeShard is route for a request about shard sid.
func (r *Router) routeShard(ctx context.Context, st *cluster.State, sid shard.ID, forwarded bool,
	local func(Replica) error, remote func(addr string) (string, error)) (string, error) {

	var hint string
	if rep, ok := r.local.Replica(sid); ok {
		err := local(rep)
		if err == nil || errors.Is(err, ErrNotFound) {
			r.noteLeader(sid, r.cfg.NodeID)
			return r.cfg.NodeID, err
		}
		var nl *replication.NotLeaderError
		if !errors.As(err, &nl) {
			return "", fmt.Errorf("shard %d: %w", sid, err)
		}
		if forwarded {
			return "", fmt.Errorf("shard %d: %w", sid, err)
		}
		hint = nl.LeaderID
	} else if forwarded {
		return "", fmt.Errorf("shard %d: %w", sid,
			&replication.NotLeaderError{Group: uint64(sid), LeaderID: r.leaderOf(sid)})
	}

	tried := map[string]bool{r.cfg.NodeID: true}
	next := func() string {
		for _, c := range append([]string{hint, r.leaderOf(sid)}, st.ReplicasOf(uint32(sid))...) {
			if c != "" && !tried[c] {
				return c
			}
		}
		return ""
	}
	var lastErr error
	for hop := 0; hop < r.cfg.MaxHops; hop++ {
		target := next()
		if target == "" {
			break
		}
		tried[target] = true
		m, ok := st.Member(target)
		if !ok {
			continue
		}
		r.forwarded.Add(1)
		leader, err := remote(m.Addr)
		if err == nil || errors.Is(err, ErrNotFound) {
			r.noteLeader(sid, leader)
			return leader, err
		}
		lastErr = err
		var nl *replication.NotLeaderError
		switch {
		case errors.As(err, &nl):
			hint = nl.LeaderID
		case errors.Is(err, ErrUnreachable):
			hint = ""
		default:
			return "", fmt.Errorf("shard %d via %s: %w", sid, target, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no leader known")
	}
	return "", fmt.Errorf("shard %d: %w: %w", sid, ErrNoLeader, lastErr)
}

func (r *Router) noteLeader(sid shard.ID, leader string) {
	if leader == "" {
		return
	}
	r.mu.Lock()
	r.mu.leaders[sid] = leader
	r.mu.Unlock()
}

func (r *Router) leaderOf(sid shard.ID) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.leaders[sid]
}

// KnownLeader returns the last leader this router saw for a shard it does
// not host, or "".
func (r *Router) KnownLeader(sid shard.ID) string { return r.leaderOf(sid) }
