package ring

import (
	"cmp"
	"fmt"
	"slices"
)

// A Ring places VirtualNodes points per member on a 64-bit hash circle and
// ranks the members for each shard by walking clockwise from the shard's
// point. It is immutable once built and safe for concurrent use.
//
// The ranks are not the placement (the package documentation says why):
// they are the tie-breaker Place uses to choose among equally good
// placements.
type Ring struct {
	members []string // sorted; a member's index here is its identity below
	vnodes  int
	points  []point // sorted by (pos, member, vnode)
}

// point is one vnode on the circle.
type point struct {
	pos    uint64
	member int32
	vnode  uint32
}

// New builds the ring of members with vnodes points each; vnodes == 0 means
// DefaultVirtualNodes. The order of members does not matter. It returns
// ErrNoMembers, ErrInvalidMember (empty or duplicate ID) or ErrInvalidConfig
// (vnodes out of range).
func New(members []string, vnodes int) (*Ring, error) {
	if err := validateVirtualNodes(vnodes); err != nil {
		return nil, err
	}
	if vnodes == 0 {
		vnodes = DefaultVirtualNodes
	}
	sorted, err := sortedMembers(members)
	if err != nil {
		return nil, err
	}
	r := &Ring{
		members: sorted,
		vnodes:  vnodes,
		points:  make([]point, 0, len(sorted)*vnodes),
	}
	for m, id := range sorted {
		for i := range uint32(vnodes) {
			r.points = append(r.points, point{pos: vnodePosition(id, i), member: int32(m), vnode: i})
		}
	}
	// Equal positions (a 64-bit hash collision) are ordered by node ID, the
	// members' sorted order, then vnode index: a total order, so every node
	// builds the same ring.
	slices.SortFunc(r.points, func(a, b point) int {
		if a.pos != b.pos {
			return cmp.Compare(a.pos, b.pos)
		}
		return cmp.Or(cmp.Compare(a.member, b.member), cmp.Compare(a.vnode, b.vnode))
	})
	return r, nil
}

// sortedMembers returns a sorted copy of members, or an error if it is empty
// or holds an empty or repeated ID.
func sortedMembers(members []string) ([]string, error) {
	if len(members) == 0 {
		return nil, ErrNoMembers
	}
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	for i, id := range sorted {
		if id == "" {
			return nil, fmt.Errorf("%w: empty ID", ErrInvalidMember)
		}
		if i > 0 && sorted[i-1] == id {
			return nil, fmt.Errorf("%w: %q listed twice", ErrInvalidMember, id)
		}
	}
	return sorted, nil
}

// Members returns the ring's members in sorted order, the order Place uses
// to break ties between equally loaded nodes.
func (r *Ring) Members() []string { return slices.Clone(r.members) }

// VirtualNodes returns the number of vnodes per member.
func (r *Ring) VirtualNodes() int { return r.vnodes }

// Preference returns shard's preference list: every member exactly once, in
// the order met walking clockwise from the shard's position (the first vnode
// at or after it, wrapping around). Plain consistent hashing would place the
// shard on the first R of them.
func (r *Ring) Preference(shard uint32) []string {
	idx := r.appendPreference(make([]int32, 0, len(r.members)), shard, make([]bool, len(r.members)))
	ids := make([]string, len(idx))
	for k, m := range idx {
		ids[k] = r.members[m]
	}
	return ids
}

// appendPreference appends shard's preference list, as member indexes, to
// dst. seen is scratch space of len(r.members), all false on entry and on
// return.
func (r *Ring) appendPreference(dst []int32, shard uint32, seen []bool) []int32 {
	pos := shardPosition(shard)
	start, _ := slices.BinarySearchFunc(r.points, pos, func(p point, pos uint64) int {
		return cmp.Compare(p.pos, pos)
	})
	n0, want := len(dst), len(r.members)
	for k := range r.points {
		m := r.points[(start+k)%len(r.points)].member
		if seen[m] {
			continue
		}
		seen[m] = true
		dst = append(dst, m)
		if len(dst)-n0 == want {
			break
		}
	}
	for _, m := range dst[n0:] {
		seen[m] = false
	}
	return dst
}
