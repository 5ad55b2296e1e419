package cluster

import (
	"fmt"
	"slices"
)

// MemberState is a member's role in the cluster.
type MemberState string

// Member states. A static cluster has only active members; joining,
// draining and dead come with membership changes.
const (
	MemberActive MemberState = "active"
)

// Member is one node of the cluster.
type Member struct {
	ID    string      `json:"id"`
	Addr  string      `json:"addr"`
	State MemberState `json:"state"`
}

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
	// Shards[i] lists the node IDs holding shard i's replicas.
	Shards [][]string `json:"shards"`
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
