// Package replication runs Raft groups: one per shard, plus the cluster's
// metadata group, many of them in one process.
//
// It wraps hashicorp/raft so that the rest of ringkv sees a small surface
// (Group.Propose, Group.ReadBarrier, leadership queries, membership changes
// for replica moves) and never raft's futures, timeouts or sentinel errors.
// Three things live here because raft alone does not provide them:
//
//   - A transport that multiplexes every group of a node over the node's one
//     gRPC server and one connection per peer (transport*.go). A listener and
//     a connection pool per group would cost sockets and buffers that grow
//     with the shard count.
//   - Storage per group: raft-boltdb for the log and stable store, behind a
//     raft.LogCache so the leader does not re-read entries from bolt to build
//     AppendEntries, and a file snapshot store. Snapshots and log compaction
//     are on by default.
//   - A linearizable read path. hashicorp/raft has no ReadIndex, and
//     VerifyLeader alone is not enough (hashicorp/raft#359, #603): a leader
//     that has not yet committed an entry of its own term may hold a stale
//     commit index, and raft's AppliedIndex counts entries handed to the
//     state machine, not entries it has finished applying. See ReadBarrier.
//
// The package knows nothing of keys, shards or gRPC's public API: a group
// replicates opaque commands into a StateMachine that its caller supplies.
package replication
