// Package cluster holds the cluster's metadata: its members, its shard
// count and replication factor, the placement of every shard's replicas,
// and an epoch that grows with every change.
//
// The metadata is replicated by a small Raft group of its own that every
// initial member votes in, so every node and, through the Cluster API, every
// client learns one consistent shard map. The placement is stored, not
// recomputed: package ring computes a new placement from the previous one
// when membership changes, and the result is committed here, so nodes
// running different builds still agree on who holds what.
package cluster
