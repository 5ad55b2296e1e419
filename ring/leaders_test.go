package ring

import (
	"fmt"
	"testing"
)

func TestPreferredLeadersBalanced(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 10} {
		for _, shards := range []int{8, 64, 256} {
			var members []string
			for i := 0; i < n; i++ {
				members = append(members, fmt.Sprintf("node-%d", i))
			}
			p, err := Place(Placement{}, members, shards, Config{})
			if err != nil {
				t.Fatal(err)
			}
			leaders := PreferredLeaders(p)
			count := map[string]int{}
			for s, l := range leaders {
				if !contains(p.Shards[s], l) {
					t.Fatalf("n=%d shards=%d: shard %d led by %q, not one of its replicas %v", n, shards, s, l, p.Shards[s])
				}
				count[l]++
			}
			// Greedy is within one shard of the even share.
			lo, hi := shards/n-1, (shards+n-1)/n+1
			for _, m := range members {
				if c := count[m]; c < lo || c > hi {
					t.Errorf("n=%d shards=%d: %s leads %d shards; want %d..%d", n, shards, m, c, lo, hi)
				}
			}
			if again := PreferredLeaders(p); fmt.Sprint(again) != fmt.Sprint(leaders) {
				t.Errorf("n=%d shards=%d: PreferredLeaders is not deterministic", n, shards)
			}
		}
	}
}
