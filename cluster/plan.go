package cluster

import (
	"slices"
)

// Pending returns the moves that remain to bring every shard without a move
// in progress to its target, in the order Plan would start them. A shard
// can have several: they run one after another.
func (s *State) Pending() []Move {
	var out []Move
	for _, c := range s.candidates() {
		out = append(out, c.moves...)
	}
	return out
}

// Plan picks the moves to start now: at most one per shard, and at most
// maxPerNode moves in progress involving any one live node (a dead source
// does not count: it sends nothing). Shards that lost a replica to a dead
// node go first, then shards short of replicas, then the rest by shard ID.
// now (Unix milliseconds) is recorded as the moves' start.
func (s *State) Plan(maxPerNode int, now int64) []Move {
	load := map[string]int{}
	for _, m := range s.Moves {
		s.charge(load, m)
	}
	var out []Move
	for _, c := range s.candidates() {
		m := c.moves[0]
		if !s.fits(load, m, maxPerNode) {
			continue
		}
		m.Started = now
		s.charge(load, m)
		out = append(out, m)
	}
	return out
}

func (s *State) charge(load map[string]int, m Move) {
	if m.From != "" && !s.isDead(m.From) {
		load[m.From]++
	}
	if m.To != "" {
		load[m.To]++
	}
}

func (s *State) fits(load map[string]int, m Move, maxPerNode int) bool {
	if m.From != "" && !s.isDead(m.From) && load[m.From] >= maxPerNode {
		return false
	}
	return m.To == "" || load[m.To] < maxPerNode
}

func (s *State) isDead(id string) bool {
	m, ok := s.Member(id)
	return ok && m.Unreachable()
}

type candidate struct {
	shard    uint32
	priority int // lower goes first
	moves    []Move
}

// candidates lists, for every shard that differs from its target and has no
// move in progress, the moves that reach the target, by priority.
func (s *State) candidates() []candidate {
	var out []candidate
	for i, reps := range s.Shards {
		id := uint32(i)
		if _, busy := s.ActiveMove(id); busy {
			continue
		}
		target := s.targetOf(i)
		var leaving, joining []string
		for _, r := range reps {
			if !slices.Contains(target, r) {
				leaving = append(leaving, r)
			}
		}
		for _, t := range target {
			if !slices.Contains(reps, t) {
				joining = append(joining, t)
			}
		}
		if len(leaving) == 0 && len(joining) == 0 {
			continue
		}
		// Dead sources first, so the shard regains a live replica soonest.
		slices.SortStableFunc(leaving, func(a, b string) int {
			return boolRank(!s.isDead(a)) - boolRank(!s.isDead(b))
		})
		c := candidate{shard: id, priority: 2}
		for k := range max(len(leaving), len(joining)) {
			m := Move{Shard: id}
			if k < len(leaving) {
				m.From = leaving[k]
			}
			if k < len(joining) {
				m.To = joining[k]
			}
			c.moves = append(c.moves, m)
		}
		switch {
		case len(leaving) > 0 && s.isDead(leaving[0]):
			c.priority = 0
		case len(reps) < len(target):
			c.priority = 1
		}
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(a, b candidate) int { return a.priority - b.priority })
	return out
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
