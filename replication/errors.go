package replication

import (
	"errors"
	"fmt"
)

// Sentinel errors of a Group. Callers test them with errors.Is.
var (
	// ErrNotLeader: this replica does not lead its group. The error is a
	// *NotLeaderError when a leader hint is known.
	ErrNotLeader = errors.New("not the leader")
	// ErrOutcomeUnknown: a proposal was handed to raft but it is not known
	// whether it committed (leadership was lost, or the caller's context
	// ended while waiting). A retry must be safe to apply twice or carry the
	// same request ID.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrShutdown: the group has been shut down.
	ErrShutdown = errors.New("raft group is shut down")
)

// NotLeaderError says which replica leads the group, as far as this
// replica knows. LeaderID is empty while no leader is known.
type NotLeaderError struct {
	Group      uint64
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return fmt.Sprintf("group %d: not the leader, leader unknown", e.Group)
	}
	return fmt.Sprintf("group %d: not the leader, leader is %s at %s", e.Group, e.LeaderID, e.LeaderAddr)
}

// Is makes errors.Is(err, ErrNotLeader) hold.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
