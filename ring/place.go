package ring

import (
	"cmp"
	"fmt"
	"slices"
)

// Place computes the placement of shards over members from prev, the
// placement in force (an empty Placement for a new cluster). See the package
// documentation for the algorithm and the properties it guarantees; in
// short, the result is deterministic, gives every shard
// min(cfg.Replicas, len(members)) distinct member replicas, spreads the
// replicas so that node loads differ by at most one, and moves replicas
// only onto added nodes and off removed ones, whenever balance allows.
//
// prev is not modified, and the result shares no memory with it. Place
// needs about 13 bytes per (shard, member) pair while it runs: 8 MB for
// 65536 shards on 10 nodes. Errors:
// ErrInvalidConfig, ErrInvalidShardCount (shards not in 1..MaxShards),
// ErrNoMembers, ErrInvalidMember (empty or duplicate ID) and
// ErrInvalidPlacement (prev has another shard count, or a replica list with
// an empty or repeated ID).
func Place(prev Placement, members []string, shards int, cfg Config) (Placement, error) {
	if err := cfg.Validate(); err != nil {
		return Placement{}, err
	}
	cfg = cfg.withDefaults()
	if shards <= 0 || shards > MaxShards {
		return Placement{}, fmt.Errorf("%w: %d; want 1..%d", ErrInvalidShardCount, shards, MaxShards)
	}
	r, err := New(members, cfg.VirtualNodes)
	if err != nil {
		return Placement{}, err
	}
	if err := checkPrev(prev, shards); err != nil {
		return Placement{}, err
	}
	p := newPlanner(r, shards, min(cfg.Replicas, len(r.members)))
	p.keep(prev)
	p.trim()
	p.fill()
	p.balance()
	return p.placement(), nil
}

// checkPrev reports whether prev is a well-formed placement of shards.
func checkPrev(prev Placement, shards int) error {
	if len(prev.Shards) != 0 && len(prev.Shards) != shards {
		return fmt.Errorf("%w: it has %d shards; want %d (or none, for a new cluster)",
			ErrInvalidPlacement, len(prev.Shards), shards)
	}
	for s, set := range prev.Shards {
		for i, id := range set {
			if id == "" {
				return fmt.Errorf("%w: shard %d has an empty node ID", ErrInvalidPlacement, s)
			}
			if slices.Contains(set[:i], id) {
				return fmt.Errorf("%w: shard %d lists %q twice", ErrInvalidPlacement, s, id)
			}
		}
	}
	return nil
}

// A planner holds the state of one Place call. Members are identified by
// their index in the sorted member list, so every tie-break by index is a
// tie-break by node ID.
type planner struct {
	members  []string
	n        int // members
	shards   int
	replicas int // R' = min(R, n)

	rank  []int32   // rank[s*n+m]: m's position in shard s's preference list
	order [][]int32 // order[m]: all shards by (rank of m, shard ID)

	has   []bool    // has[s*n+m]: m holds a replica of s
	kept  [][]int32 // kept[s]: s's replicas carried over from prev, in prev's order
	added [][]int32 // added[s]: s's replicas added by this call, in order of addition
	load  []int     // load[m]: replicas m holds
}

func newPlanner(r *Ring, shards, replicas int) *planner {
	n := len(r.members)
	p := &planner{
		members:  r.members,
		n:        n,
		shards:   shards,
		replicas: replicas,
		rank:     make([]int32, shards*n),
		order:    make([][]int32, n),
		has:      make([]bool, shards*n),
		kept:     make([][]int32, shards),
		added:    make([][]int32, shards),
		load:     make([]int, n),
	}
	pref := make([]int32, 0, shards*n)
	seen := make([]bool, n)
	for s := range shards {
		pref = r.appendPreference(pref, uint32(s), seen)
		for k, m := range pref[s*n:] {
			p.rank[s*n+int(m)] = int32(k)
		}
	}
	// Bucket the shards by rank, then by shard ID within a rank: the
	// (rank, shard) order without a sort.
	backing := make([]int32, 0, shards*n)
	for m := range n {
		p.order[m] = backing[m*shards : m*shards : (m+1)*shards]
	}
	for k := range n {
		for s := range shards {
			m := pref[s*n+k]
			p.order[m] = append(p.order[m], int32(s))
		}
	}
	return p
}

// keep carries prev's replicas on members over, in prev's order.
func (p *planner) keep(prev Placement) {
	index := make(map[string]int32, p.n)
	for m, id := range p.members {
		index[id] = int32(m)
	}
	for s, set := range prev.Shards {
		for _, id := range set {
			if m, ok := index[id]; ok {
				p.kept[s] = append(p.kept[s], m)
				p.has[s*p.n+int(m)] = true
				p.load[m]++
			}
		}
	}
}

// trim removes replicas from shards that hold more than R' (after R was
// lowered): repeatedly, the most-loaded node (ties by ID) that sits in an
// over-full shard leaves the one where it ranks worst (ties by shard ID).
func (p *planner) trim() {
	excess := 0
	for s := range p.shards {
		excess += max(0, p.size(s)-p.replicas)
	}
	byLoad := make([]int32, p.n)
	for ; excess > 0; excess-- {
		for m := range byLoad {
			byLoad[m] = int32(m)
		}
		slices.SortFunc(byLoad, func(a, b int32) int {
			return cmp.Or(cmp.Compare(p.load[b], p.load[a]), cmp.Compare(a, b))
		})
	next:
		for _, m := range byLoad {
			order := p.order[m]
			for i := len(order) - 1; i >= 0; i-- {
				if s := int(order[i]); p.has[s*p.n+int(m)] && p.size(s) > p.replicas {
					p.remove(s, m)
					break next
				}
			}
		}
	}
}

// size is the number of replicas shard s holds.
func (p *planner) size(s int) int { return len(p.kept[s]) + len(p.added[s]) }

// add gives m a replica of s.
func (p *planner) add(s int, m int32) {
	p.added[s] = append(p.added[s], m)
	p.has[s*p.n+int(m)] = true
	p.load[m]++
}

// remove takes s's replica away from m, keeping the others' order.
func (p *planner) remove(s int, m int32) {
	if i := slices.Index(p.kept[s], m); i >= 0 {
		p.kept[s] = slices.Delete(p.kept[s], i, i+1)
	} else if i := slices.Index(p.added[s], m); i >= 0 {
		p.added[s] = slices.Delete(p.added[s], i, i+1)
	} else {
		return
	}
	p.has[s*p.n+int(m)] = false
	p.load[m]--
}

// leastLoaded returns the member with the fewest replicas, ties by ID.
func (p *planner) leastLoaded() int32 {
	best := int32(0)
	for m := range p.n {
		if p.load[m] < p.load[best] {
			best = int32(m)
		}
	}
	return best
}

// placement returns the planned placement: each shard's kept replicas in
// prev's order, then the added ones in preference order.
func (p *planner) placement() Placement {
	out := Placement{Shards: make([][]string, p.shards)}
	backing := make([]string, 0, p.shards*p.replicas)
	for s := range p.shards {
		slices.SortFunc(p.added[s], func(a, b int32) int {
			return cmp.Compare(p.rank[s*p.n+int(a)], p.rank[s*p.n+int(b)])
		})
		// Each list gets its own capacity-limited window of one array, so
		// appending to one never writes into the next.
		set := backing[len(backing) : len(backing) : len(backing)+p.size(s)]
		backing = backing[:len(backing)+p.size(s)]
		for _, m := range p.kept[s] {
			set = append(set, p.members[m])
		}
		for _, m := range p.added[s] {
			set = append(set, p.members[m])
		}
		out.Shards[s] = set
	}
	return out
}
