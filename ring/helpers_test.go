package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// checkShape reports how p breaks the shape Place promises: shards replica
// lists of exactly want distinct members each.
func checkShape(p Placement, members []string, shards, want int) error {
	if len(p.Shards) != shards {
		return fmt.Errorf("placement has %d shards; want %d", len(p.Shards), shards)
	}
	for s, set := range p.Shards {
		if len(set) != want {
			return fmt.Errorf("shard %d has %d replicas %q; want %d", s, len(set), set, want)
		}
		for i, id := range set {
			if !slices.Contains(members, id) {
				return fmt.Errorf("shard %d has replica %q, not a member of %q", s, id, members)
			}
			if slices.Contains(set[:i], id) {
				return fmt.Errorf("shard %d lists %q twice: %q", s, id, set)
			}
		}
	}
	return nil
}

// checkBalanced reports a member of p whose load is not floor or ceil of the
// mean.
func checkBalanced(p Placement, members []string) error {
	b := p.Balance(members)
	lo, hi := b.Replicas/b.Nodes, (b.Replicas+b.Nodes-1)/b.Nodes
	if b.Min < lo || b.Max > hi {
		return fmt.Errorf("loads %v over %d members: %v; want every load in [%d, %d]",
			p.Loads(), len(members), b, lo, hi)
	}
	return nil
}

// checkMoves reports a shard where a replica moved between two nodes that
// both stay. Per shard, every staying node that gains a replica must stand
// in for a removed node that lost one, and every staying node that loses a
// replica must make room for an added node; added nodes must not lose and
// removed nodes must not gain.
func checkMoves(prev, next Placement, added, removed []string) error {
	for s := range max(len(prev.Shards), len(next.Shards)) {
		var before, after []string
		if s < len(prev.Shards) {
			before = prev.Shards[s]
		}
		if s < len(next.Shards) {
			after = next.Shards[s]
		}
		var stayJoin, stayLeave, addJoin, remLeave []string
		for _, id := range after {
			switch {
			case slices.Contains(before, id):
			case slices.Contains(added, id):
				addJoin = append(addJoin, id)
			case slices.Contains(removed, id):
				return fmt.Errorf("shard %d: %q -> %q puts a replica on removed node %q", s, before, after, id)
			default:
				stayJoin = append(stayJoin, id)
			}
		}
		for _, id := range before {
			switch {
			case slices.Contains(after, id):
			case slices.Contains(removed, id):
				remLeave = append(remLeave, id)
			case slices.Contains(added, id):
				return fmt.Errorf("shard %d: %q -> %q takes a replica from added node %q", s, before, after, id)
			default:
				stayLeave = append(stayLeave, id)
			}
		}
		if len(stayJoin) > len(remLeave) || len(stayLeave) > len(addJoin) {
			return fmt.Errorf("shard %d: %q -> %q moves a replica between staying nodes (added %q, removed %q)",
				s, before, after, added, removed)
		}
	}
	return nil
}

// nodeNames returns n distinct node IDs. Their lengths and digits vary so
// that sorted order differs from creation order.
func nodeNames(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%d", (i*7919)%1009)
	}
	return ids
}

// newNodeName returns a random ID not in members.
func newNodeName(rng *rand.Rand, members []string) string {
	for {
		id := fmt.Sprintf("n%d", rng.IntN(100000))
		if !slices.Contains(members, id) {
			return id
		}
	}
}

// shuffled returns a shuffled copy of ids.
func shuffled(rng *rand.Rand, ids []string) []string {
	out := slices.Clone(ids)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// moved counts the replicas that changed nodes or were added.
func moved(prev, next Placement) int {
	n := 0
	for _, m := range Diff(prev, next) {
		if m.To != "" {
			n++
		}
	}
	return n
}
