package ring

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestNewRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []string
		vnodes  int
		want    error
	}{
		{"no members", nil, 0, ErrNoMembers},
		{"empty list", []string{}, 0, ErrNoMembers},
		{"empty ID", []string{"a", ""}, 0, ErrInvalidMember},
		{"duplicate ID", []string{"a", "b", "a"}, 0, ErrInvalidMember},
		{"negative vnodes", []string{"a"}, -1, ErrInvalidConfig},
		{"too many vnodes", []string{"a"}, MaxVirtualNodes + 1, ErrInvalidConfig},
	} {
		r, err := New(tc.members, tc.vnodes)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: New(%q, %d) = %v, %v; want error %v", tc.name, tc.members, tc.vnodes, r, err, tc.want)
		}
	}
}

func TestNewDefaultsAndSortsMembers(t *testing.T) {
	in := []string{"c", "a", "b"}
	r, err := New(in, 0)
	if err != nil {
		t.Fatalf("New(%q, 0): %v", in, err)
	}
	if got := r.VirtualNodes(); got != DefaultVirtualNodes {
		t.Errorf("VirtualNodes() = %d; want %d", got, DefaultVirtualNodes)
	}
	if got, want := r.Members(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("Members() = %q; want %q", got, want)
	}
	if !slices.Equal(in, []string{"c", "a", "b"}) {
		t.Errorf("New modified its argument: %q", in)
	}
}

func TestPreferenceListsEveryMemberOnce(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 32} {
		for _, vnodes := range []int{1, 4, DefaultVirtualNodes} {
			members := nodeNames(n)
			r, err := New(members, vnodes)
			if err != nil {
				t.Fatalf("New(%d members, %d vnodes): %v", n, vnodes, err)
			}
			for s := range uint32(200) {
				pref := r.Preference(s)
				got, want := slices.Sorted(slices.Values(pref)), slices.Sorted(slices.Values(members))
				if !slices.Equal(got, want) {
					t.Fatalf("%d members, %d vnodes: Preference(%d) = %q; want each of %q exactly once", n, vnodes, s, pref, want)
				}
			}
		}
	}
}

func TestPreferenceIgnoresMemberOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	members := nodeNames(9)
	a, _ := New(members, 0)
	b, _ := New(shuffled(rng, members), 0)
	for s := range uint32(256) {
		if pa, pb := a.Preference(s), b.Preference(s); !slices.Equal(pa, pb) {
			t.Fatalf("Preference(%d) = %q with members %q, %q after shuffling; want equal", s, pa, members, pb)
		}
	}
}

func TestPreferenceFollowsRing(t *testing.T) {
	// Recompute a preference list by brute force from the positions: the
	// members in order of the first vnode of each at or after the shard,
	// clockwise.
	members := []string{"x", "y", "z", "w"}
	r, _ := New(members, 8)
	for s := range uint32(64) {
		pos := shardPosition(s)
		dist := make(map[string]uint64) // clockwise distance to the member's nearest vnode
		for _, id := range members {
			best := ^uint64(0)
			for i := range uint32(8) {
				best = min(best, vnodePosition(id, i)-pos) // wraps mod 2^64
			}
			dist[id] = best
		}
		want := slices.Clone(members)
		slices.SortFunc(want, func(a, b string) int {
			if dist[a] < dist[b] {
				return -1
			}
			return 1
		})
		if got := r.Preference(s); !slices.Equal(got, want) {
			t.Errorf("Preference(%d) = %q; want %q (clockwise order of nearest vnodes)", s, got, want)
		}
	}
}

func TestPreferenceSpreadsFirstRank(t *testing.T) {
	// With the default vnodes each of 8 members should rank first for about
	// an eighth of the shards.
	members := nodeNames(8)
	r, _ := New(members, 0)
	first := make(map[string]int)
	const shards = 8000
	for s := range uint32(shards) {
		first[r.Preference(s)[0]]++
	}
	for _, id := range members {
		if c := first[id]; c < 700 || c > 1300 {
			t.Errorf("%q ranks first for %d of %d shards; want about %d", id, c, shards, shards/len(members))
		}
	}
}
