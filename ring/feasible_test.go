package ring

// balancedFillExists is an independent check of fill's claim, by max-flow:
// it reports whether the vacancies of p (after keep and trim, before fill)
// can be filled, each by a member not yet in the shard, so that every load
// ends at floor or ceil of the mean. That is a flow with lower bounds:
// source -> shard (exactly its vacancies), shard -> member (capacity 1, if
// the member is not in the shard), member -> sink (between floor-load and
// ceil-load), reduced to plain max-flow the textbook way (a sink->source
// edge, and a super source and sink carrying the lower bounds).
func balancedFillExists(p *planner) bool {
	total := p.shards * p.replicas
	floor, ceil := total/p.n, (total+p.n-1)/p.n
	const source, sink, superSource, superSink, firstShard = 0, 1, 2, 3, 4
	firstMember := firstShard + p.shards
	g := &flowGraph{adj: make([][]flowEdge, firstMember+p.n)}
	excess := make([]int, len(g.adj))
	for s := range p.shards {
		need := p.replicas - p.size(s)
		if need <= 0 {
			continue
		}
		excess[firstShard+s] += need
		excess[source] -= need
		for m := range p.n {
			if !p.has[s*p.n+m] {
				g.add(firstShard+s, firstMember+m, 1)
			}
		}
	}
	for m := range p.n {
		lo, hi := max(0, floor-p.load[m]), ceil-p.load[m]
		if hi < 0 {
			return false // already above the ceiling; fill cannot lower it
		}
		excess[sink] += lo
		excess[firstMember+m] -= lo
		g.add(firstMember+m, sink, hi-lo)
	}
	g.add(sink, source, total)
	want := 0
	for v, e := range excess {
		switch {
		case e > 0:
			g.add(superSource, v, e)
			want += e
		case e < 0:
			g.add(v, superSink, -e)
		}
	}
	return g.maxFlow(superSource, superSink) == want
}

// flowGraph is a residual graph for Edmonds-Karp max-flow.
type flowGraph struct{ adj [][]flowEdge }

type flowEdge struct{ to, rev, cap int }

func (g *flowGraph) add(u, v, c int) {
	g.adj[u] = append(g.adj[u], flowEdge{to: v, rev: len(g.adj[v]), cap: c})
	g.adj[v] = append(g.adj[v], flowEdge{to: u, rev: len(g.adj[u]) - 1})
}

func (g *flowGraph) maxFlow(s, t int) int {
	total := 0
	for {
		type hop struct{ from, edge int }
		prev := make([]hop, len(g.adj))
		for i := range prev {
			prev[i] = hop{-1, -1}
		}
		prev[s] = hop{s, -1}
		for q := []int{s}; len(q) > 0 && prev[t].from < 0; q = q[1:] {
			for i, e := range g.adj[q[0]] {
				if e.cap > 0 && prev[e.to].from < 0 {
					prev[e.to] = hop{q[0], i}
					q = append(q, e.to)
				}
			}
		}
		if prev[t].from < 0 {
			return total
		}
		f := -1
		for v := t; v != s; v = prev[v].from {
			if c := g.adj[prev[v].from][prev[v].edge].cap; f < 0 || c < f {
				f = c
			}
		}
		for v := t; v != s; v = prev[v].from {
			e := &g.adj[prev[v].from][prev[v].edge]
			e.cap -= f
			g.adj[v][e.rev].cap += f
		}
		total += f
	}
}
