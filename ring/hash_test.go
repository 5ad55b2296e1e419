package ring

import (
	"strconv"
	"testing"
)

func TestVnodeKeyUnambiguous(t *testing.T) {
	// Pairs that collide under groupcache's strconv.Itoa(i)+id encoding,
	// and under plain id+decimal(i).
	for _, tc := range []struct {
		idA string
		iA  uint32
		idB string
		iB  uint32
	}{
		{"1", 12, "11", 2},
		{"12", 1, "2", 11},
		{"node1", 23, "node12", 3},
		{"", 1, "1", 0}, // not a valid member ID, but the encoding still separates it
		{"a\x00", 0, "a", 0},
	} {
		ka := string(appendVnodeKey(nil, tc.idA, tc.iA))
		kb := string(appendVnodeKey(nil, tc.idB, tc.iB))
		if ka == kb {
			t.Errorf("vnode key of (%q, %d) = vnode key of (%q, %d) = %q; want distinct", tc.idA, tc.iA, tc.idB, tc.iB, ka)
		}
		pa, pb := vnodePosition(tc.idA, tc.iA), vnodePosition(tc.idB, tc.iB)
		if pa == pb {
			t.Errorf("vnodePosition(%q, %d) = vnodePosition(%q, %d) = %#x; want distinct", tc.idA, tc.iA, tc.idB, tc.iB, pa)
		}
	}
}

func TestVnodeKeysInjectiveOnGrid(t *testing.T) {
	// Every (id, i) over IDs built from the same digits gets its own key and
	// its own position.
	keys := make(map[string]string)
	positions := make(map[uint64]string)
	for a := range 200 {
		id := strconv.Itoa(a)
		for i := range uint32(200) {
			name := id + "#" + strconv.Itoa(int(i))
			k := string(appendVnodeKey(nil, id, i))
			if prev, ok := keys[k]; ok {
				t.Fatalf("vnode %s and vnode %s share key %q", prev, name, k)
			}
			keys[k] = name
			p := vnodePosition(id, i)
			if prev, ok := positions[p]; ok {
				t.Fatalf("vnode %s and vnode %s share position %#x", prev, name, p)
			}
			positions[p] = name
		}
	}
}

// The encodings are part of the cluster protocol: nodes that encode
// differently rank nodes differently and compute different placements.
// Changing these golden values needs a migration plan, not a test update.
func TestKeyEncodingsGolden(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{string(appendVnodeKey(nil, "node-a", 5)), "vnode/\x06node-a\x00\x00\x00\x05"},
		{string(appendVnodeKey(nil, "", 0)), "vnode/\x00\x00\x00\x00\x00"},
		{string(appendShardKey(nil, 0)), "shard/\x00\x00\x00\x00"},
		{string(appendShardKey(nil, 0x01020304)), "shard/\x01\x02\x03\x04"},
	} {
		if tc.got != tc.want {
			t.Errorf("key = %q; want %q", tc.got, tc.want)
		}
	}
	if vnodePosition("node-a", 5) == shardPosition(5) {
		t.Errorf("vnode and shard positions coincide; want the prefixes to separate them")
	}
}
