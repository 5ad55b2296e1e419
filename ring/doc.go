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
// ring itself is nearly fair, but a cluster has few shards, and each shard
// is one coin toss per node: even on a perfectly fair ring a node's replica
// count is Binomial(64, R/N) for 64 shards. For N = 10 and R = 3 that is a
// mean of 19.2 with a standard deviation of 3.7, so the fullest of ten
// nodes expects about 25 replicas, 1.3 times the mean; this package's own
// ring (128 vnodes per node) gives 26 (1.35x), and 1.15x to 1.35x for 4 to
// 10 nodes. More vnodes cannot fix this: the noise comes from the 64 shard
// points, not from the ring. And consistent hashing's selling point, that
// a lookup needs no stored state, is moot here: the placement is stored
// anyway, so it can be chosen rather than hashed.
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
//
// When prev is balanced (as every placement Place returns is) and R is
// unchanged, movement is minimal:
//
//   - Adding nodes moves replicas only onto the new nodes; no replica moves
//     between two nodes that both stay. Each new node receives floor(m) or
//     ceil(m) replicas of the new mean, which any balanced placement must
//     give it, so adding one node to N moves within one replica of
//     shards·R'/(N+1) (for 64 shards and R = 3, 9 to 10 nodes: 19 moves).
//     This always holds: see balance.go.
//   - Removing nodes moves only the removed nodes' replicas, onto staying
//     nodes, whenever some such reassignment is balanced; fill finds one
//     whenever it exists (see fill.go). It may not exist: if a staying node
//     already shares every one of the removed node's shards, it cannot grow,
//     and step 3 must move a replica between staying nodes to keep the
//     bound (fill_test.go has a four-node example). Placements that Place
//     itself built rarely come to this, because vnodes make each node share
//     shards with many others. Measured over random join/leave sequences
//     of 3 to 33 nodes with the default Config: no removal needed such a
//     move in about 19,000 on 64 to 1024 shards; 0.07% did on 16 shards
//     (one extra move each); with one vnode per node, about 0.4% did.
//
// Changing R (Config.Replicas) adds or drops replicas as needed, then
// rebalances; that may move others. All nodes must use the same Config: the
// vnode count changes preference lists, and so the tie-breaking.
//
// # Cost
//
// Place ranks every member for every shard, so it takes time and memory in
// proportion to shards·members, plus work that grows with the replicas it
// places or moves: 64 or 1024 shards on 10 nodes take well under a few
// milliseconds, 16384 shards some tens of milliseconds (see bench_test.go).
package ring
