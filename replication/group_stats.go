package replication

import (
	"time"

	"github.com/hashicorp/raft"
)

// GroupStats is a snapshot of a group's Raft state, for metrics.
type GroupStats struct {
	// Leader reports whether this replica leads; HasLeader whether it
	// knows any leader.
	Leader, HasLeader bool
	Term              uint64
	CommitIndex       uint64
	// AppliedIndex is the last index the state machine finished applying.
	AppliedIndex uint64
	// LastContact is when this replica last heard from its leader (zero
	// if never; meaningless on the leader).
	LastContact time.Time
	// FirstLogIndex and LastLogIndex bound the entries the replica's log
	// holds (both 0 when it holds none): the entries not yet compacted
	// into a snapshot, plus the trailing ones kept for slow followers.
	FirstLogIndex, LastLogIndex uint64
	// SnapshotIndex is the last index of the newest snapshot, and
	// SnapshotBytes its size (both 0 without one).
	SnapshotIndex uint64
	SnapshotBytes int64
}

// Stats returns the group's current Raft state.
func (g *Group) Stats() GroupStats {
	addr, _ := g.raft.LeaderWithID()
	snap := g.snaps.latest()
	first, _ := g.logs.FirstIndex()
	last, _ := g.logs.LastIndex()
	if last == 0 {
		first = 0
	}
	return GroupStats{
		Leader:       g.raft.State() == raft.Leader,
		HasLeader:    addr != "",
		Term:         g.raft.CurrentTerm(),
		CommitIndex:  g.raft.CommitIndex(),
		AppliedIndex: g.fsm.applied.Load(),
		LastContact:  g.raft.LastContact(),

		FirstLogIndex: first,
		LastLogIndex:  last,
		SnapshotIndex: snap.index,
		SnapshotBytes: snap.size,
	}
}
