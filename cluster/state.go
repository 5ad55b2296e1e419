package cluster

import (
	"cmp"
	"fmt"
	"slices"
)

// MemberState is a member's role in the cluster.
type MemberState string

// Member states. A member is placeable (the ring may put replicas on it)
// while it is joining or active.
const (
	// MemberJoining: the node was added; replicas are being moved onto
	// it. It turns active when it holds everything the target gives it.
	MemberJoining MemberState = "joining"
	// MemberActive: the node holds its share of the placement.
	MemberActive MemberState = "active"
	// MemberDraining: the node is being removed; its replicas are being
	// moved off it. It leaves the member list when it holds none.
	MemberDraining MemberState = "draining"
	// MemberDead: the node was unreachable for longer than the dead-after
	// timeout; its replicas are re-created elsewhere. It turns joining
	// again when it is reachable again.
	MemberDead MemberState = "dead"
)

// Placeable reports whether the ring may place replicas on a member in
// state s.
func (s MemberState) Placeable() bool { return s == MemberJoining || s == MemberActive }

// Member is one node of the cluster.
type Member struct {
	ID    string      `json:"id"`
	Addr  string      `json:"addr"`
	State MemberState `json:"state"`
	// Down is set while the member is considered unreachable: always when
	// it is dead, and for a draining member that was dead when the drain
	// began, or died while draining. The planner does not count moves off a
	// down member against its throttle (it sends nothing) and re-creates
	// its replicas first.
	Down bool `json:"down,omitempty"`
}

// Unreachable reports whether m is dead, or down while draining.
func (m Member) Unreachable() bool { return m.Down || m.State == MemberDead }

// State is one version of the cluster metadata. A State is never modified
// after it is published; changes make a new one.
type State struct {
	// Epoch is 0 before the cluster is initialized and grows by one with
	// every committed change.
	Epoch        uint64   `json:"epoch"`
	ShardCount   uint32   `json:"shard_count"`
	Replicas     int      `json:"replicas"`
	VirtualNodes int      `json:"virtual_nodes"`
	Members      []Member `json:"members"`
	// Shards[i] lists the node IDs holding shard i's replicas: the voters
	// of shard i's Raft group, apart from an active move's change in
	// flight.
	Shards [][]string `json:"shards"`
	// Target[i] is the replica set the ring wants for shard i. Where it
	// differs from Shards[i], the rebalancer moves replicas, one per shard
	// at a time.
	Target [][]string `json:"target"`
	// Changes[i] counts the moves completed on shard i. A node bootstraps
	// a shard's Raft group from the placement only while it is 0: after
	// that, a replica joins its group only through a membership change.
	Changes []uint64 `json:"changes"`
	// Moves are the moves in progress, by ascending shard.
	Moves []Move `json:"moves,omitempty"`
	// Finished are the most recent finished moves (at most MaxFinished),
	// oldest first.
	Finished []Move `json:"finished,omitempty"`
	// FinishedSinceChange and BytesSinceChange count the moves finished,
	// and the snapshot bytes they sent, since the target last changed.
	FinishedSinceChange uint64 `json:"finished_since_change,omitempty"`
	BytesSinceChange    uint64 `json:"bytes_since_change,omitempty"`
	// Removed lists the IDs of nodes that left the cluster. An ID is never
	// reused: a removed node's data may still exist somewhere.
	Removed []string `json:"removed,omitempty"`
	// Auth is the users, roles and whether auth is on (see auth.go).
	Auth Auth `json:"auth,omitzero"`
}

// MaxFinished bounds State.Finished.
const MaxFinished = 100

// Move outcomes.
const (
	MoveDone    = "done"
	MoveAborted = "aborted"
)

// Move is one replica move of one shard: a replica is added on To and then
// removed from From. From is empty when the shard only gains a replica,
// To when it only loses one. Times are Unix milliseconds from the clock of
// the node that proposed the step (metadata commands carry them, so every
// replica applies the same value).
type Move struct {
	Shard    uint32 `json:"shard"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Started  int64  `json:"started,omitempty"`
	Finished int64  `json:"finished,omitempty"`
	Bytes    uint64 `json:"bytes,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Involves reports whether node is the source or the destination of m.
func (m Move) Involves(node string) bool { return node != "" && (m.From == node || m.To == node) }

// ActiveMove returns the move in progress on shard id.
func (s *State) ActiveMove(id uint32) (Move, bool) {
	i, ok := slices.BinarySearchFunc(s.Moves, id, func(m Move, id uint32) int { return cmp.Compare(m.Shard, id) })
	if !ok {
		return Move{}, false
	}
	return s.Moves[i], true
}

// Hosts reports whether node should run a replica of shard id: it is one
// of the shard's replicas or the destination of the shard's active move.
func (s *State) Hosts(node string, id uint32) bool {
	if slices.Contains(s.ReplicasOf(id), node) {
		return true
	}
	m, ok := s.ActiveMove(id)
	return ok && m.To == node
}

// Placeable returns the IDs of the members the ring may place replicas
// on, ascending.
func (s *State) Placeable() []string {
	var out []string
	for _, m := range s.Members {
		if m.State.Placeable() {
			out = append(out, m.ID)
		}
	}
	slices.Sort(out)
	return out
}

// Settled reports whether every shard is where the target wants it and no
// move is in progress.
func (s *State) Settled() bool {
	if len(s.Moves) > 0 {
		return false
	}
	for i := range s.Shards {
		if !sameSet(s.Shards[i], s.targetOf(i)) {
			return false
		}
	}
	return true
}

func (s *State) targetOf(i int) []string {
	if i < len(s.Target) {
		return s.Target[i]
	}
	return s.Shards[i]
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// Initialized reports whether the cluster has been created.
func (s *State) Initialized() bool { return s != nil && s.Epoch > 0 }

// Member returns the member with the given ID.
func (s *State) Member(id string) (Member, bool) {
	i := slices.IndexFunc(s.Members, func(m Member) bool { return m.ID == id })
	if i < 0 {
		return Member{}, false
	}
	return s.Members[i], true
}

// Replicas returns the node IDs that hold shard id.
func (s *State) ReplicasOf(id uint32) []string {
	if int(id) >= len(s.Shards) {
		return nil
	}
	return s.Shards[id]
}

// ShardsOf returns the shards that node holds a replica of, ascending.
func (s *State) ShardsOf(node string) []uint32 {
	var out []uint32
	for id, reps := range s.Shards {
		if slices.Contains(reps, node) {
			out = append(out, uint32(id))
		}
	}
	return out
}

// Validate checks the internal consistency of an initialized state.
func (s *State) Validate() error {
	if s.ShardCount == 0 || int(s.ShardCount) != len(s.Shards) {
		return fmt.Errorf("cluster state: shard count %d but %d shard entries", s.ShardCount, len(s.Shards))
	}
	if s.Replicas <= 0 {
		return fmt.Errorf("cluster state: replication factor %d", s.Replicas)
	}
	ids := map[string]bool{}
	for _, m := range s.Members {
		if m.ID == "" || m.Addr == "" {
			return fmt.Errorf("cluster state: member %q with address %q", m.ID, m.Addr)
		}
		if ids[m.ID] {
			return fmt.Errorf("cluster state: duplicate member %q", m.ID)
		}
		ids[m.ID] = true
	}
	if len(s.Target) != 0 && len(s.Target) != len(s.Shards) {
		return fmt.Errorf("cluster state: %d shards but %d targets", len(s.Shards), len(s.Target))
	}
	if len(s.Changes) != 0 && len(s.Changes) != len(s.Shards) {
		return fmt.Errorf("cluster state: %d shards but %d change counters", len(s.Shards), len(s.Changes))
	}
	for id, reps := range s.Shards {
		if len(reps) == 0 {
			return fmt.Errorf("cluster state: shard %d has no replicas", id)
		}
		for i, r := range reps {
			if !ids[r] {
				return fmt.Errorf("cluster state: shard %d placed on unknown node %q", id, r)
			}
			if slices.Contains(reps[:i], r) {
				return fmt.Errorf("cluster state: shard %d lists node %q twice", id, r)
			}
		}
	}
	return nil
}

// maxNodeID bounds a node ID's length.
const maxNodeID = 64

// ValidateNodeID checks a node ID: 1-64 letters, digits, '.', '_' or '-'.
func ValidateNodeID(id string) error {
	ok := len(id) >= 1 && len(id) <= maxNodeID
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("node id %q: want 1-%d letters, digits, '.', '_' or '-'", id, maxNodeID)
	}
	return nil
}
