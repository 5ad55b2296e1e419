package node

import (
	"context"
	"time"

	"github.com/ringkv/ringkv/shard"
)

// expiryInterval is how often the node looks for keys whose TTL ran out in
// the shards it leads. Reads never return such keys whatever this is (the
// router expires them through the log first); it bounds how long an expired
// key keeps its memory and how late a watcher sees its delete.
const expiryInterval = time.Second

// expireLoop commits a Noop on every shard this node leads whose earliest
// key deadline has passed by this node's clock. Applying the Noop advances
// the shard clock past the deadline, which deletes the key on every replica
// at the same log index: expiry is decided through the log, never by a
// replica's own clock.
func (n *Node) expireLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(expiryInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		for _, r := range n.ledReplicas() {
			at, ok := r.sm.NextExpiry()
			if !ok || at > now {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), expiryInterval)
			if _, _, err := r.Propose(ctx, shard.EncodeNoop(now)); err != nil {
				n.logger.Debug("expiring keys failed; will retry", "shard", r.ID(), "err", err)
			}
			cancel()
		}
	}
}

// ledReplicas returns the shard replicas this node leads now.
func (n *Node) ledReplicas() []*shardReplica {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*shardReplica
	for _, r := range n.mu.shards {
		if r.Leader().Self {
			out = append(out, r)
		}
	}
	return out
}
