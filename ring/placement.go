package ring

import (
	"fmt"
	"slices"
)

// A Placement says which nodes hold each shard's replicas. Shards[s] is the
// replica list of shard s, as node IDs. It is plain data (exported fields,
// JSON-friendly) because the cluster metadata stores it.
//
// The order of a replica list records history, not rank: Place keeps the
// replicas that stay in their previous order and appends the ones it adds,
// those among themselves in the shard's preference order. So the first
// replica is the one that has held the shard longest, and a fresh placement
// lists every shard's replicas in preference order.
type Placement struct {
	Shards [][]string `json:"shards"`
}

// Clone returns a deep copy of p.
func (p Placement) Clone() Placement {
	if p.Shards == nil {
		return Placement{}
	}
	c := Placement{Shards: make([][]string, len(p.Shards))}
	for s, set := range p.Shards {
		c.Shards[s] = slices.Clone(set)
	}
	return c
}

// Equal reports whether p and q have the same shards with the same replica
// lists in the same order. A nil and an empty list are equal.
func (p Placement) Equal(q Placement) bool {
	return slices.EqualFunc(p.Shards, q.Shards, slices.Equal[[]string])
}

// Loads returns how many replicas each node holds. Nodes holding none are
// absent; see Placement.Balance to count them.
func (p Placement) Loads() map[string]int {
	loads := make(map[string]int)
	for _, set := range p.Shards {
		for _, id := range set {
			loads[id]++
		}
	}
	return loads
}

// Balance summarizes how evenly a placement spreads replicas over nodes.
type Balance struct {
	Nodes    int     // nodes counted
	Replicas int     // replicas held by the counted nodes
	Min, Max int     // fewest and most replicas on one node
	Mean     float64 // Replicas / Nodes
	// MaxOverMean is Max / Mean, the figure the balance bound is stated in:
	// 1 is perfect; 0 when there are no replicas.
	MaxOverMean float64
}

// Balance summarizes p's load over members, counting members that hold no
// replica. If members is nil, it counts the nodes that appear in p. Nodes in
// p but not in a non-nil members are ignored.
func (p Placement) Balance(members []string) Balance {
	loads := p.Loads()
	if members == nil {
		for id := range loads {
			members = append(members, id)
		}
	}
	b := Balance{Nodes: len(members)}
	for i, id := range members {
		l := loads[id]
		b.Replicas += l
		if i == 0 || l < b.Min {
			b.Min = l
		}
		if l > b.Max {
			b.Max = l
		}
	}
	if b.Nodes > 0 {
		b.Mean = float64(b.Replicas) / float64(b.Nodes)
	}
	if b.Mean > 0 {
		b.MaxOverMean = float64(b.Max) / b.Mean
	}
	return b
}

// String formats b for humans, e.g.
// "10 nodes, 192 replicas: min 19, max 20, mean 19.20, max/mean 1.042".
func (b Balance) String() string {
	return fmt.Sprintf("%d nodes, %d replicas: min %d, max %d, mean %.2f, max/mean %.3f",
		b.Nodes, b.Replicas, b.Min, b.Max, b.Mean, b.MaxOverMean)
}
