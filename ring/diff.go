package ring

import (
	"fmt"
	"slices"
)

// A Move is one change to one shard's replica set between two placements.
// From and To are node IDs; an empty From means a replica is added (the
// replica count grew) and an empty To means one is dropped.
type Move struct {
	Shard uint32 `json:"shard"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
}

// String formats m as "shard 3: a -> b", "shard 3: + b" or "shard 3: - a".
func (m Move) String() string {
	switch {
	case m.From == "":
		return fmt.Sprintf("shard %d: + %s", m.Shard, m.To)
	case m.To == "":
		return fmt.Sprintf("shard %d: - %s", m.Shard, m.From)
	default:
		return fmt.Sprintf("shard %d: %s -> %s", m.Shard, m.From, m.To)
	}
}

// Diff lists the moves that turn prev into next, by shard. Within a shard,
// the nodes leaving (in prev's order) are paired with the nodes joining (in
// next's order); unpaired ones become additions or removals. Order within a
// replica list alone is not a move. A shard missing from one placement
// counts as having no replicas there, so Diff(Placement{}, p) lists every
// replica of p as an addition.
func Diff(prev, next Placement) []Move {
	var moves []Move
	for s := range max(len(prev.Shards), len(next.Shards)) {
		var before, after []string
		if s < len(prev.Shards) {
			before = prev.Shards[s]
		}
		if s < len(next.Shards) {
			after = next.Shards[s]
		}
		var leaving, joining []string
		for _, id := range before {
			if !slices.Contains(after, id) {
				leaving = append(leaving, id)
			}
		}
		for _, id := range after {
			if !slices.Contains(before, id) {
				joining = append(joining, id)
			}
		}
		for k := range max(len(leaving), len(joining)) {
			m := Move{Shard: uint32(s)}
			if k < len(leaving) {
				m.From = leaving[k]
			}
			if k < len(joining) {
				m.To = joining[k]
			}
			moves = append(moves, m)
		}
	}
	return moves
}
