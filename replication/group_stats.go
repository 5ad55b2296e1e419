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
}

// Stats returns the group's current Raft state.
func (g *Group) Stats() GroupStats {
	addr, _ := g.raft.LeaderWithID()
	return GroupStats{
		Leader:       g.raft.State() == raft.Leader,
		HasLeader:    addr != "",
		Term:         g.raft.CurrentTerm(),
		CommitIndex:  g.raft.CommitIndex(),
		AppliedIndex: g.fsm.applied.Load(),
		LastContact:  g.raft.LastContact(),
	}
}
