package ring_test

import (
	"fmt"

	"github.com/ringkv/ringkv/ring"
)

// A cluster of three nodes grows to four: only the new node receives
// replicas, a quarter of them, and the loads stay even.
func ExamplePlace() {
	const shards = 64
	p, err := ring.Place(ring.Placement{}, []string{"n1", "n2", "n3"}, shards, ring.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Balance(nil))

	members := []string{"n1", "n2", "n3", "n4"}
	next, err := ring.Place(p, members, shards, ring.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	moves := ring.Diff(p, next)
	onto := make(map[string]int)
	for _, m := range moves {
		onto[m.To]++
	}
	fmt.Println(len(moves), "moves, onto", onto)
	fmt.Println(next.Balance(members))
	// Output:
	// 3 nodes, 192 replicas: min 64, max 64, mean 64.00, max/mean 1.000
	// 48 moves, onto map[n4:48]
	// 4 nodes, 192 replicas: min 48, max 48, mean 48.00, max/mean 1.000
}
