// Package node assembles a ringkv daemon: one gRPC server carrying the
// public API and the Raft transport, the cluster metadata group, one Raft
// group per shard replica the placement gives this node, and the router
// between them. It owns their lifecycle: Start brings them up in order and
// Stop takes them down in reverse, and every goroutine it starts is stopped
// by Stop.
package node
