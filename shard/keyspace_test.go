package shard

import (
	"fmt"
	"testing"
)

func TestHashPart(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"plain", "plain"},
		{"{user42}.cart", "user42"},
		{"a{b}c{d}", "b"},
		{"{}x{y}", "{}x{y}"},
		{"no{close", "no{close"},
		{"}{x}", "x"},
		{"", ""},
	} {
		if got := string(HashPart([]byte(tc.key))); got != tc.want {
			t.Errorf("HashPart(%q) = %q; want %q", tc.key, got, tc.want)
		}
	}
}

func TestOfInRangeAndSpread(t *testing.T) {
	const count = 64
	seen := make([]int, count)
	for i := 0; i < 64000; i++ {
		id := Of([]byte(fmt.Sprintf("key-%d", i)), count)
		if id >= count {
			t.Fatalf("Of(key-%d) = %d; want < %d", i, id, count)
		}
		seen[id]++
	}
	for id, n := range seen {
		// 1000 expected per shard; a uniform hash stays well within ±20%.
		if n < 800 || n > 1200 {
			t.Errorf("shard %d got %d of 64000 keys; want about 1000", id, n)
		}
	}
}

func TestOfHashTagsColocate(t *testing.T) {
	for _, count := range []uint32{1, 7, 64, 4096} {
		a := Of([]byte("{order:9}.items"), count)
		b := Of([]byte("{order:9}.total"), count)
		if a != b {
			t.Errorf("count %d: hash-tagged keys on shards %d and %d; want the same", count, a, b)
		}
	}
}
