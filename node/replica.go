package node

import (
	"io"

	"github.com/ringkv/ringkv/cluster"
	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/shard"
)

// shardReplica is one shard's Raft group on this node with its state
// machine; it is what the router calls.
type shardReplica struct {
	*replication.Group
	sm *shard.StateMachine
}

// Get reads the local state machine.
func (r *shardReplica) Get(key []byte) (shard.Value, bool) { return r.sm.Get(key) }

// Events reads the local replica's recent changes, for watchers.
func (r *shardReplica) Events(after uint64, match func([]byte) bool, limit int) ([]shard.Event, uint64, error) {
	return r.sm.Events(after, match, limit)
}

// Scan reads keys of the local state machine in order.
func (r *shardReplica) Scan(prefix, after []byte, limit int, keysOnly bool) ([]shard.KeyValue, bool) {
	return r.sm.Scan(prefix, after, limit, keysOnly)
}

// shardSM adapts *shard.StateMachine to replication.StateMachine.
type shardSM struct{ sm *shard.StateMachine }

func (s shardSM) Apply(index uint64, cmd []byte) any { return s.sm.Apply(index, cmd) }
func (s shardSM) Restore(r io.Reader) error          { return s.sm.Restore(r) }
func (s shardSM) Snapshot() (replication.Snapshot, error) {
	snap, err := s.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return snap, nil
}

// metaSM adapts *cluster.StateMachine to replication.StateMachine.
type metaSM struct{ sm *cluster.StateMachine }

func (s metaSM) Apply(index uint64, cmd []byte) any { return s.sm.Apply(index, cmd) }
func (s metaSM) Restore(r io.Reader) error          { return s.sm.Restore(r) }
func (s metaSM) Snapshot() (replication.Snapshot, error) {
	snap, err := s.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return snap, nil
}
