package ring

// balance evens out the loads once every shard is full. While the most
// loaded node holds at least two replicas more than the least-loaded node U
// (ties by ID), it moves one replica onto U: among the shards without U that
// have a most-loaded member, the one where U ranks best (ties by shard ID),
// taking it from the most-loaded member that ranks worst there.
//
// Such a shard always exists: a most-loaded node holds more shards than U,
// so it holds one U lacks. Each move lowers the sum of squared loads by at
// least 2, so the loop ends, with every load at floor or ceil of the mean.
//
// Starting from a balanced placement with nodes added (their loads 0), U is
// always a new node: the old nodes' loads stay within one of each other and
// only the fullest of them lose replicas, so an old node is least-loaded
// only when all loads are within one. Hence an add moves replicas only onto
// new nodes.
func (p *planner) balance() {
	// cursor indexes p.order[u]: the shards before it hold u or have no
	// member at load top. That stays true while u and top stay the same:
	// u gains shards but loses none (it is not the most loaded), and no
	// node's load rises to top (only u's rises, to at most top-1).
	cursor, lastU, lastTop := 0, int32(-1), -1
	for {
		u := p.leastLoaded()
		top := p.load[0]
		for _, l := range p.load {
			top = max(top, l)
		}
		if top-p.load[u] <= 1 {
			return
		}
		if u != lastU || top != lastTop {
			cursor, lastU, lastTop = 0, u, top
		}
		if !p.moveOnto(u, top, &cursor) {
			return // unreachable, see above; never loop forever
		}
	}
}

// moveOnto moves one replica onto u from a member with load top, as balance
// describes, and reports whether it found one to move. It searches
// p.order[u] from *cursor on and leaves *cursor past the shards it rules out.
func (p *planner) moveOnto(u int32, top int, cursor *int) bool {
	order := p.order[u]
	for ; *cursor < len(order); *cursor++ {
		s := int(order[*cursor])
		if p.has[s*p.n+int(u)] {
			continue
		}
		victim := int32(-1)
		for _, set := range [2][]int32{p.kept[s], p.added[s]} {
			for _, m := range set {
				if p.load[m] == top && (victim < 0 || p.rank[s*p.n+int(m)] > p.rank[s*p.n+int(victim)]) {
					victim = m
				}
			}
		}
		if victim >= 0 {
			p.remove(s, victim)
			p.add(s, u)
			*cursor++
			return true
		}
	}
	return false
}
