package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/bulkhead"
	"github.com/ringkv/ringkv/shard"
)

// Defaults of the bounds on requests in flight (Config.MaxInflight,
// Config.MaxInflightPerShard).
const (
	// DefaultMaxInflight bounds the KV calls a node serves at once.
	DefaultMaxInflight = 4096
	// DefaultMaxInflightPerShard bounds the proposals and read barriers
	// waiting on one shard replica of a node.
	DefaultMaxInflightPerShard = 256
)

// overload holds a node's bulkheads: one bound for the node's KV calls,
// installed as a gRPC interceptor, and one per shard replica, applied where
// the replica's work waits (Propose, ReadBarrier), which on a healthy shard
// happens on its leader, so forwarded requests count there too.
type overload struct {
	node     *bulkhead.Limiter
	perShard int
	rejected *prometheus.CounterVec // by scope: "node", "shard"
	// shardRejected is rejected's "shard" series, one object for every
	// boundedReplica so that they compare equal.
	shardRejected prometheus.Counter

	mu struct {
		sync.Mutex
		shards map[shard.ID]*bulkhead.Limiter // created on first use; at most the shard count
	}
}

// newOverload builds the bulkheads of cfg (after setDefaults) and registers
// ringkv_overload_rejected_total{scope} and ringkv_inflight_requests with
// reg.
func newOverload(cfg Config, reg prometheus.Registerer) *overload {
	o := &overload{
		node:     bulkhead.New("node", "max-inflight", cfg.MaxInflight),
		perShard: cfg.MaxInflightPerShard,
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringkv_overload_rejected_total",
			Help: "Requests refused with ResourceExhausted because a bound on requests in flight was reached, by scope (node: --max-inflight, shard: --max-inflight-per-shard).",
		}, []string{"scope"}),
	}
	o.mu.shards = map[shard.ID]*bulkhead.Limiter{}
	// Both series exist from the start, so a rate() over them works before
	// the first rejection.
	o.rejected.WithLabelValues("node")
	o.shardRejected = o.rejected.WithLabelValues("shard")
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ringkv_inflight_requests",
		Help: "KV calls this node is serving now (the count --max-inflight bounds).",
	}, func() float64 { return float64(o.node.InFlight()) })
	reg.MustRegister(o.rejected, inflight)
	return o
}

// rejectedNode counts a refusal by the node bound.
func (o *overload) rejectedNode() { o.rejected.WithLabelValues("node").Inc() }

// shard returns the bulkhead of shard id.
func (o *overload) shard(id shard.ID) *bulkhead.Limiter {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.mu.shards[id]
	if l == nil {
		l = bulkhead.New(fmt.Sprintf("shard %d", id), "max-inflight-per-shard", o.perShard)
		o.mu.shards[id] = l
	}
	return l
}

// bounded wraps a replica so that its blocking calls count toward the
// shard's bulkhead.
func (o *overload) bounded(r *shardReplica, id shard.ID) boundedReplica {
	return boundedReplica{shardReplica: r, lim: o.shard(id), rejected: o.shardRejected}
}

// boundedReplica is a shard replica whose Propose and ReadBarrier, the
// calls that wait for the shard's quorum, are admitted by the shard's
// bulkhead: when the shard is stuck (no quorum, a slow disk), at most the
// bound of requests wait on it and the rest are refused at once with an
// error wrapping bulkhead.ErrFull, instead of taking the whole node's
// capacity. Values are comparable: two wrappers of one replica are equal.
type boundedReplica struct {
	*shardReplica
	lim      *bulkhead.Limiter
	rejected prometheus.Counter
}

// Propose implements router.Replica.
func (r boundedReplica) Propose(ctx context.Context, cmd []byte) (any, uint64, error) {
	release, err := r.lim.Acquire()
	if err != nil {
		r.rejected.Inc()
		return nil, 0, err
	}
	defer release()
	return r.shardReplica.Propose(ctx, cmd)
}

// ReadBarrier implements router.Replica.
func (r boundedReplica) ReadBarrier(ctx context.Context) error {
	release, err := r.lim.Acquire()
	if err != nil {
		r.rejected.Inc()
		return err
	}
	defer release()
	return r.shardReplica.ReadBarrier(ctx)
}
