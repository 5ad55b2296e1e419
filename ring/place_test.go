package ring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestPlaceRejectsBadInput(t *testing.T) {
	good := []string{"a", "b", "c"}
	prev3, err := Place(Placement{}, good, 3, Config{})
	if err != nil {
		t.Fatalf("Place(3 shards): %v", err)
	}
	for _, tc := range []struct {
		name    string
		prev    Placement
		members []string
		shards  int
		cfg     Config
		want    error
	}{
		{"no members", Placement{}, nil, 64, Config{}, ErrNoMembers},
		{"empty member", Placement{}, []string{"a", ""}, 64, Config{}, ErrInvalidMember},
		{"duplicate member", Placement{}, []string{"a", "b", "a"}, 64, Config{}, ErrInvalidMember},
		{"zero shards", Placement{}, good, 0, Config{}, ErrInvalidShardCount},
		{"negative shards", Placement{}, good, -4, Config{}, ErrInvalidShardCount},
		{"too many shards", Placement{}, good, MaxShards + 1, Config{}, ErrInvalidShardCount},
		{"negative replicas", Placement{}, good, 64, Config{Replicas: -1}, ErrInvalidConfig},
		{"negative vnodes", Placement{}, good, 64, Config{VirtualNodes: -1}, ErrInvalidConfig},
		{"prev shard count", prev3, good, 64, Config{}, ErrInvalidPlacement},
		{"prev empty ID", Placement{Shards: [][]string{{"a", ""}}}, good, 1, Config{}, ErrInvalidPlacement},
		{"prev repeated ID", Placement{Shards: [][]string{{"a", "b", "a"}}}, good, 1, Config{}, ErrInvalidPlacement},
	} {
		p, err := Place(tc.prev, tc.members, tc.shards, tc.cfg)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Place(%v, %q, %d, %+v) = %v, %v; want error %v",
				tc.name, tc.prev, tc.members, tc.shards, tc.cfg, p, err, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("Config{}.Validate() = %v; want nil", err)
	}
	if got, want := (Config{}).withDefaults(), DefaultConfig(); got != want {
		t.Errorf("Config{} means %+v; want DefaultConfig() = %+v", got, want)
	}
	members := nodeNames(5)
	a, _ := Place(Placement{}, members, 64, Config{})
	b, _ := Place(Placement{}, members, 64, DefaultConfig())
	if !a.Equal(b) {
		t.Errorf("Place with Config{} differs from Place with DefaultConfig()")
	}
}

// TestPlaceFreshBalanced places shards on a new cluster of n nodes and checks
// shape and the floor/ceil balance, plus the stated 1.25 bound for the
// default 64 shards on 3 to 10 nodes.
func TestPlaceFreshBalanced(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 7, 64, 256, 1024} {
		for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 32, 100} {
			members := nodeNames(n)
			p, err := Place(Placement{}, members, shards, Config{})
			if err != nil {
				t.Fatalf("Place(%d nodes, %d shards): %v", n, shards, err)
			}
			want := min(DefaultReplicas, n)
			if err := checkShape(p, members, shards, want); err != nil {
				t.Errorf("%d nodes, %d shards: %v", n, shards, err)
			}
			if err := checkBalanced(p, members); err != nil {
				t.Errorf("%d nodes, %d shards: %v", n, shards, err)
			}
			b := p.Balance(members)
			if shards == 64 && n >= 3 && n <= 10 {
				t.Logf("%2d nodes, 64 shards: %v", n, b)
				if b.MaxOverMean > 1.25 {
					t.Errorf("%d nodes, 64 shards: %v; want max/mean <= 1.25", n, b)
				}
			}
		}
	}
}

// TestPlainConsistentHashingIsUnbalanced records, for comparison, the balance
// plain consistent hashing (each shard on the first R of its preference
// list) gets from the same ring. It asserts nothing about it: the figures
// explain the package's design.
func TestPlainConsistentHashingIsUnbalanced(t *testing.T) {
	for n := 3; n <= 10; n++ {
		members := nodeNames(n)
		r, _ := New(members, 0)
		var p Placement
		for s := range uint32(64) {
			p.Shards = append(p.Shards, r.Preference(s)[:DefaultReplicas])
		}
		t.Logf("plain consistent hashing, %2d nodes, 64 shards: %v", n, p.Balance(members))
	}
}

func TestPlaceDeterministic(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		shards := []int{16, 64, 300}[rng.IntN(3)]
		members := nodeNames(2 + rng.IntN(12))
		cfg := Config{Replicas: 1 + rng.IntN(5), VirtualNodes: 1 + rng.IntN(200)}
		// A prev placement with some history: placed on part of the
		// members, which then grow.
		prev, err := Place(Placement{}, members[:1+rng.IntN(len(members))], shards, cfg)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		a, err := Place(prev, members, shards, cfg)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		before := prev.Clone()
		b, err := Place(prev, shuffled(rng, members), shards, cfg)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !a.Equal(b) {
			t.Errorf("seed %d: Place with members %q and shuffled differ:\n%v\n%v", seed, members, a, b)
		}
		if !prev.Equal(before) {
			t.Errorf("seed %d: Place modified prev", seed)
		}
	}
}

// TestPlaceSmallClusters grows a cluster one node at a time from 1 to 5 and
// back: while there are fewer nodes than replicas, every node holds every
// shard; each step moves only onto the added node or off the removed one.
func TestPlaceSmallClusters(t *testing.T) {
	const shards = 64
	all := nodeNames(5)
	var prev Placement
	step := func(members, added, removed []string) {
		t.Helper()
		next, err := Place(prev, members, shards, Config{})
		if err != nil {
			t.Fatalf("Place(%q): %v", members, err)
		}
		if err := checkShape(next, members, shards, min(DefaultReplicas, len(members))); err != nil {
			t.Errorf("%q: %v", members, err)
		}
		if err := checkBalanced(next, members); err != nil {
			t.Errorf("%q: %v", members, err)
		}
		if prev.Shards != nil {
			if err := checkMoves(prev, next, added, removed); err != nil {
				t.Errorf("%q: %v", members, err)
			}
		}
		prev = next
	}
	for n := 1; n <= len(all); n++ {
		step(all[:n], all[n-1:n], nil)
	}
	for n := len(all) - 1; n >= 1; n-- {
		step(all[:n], nil, all[n:n+1])
	}
}

// TestPlaceReplicaCountChanges raises and lowers R on a live placement: the
// shape and balance hold, and raising R only adds replicas.
func TestPlaceReplicaCountChanges(t *testing.T) {
	members := nodeNames(7)
	for _, shards := range []int{64, 256} {
		prev, err := Place(Placement{}, members, shards, Config{Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []int{5, 2, 1, 7, 3, 9} {
			next, err := Place(prev, members, shards, Config{Replicas: r})
			if err != nil {
				t.Fatalf("R=%d: %v", r, err)
			}
			if err := checkShape(next, members, shards, min(r, len(members))); err != nil {
				t.Errorf("%d shards, R=%d: %v", shards, r, err)
			}
			if err := checkBalanced(next, members); err != nil {
				t.Errorf("%d shards, R=%d: %v", shards, r, err)
			}
			grew := len(next.Shards[0]) > len(prev.Shards[0])
			for _, m := range Diff(prev, next) {
				if grew && m.From != "" {
					t.Errorf("%d shards, R raised to %d: move %v; want additions only", shards, r, m)
					break
				}
			}
			prev = next
		}
	}
}

// TestPlaceOrderKeepsHistory checks the documented meaning of replica order:
// kept replicas first in prev's order, added ones after.
func TestPlaceOrderKeepsHistory(t *testing.T) {
	members := nodeNames(6)
	prev, _ := Place(Placement{}, members[:5], 64, Config{})
	r, _ := New(members, 0)
	for s, set := range prev.Shards {
		pref := r.Preference(uint32(s))
		if fmt.Sprint(set) != fmt.Sprint(filterOrdered(pref, set)) {
			t.Errorf("fresh shard %d = %q; want preference order %q", s, set, filterOrdered(pref, set))
		}
	}
	next, _ := Place(prev, members, 64, Config{})
	for s, set := range next.Shards {
		var kept []string
		for _, id := range prev.Shards[s] {
			if contains(set, id) {
				kept = append(kept, id)
			}
		}
		if fmt.Sprint(set[:len(kept)]) != fmt.Sprint(kept) {
			t.Errorf("shard %d: %q -> %q; want the kept replicas %q first, in the old order", s, prev.Shards[s], set, kept)
		}
	}
}

// filterOrdered returns the elements of order that are in set, in order's order.
func filterOrdered(order, set []string) []string {
	var out []string
	for _, id := range order {
		if contains(set, id) {
			out = append(out, id)
		}
	}
	return out
}

func contains(set []string, id string) bool {
	for _, x := range set {
		if x == id {
			return true
		}
	}
	return false
}

// TestPlaceGolden pins the output of the whole algorithm on a small case.
// Every node must compute the same placement, so a change here is a change
// of the cluster protocol: update the golden values only on purpose.
func TestPlaceGolden(t *testing.T) {
	r, err := New([]string{"d", "c", "b", "a"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range [][]string{{"c", "b", "a", "d"}, {"b", "d", "a", "c"}, {"d", "c", "a", "b"}, {"d", "c", "b", "a"}} {
		if got := r.Preference(uint32(s)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Preference(%d) = %q; want %q", s, got, want)
		}
	}
	p, err := Place(Placement{}, []string{"a", "b", "c", "d"}, 8, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := Placement{Shards: [][]string{
		{"c", "b", "a"}, {"b", "d", "a"}, {"d", "c", "a"}, {"d", "c", "b"},
		{"b", "c", "a"}, {"d", "a", "b"}, {"d", "a", "c"}, {"c", "b", "d"},
	}}
	if !p.Equal(want) {
		t.Errorf("fresh placement = %q; want %q", p.Shards, want.Shards)
	}
	q, err := Place(p, []string{"a", "b", "c", "d", "e"}, 8, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want = Placement{Shards: [][]string{
		{"c", "a", "e"}, {"b", "a", "e"}, {"d", "a", "e"}, {"d", "c", "b"},
		{"b", "c", "e"}, {"d", "a", "b"}, {"d", "a", "c"}, {"c", "b", "d"},
	}}
	if !q.Equal(want) {
		t.Errorf("after adding e = %q; want %q", q.Shards, want.Shards)
	}
}
