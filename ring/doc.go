// Package ring decides which nodes hold the replicas of each shard.
//
// The key space is cut into a fixed number of shards elsewhere (package
// shard); this package maps every shard to a replica set of R nodes (the
// replication factor, DefaultReplicas unless configured). The result, a
// Placement, is explicit state: the cluster metadata stores it, and each
// membership change computes the next Placement from the previous one with
// Place. Diff turns two placements into the replica moves a rebalancer
// carries out.
//
// # Why not plain consistent hashing
//
// Consistent hashing places each shard at a point on a ring of virtual nodes
// and gives it to the next R distinct nodes clockwise. With many vnodes the
// ring itself is fair, but a cluster has few shards: 64 shards with R = 3
// are only 192 replicas, and each lands on a node almost independently with
// probability 1/N, so a node's count is roughly Binomial(192, 1/N). For
// N = 10 that is a mean of 19.2 with a standard deviation of 4.2, and the
// fullest of ten nodes typically holds 1.3 to 1.5 times the mean. No vnode
// count fixes this: the noise comes from the 64 shard points, not from the
// ring. Nor is consistent hashing's small movement worth much here, because
// the assignment is stored, not recomputed on every lookup.
//
// # What Place does instead
//
// Place uses bounded-load consistent hashing, made incremental. The Ring of
// vnodes only ranks the nodes for each shard (its preference list, see
// Ring.Preference); the ranks break ties, so that placements still look like
// consistent hashing where balance allows. The placement itself comes from
// the previous one:
//
//  1. Replicas on nodes that are no longer members are dropped, and shards
//     with more than R' = min(R, members) replicas lose their surplus.
//  2. Vacancies are filled by water-filling: one replica at a time goes to
//     the least-loaded node that can take it, at the shard where that node
//     ranks best. When the least-loaded node already sits in every shard
//     with a vacancy, the fill may hand a replica it placed earlier in the
//     same call to another node (an augmenting path), so that the fill is a
//     minimum-cost assignment of the vacancies: it reaches the best balance
//     possible without touching replicas that stay where they were.
//  3. While the most-loaded node holds two or more replicas more than the
//     least-loaded node U, one replica of a most-loaded node moves to U, at
//     the shard without U where U ranks best.
//
// # Properties
//
// For any previous placement (including none) and any member list:
//
//   - Place is a pure function of (prev, the set of members, shards, Config):
//     no randomness, no map iteration order, member order does not matter.
//     Every node that runs it computes the same placement.
//   - Every shard has exactly R' distinct replicas, all of them members.
//   - Balance: every member holds floor(m) or ceil(m) replicas, where
//     m = shards·R'/members is the mean. So max/mean <= ceil(m)/m, which is
//     at most 1.25 whenever m >= 4 (for 64 shards and R = 3: up to 48 nodes;
//     with 10 nodes it is 20/19.2 = 1.04).
//   - Minimal movement, when prev is balanced (as every placement Place
//     returns is) and replicas are unchanged: adding nodes moves replicas only
//     onto the new nodes, each new node receiving its floor(m) or ceil(m);
//     no replica moves between two nodes that both stay. Removing a node
//     reassigns exactly its replicas, to staying nodes, whenever a balanced
//     placement reachable that way exists (the fill finds it because it is a
//     minimum-cost assignment); only if none exists does step 3 move other
//     replicas. The tests have not found such a case; see place_test.go.
//
// All nodes must use the same Config: the vnode count changes preference
// lists, and so the tie-breaking.
//
// # Cost
//
// Place takes O(shards·members) memory for the preference ranks and, for the
// balancing step, time proportional to the replicas moved times the shard
// count. 1024 shards on 10 nodes place in about a millisecond.
package ring
