package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAddMovesOnlyOntoNewNode adds one node to a fresh cluster of n: every
// move goes onto the new node, and it receives floor or ceil of
// shards·R/(n+1), the least any balanced placement must move.
func TestAddMovesOnlyOntoNewNode(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{64, 256, 1024} {
		for _, n := range []int{3, 4, 5, 6, 7, 8, 9, 10, 16, 32} {
			all := nodeNames(n + 1)
			prev, err := Place(Placement{}, all[:n], shards, Config{})
			if err != nil {
				t.Fatal(err)
			}
			next, err := Place(prev, all, shards, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := checkMoves(prev, next, all[n:], nil); err != nil {
				t.Errorf("%d shards, %d+1 nodes: %v", shards, n, err)
			}
			got, ideal := moved(prev, next), float64(shards*DefaultReplicas)/float64(n+1)
			if float64(got) < ideal-1 || float64(got) > ideal+1 {
				t.Errorf("%d shards, %d+1 nodes: moved %d replicas; want floor or ceil of %d·%d/%d = %.2f",
					shards, n, got, shards, DefaultReplicas, n+1, ideal)
			}
			if shards == 64 && n <= 10 {
				t.Logf("64 shards, %2d -> %2d nodes: moved %2d replicas, S·R/(N+1) = %.2f; after: %v",
					n, n+1, got, ideal, next.Balance(all))
			}
		}
	}
}

// TestRemoveMovesOnlyItsReplicas removes each node of a fresh cluster in
// turn: exactly the removed node's replicas move, onto staying nodes.
func TestRemoveMovesOnlyItsReplicas(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{64, 256, 1024} {
		for _, n := range []int{4, 5, 6, 7, 8, 9, 10, 11, 17, 33} {
			all := nodeNames(n)
			prev, err := Place(Placement{}, all, shards, Config{})
			if err != nil {
				t.Fatal(err)
			}
			// Every node on 64 shards; a spread of 4 at the larger sizes.
			stride := 1
			if shards > 64 {
				stride = max(1, n/4)
			}
			for i := 0; i < n; i += stride {
				gone := all[i]
				stay := slices.Delete(slices.Clone(all), i, i+1)
				next, err := Place(prev, stay, shards, Config{})
				if err != nil {
					t.Fatal(err)
				}
				if err := checkMoves(prev, next, nil, []string{gone}); err != nil {
					t.Errorf("%d shards, %d nodes, removing %q: %v", shards, n, gone, err)
				}
				if err := checkBalanced(next, stay); err != nil {
					t.Errorf("%d shards, %d nodes, removing %q: %v", shards, n, gone, err)
				}
				if got, want := moved(prev, next), prev.Loads()[gone]; got != want {
					t.Errorf("%d shards, %d nodes, removing %q: moved %d replicas; want its %d", shards, n, gone, got, want)
				}
			}
		}
	}
}

// sequenceStats accumulates what TestMembershipSequences measured.
type sequenceStats struct {
	adds, removes, multi int
	addMoved             int     // replicas moved by single adds with R unchanged
	addIdeal             float64 // sum of shards·R'/(N+1) over those adds
	addMaxOff            float64 // largest |moved - shards·R'/(N+1)| of one add
	worstMaxOverMean     float64 // over placements with mean >= 4
}

// TestMembershipSequences applies random sequences of joins and leaves (one
// node, or several at once) incrementally, each Place starting from the
// previous result, and checks after every step: shape, balance, and that no
// replica moved between two nodes that both stay.
func TestMembershipSequences(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ shards, seeds, steps, maxNodes int }{
		{64, 12, 50, 12},
		{256, 4, 40, 20},
		{1024, 2, 20, 16},
		{64, 4, 40, 40},
	} {
		var st sequenceStats
		for seed := uint64(1); seed <= uint64(tc.seeds); seed++ {
			if err := runSequence(seed, tc.shards, tc.steps, tc.maxNodes, &st); err != nil {
				t.Errorf("%d shards, seed %d: %v", tc.shards, seed, err)
			}
		}
		t.Logf("%4d shards, up to %d nodes: %d single adds moved %d replicas (sum of S·R'/(N+1) = %.1f, worst single add off by %.2f), %d single removes, %d multi-node steps; worst max/mean (mean >= 4) %.3f",
			tc.shards, tc.maxNodes, st.adds, st.addMoved, st.addIdeal, st.addMaxOff, st.removes, st.multi, st.worstMaxOverMean)
	}
}

// runSequence runs one seeded random membership sequence and returns the
// first broken property, with the step that broke it.
func runSequence(seed uint64, shards, steps, maxNodes int, st *sequenceStats) error {
	rng := rand.New(rand.NewPCG(seed, uint64(shards)))
	cfg := Config{}
	var members []string
	for range 1 + rng.IntN(5) {
		members = append(members, newNodeName(rng, members))
	}
	prev, err := Place(Placement{}, members, shards, cfg)
	if err != nil {
		return err
	}
	for step := range steps {
		var added, removed []string
		next := slices.Clone(members)
		k := 1
		if rng.IntN(8) == 0 {
			k = 2 + rng.IntN(2)
		}
		grow := rng.IntN(2) == 0
		if len(members)-k < 1 {
			grow = true
		} else if len(members)+k > maxNodes {
			grow = false
		}
		for range k {
			if grow {
				id := newNodeName(rng, next)
				next = append(next, id)
				added = append(added, id)
			} else {
				i := rng.IntN(len(next))
				removed = append(removed, next[i])
				next = slices.Delete(next, i, i+1)
			}
		}
		where := fmt.Sprintf("step %d, %q -> %q (added %q, removed %q)", step, members, next, added, removed)
		p, err := Place(prev, shuffled(rng, next), shards, cfg)
		if err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		oldR, newR := min(DefaultReplicas, len(members)), min(DefaultReplicas, len(next))
		if err := checkShape(p, next, shards, newR); err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		if err := checkBalanced(p, next); err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		if err := checkMoves(prev, p, added, removed); err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		// Only the necessary replicas move: on an add, exactly the new
		// nodes' replicas (checkBalanced bounds how many those are); on a
		// removal, exactly as many as the shards lack once the removed
		// nodes are gone: their replicas, or fewer if R' shrank.
		want := 0
		if grow {
			loads := p.Loads()
			for _, id := range added {
				want += loads[id]
			}
		} else {
			for _, set := range prev.Shards {
				staying := 0
				for _, id := range set {
					if slices.Contains(next, id) {
						staying++
					}
				}
				want += max(0, newR-staying)
			}
		}
		if got := moved(prev, p); got != want {
			return fmt.Errorf("%s: moved %d replicas; want %d", where, got, want)
		}
		switch {
		case k > 1:
			st.multi++
		case grow:
			st.adds++
			if oldR == newR {
				ideal := float64(shards*newR) / float64(len(next))
				st.addMoved += want
				st.addIdeal += ideal
				st.addMaxOff = max(st.addMaxOff, abs(float64(want)-ideal))
			}
		default:
			st.removes++
		}
		if b := p.Balance(next); b.Mean >= 4 {
			st.worstMaxOverMean = max(st.worstMaxOverMean, b.MaxOverMean)
		}
		members, prev = next, p
	}
	return nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
