package ring

import (
	"fmt"
	"testing"
)

func BenchmarkPreference(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			r, err := New(nodeNames(n), 0)
			if err != nil {
				b.Fatal(err)
			}
			var s uint32
			for b.Loop() {
				r.Preference(s % 1024)
				s++
			}
		})
	}
}

// BenchmarkPlace measures a fresh placement and the two incremental cases, a
// node joining and a node leaving, on 10 nodes.
func BenchmarkPlace(b *testing.B) {
	for _, shards := range []int{64, 1024, 16384} {
		nodes := nodeNames(11)
		ten, eleven := nodes[:10], nodes
		prev10, err := Place(Placement{}, ten, shards, Config{})
		if err != nil {
			b.Fatal(err)
		}
		prev11, err := Place(Placement{}, eleven, shards, Config{})
		if err != nil {
			b.Fatal(err)
		}
		for _, bc := range []struct {
			name    string
			prev    Placement
			members []string
		}{
			{"fresh", Placement{}, ten},
			{"join", prev10, eleven},
			{"leave", prev11, ten},
		} {
			b.Run(fmt.Sprintf("shards=%d/nodes=10/%s", shards, bc.name), func(b *testing.B) {
				for b.Loop() {
					if _, err := Place(bc.prev, bc.members, shards, Config{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
