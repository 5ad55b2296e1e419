package ring

// fill gives every shard R' replicas. Each step adds one replica to the
// least-loaded member that can take one, at the vacant shard where it ranks
// best (ties by shard ID) — plain water-filling.
//
// Plain water-filling can get stuck with an unbalanced result: after a node
// leaves, the least-loaded staying node may already hold every shard with a
// vacancy, so the vacancies go to fuller nodes and the balancing step then
// has to move replicas between staying nodes. To avoid that, when the
// least-loaded member cannot take a vacancy directly, fill searches for an
// augmenting path: vacant shard s0 goes to node n1, which gives up a replica
// it was added to earlier in this call, shard s1, to node n2, and so on,
// ending at the least-loaded node reachable. Only replicas added by this
// call are ever handed on, never ones kept from prev. This is the successive
// shortest path algorithm for a min-cost flow with convex per-node costs
// (the marginal cost of a replica grows with the node's load), so the fill
// as a whole is the most balanced assignment of the vacancies that leaves
// kept replicas in place: if a balanced one exists, fill finds it.
func (p *planner) fill() {
	vacancies := 0
	for s := range p.shards {
		vacancies += max(0, p.replicas-p.size(s))
	}
	// cursor[m] indexes p.order[m]: shards before it are known not to take
	// m. During fill, a shard that is full stays full and a shard m holds
	// stays held, except when an augmenting path takes m out of a shard;
	// then m's cursor restarts.
	cursor := make([]int, p.n)
	for ; vacancies > 0; vacancies-- {
		u := p.leastLoaded()
		if s, ok := p.firstVacancy(u, cursor); ok {
			p.add(s, u)
			continue
		}
		p.augment(cursor)
	}
}

// firstVacancy returns the shard with a vacancy and without m where m ranks
// best, ties by shard ID.
func (p *planner) firstVacancy(m int32, cursor []int) (int, bool) {
	order := p.order[m]
	for ; cursor[m] < len(order); cursor[m]++ {
		if s := int(order[cursor[m]]); p.size(s) < p.replicas && !p.has[s*p.n+int(m)] {
			return s, true
		}
	}
	return 0, false
}

// augment fills one vacancy along the shortest augmenting path that ends at
// the least-loaded reachable member (ties by path length, then ID). It is a
// breadth-first search over members: a member is one step away if it can
// take a vacancy directly, and d+1 steps away if it can take over, in a
// shard it does not hold, a replica that a member d steps away was added to
// by this call.
func (p *planner) augment(cursor []int) {
	const unseen = -1
	dist := make([]int32, p.n)
	via := make([]int32, p.n)  // the shard the member joins
	from := make([]int32, p.n) // the member that leaves that shard, or -1
	for m := range int32(p.n) {
		dist[m] = unseen
		if s, ok := p.firstVacancy(m, cursor); ok {
			dist[m], via[m], from[m] = 1, int32(s), -1
		}
	}
	// Level by level; a level's members were all found by the level before.
	for d, grew := int32(1), true; grew; d++ {
		grew = false
		for s := range p.shards {
			for _, m := range p.added[s] {
				if dist[m] != d {
					continue
				}
				for k := range int32(p.n) {
					if dist[k] == unseen && !p.has[s*p.n+int(k)] {
						dist[k], via[k], from[k] = d+1, int32(s), m
						grew = true
					}
				}
			}
		}
	}
	t := int32(-1)
	for m := range int32(p.n) {
		if dist[m] == unseen {
			continue
		}
		if t < 0 || p.load[m] < p.load[t] || (p.load[m] == p.load[t] && dist[m] < dist[t]) {
			t = m
		}
	}
	// A shard with a vacancy has fewer than R' <= n replicas, so some member
	// can take it directly: t exists. Walk the path back from t.
	for m := t; m >= 0; m = from[m] {
		s := int(via[m])
		if f := from[m]; f >= 0 {
			p.remove(s, f)
			cursor[f] = 0
		}
		p.add(s, m)
	}
}
