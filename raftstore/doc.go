// Package raftstore is a Raft log and stable store shared by every Raft
// group of a node, with group commit.
//
// It exists because a bolt file per group makes every group commit and
// fsync on its own: with 16 or more groups per node the fsyncs, not the
// CPU or the network, cap a node's writes (measured: 16 groups commit
// 1.4 entries per fsync where one group commits 14.5). Here all groups of a node write into one bbolt
// file through a single committer goroutine, which puts every write
// pending at the moment it starts into one read-write transaction and
// commits it with one fsync. A lone writer waits for nothing: its request
// is committed as soon as it arrives. Under load, writes that arrive
// during a commit form the next batch, so the number of fsyncs per second
// stays about constant while the writes per fsync grow. TiKV's raft-engine
// and CockroachDB's one engine per store do the same.
//
// A Store is one file; Store.Group returns a GroupStore, the view of one
// group, which implements raft.LogStore and raft.StableStore. Writes
// (StoreLog, StoreLogs, DeleteRange, Set, SetUint64) go through the
// committer and return once durable; reads (FirstIndex, LastIndex, GetLog,
// Get, GetUint64) run in their own bolt read transactions, concurrently
// with each other and with the committer. Store.Stats counts commits and
// writes, so writes per fsync can be watched.
//
// The package depends on hashicorp/raft and bbolt only.
//
// # On-disk layout
//
// One bbolt file. Each group has up to two top-level buckets of its own,
// created by the group's first write of each kind; integers are big-endian
// so that bolt's byte order is numeric order:
//
//	"meta"                          bucket
//	  "format" -> 0x01              on-disk format version
//	'l' <group id, 8 bytes>         bucket: the group's log
//	  <index, 8 bytes> -> <entry>   encoded raft.Log, see below
//	's' <group id, 8 bytes>         bucket: the group's stable store
//	  <raft's key> -> <value>       as given; SetUint64 stores 8 bytes
//
// A bucket per group, rather than one bucket keyed by (group, index), keeps
// FirstIndex and LastIndex to one cursor step each (First, Last), a
// DeleteRange to a seek and a walk over exactly the deleted keys, and
// DeleteGroup to two DeleteBucket calls that touch no other group's pages.
// The buckets are top-level, not nested in a bucket of groups, so that a
// commit rewrites no more pages per group than raft-boltdb's file does
// (measured: 5.7 page writes per single-entry commit in both); nesting
// added two.
//
// A log entry's value is (all integers varint-encoded as in encoding/binary):
//
//	0x01                   encoding version
//	type                   one byte, raft.LogType
//	term                   uvarint
//	appendedAt             0x00 for the zero time, or 0x01 followed by
//	                       varint Unix seconds and uvarint nanoseconds
//	len(Data), Data        uvarint, bytes
//	len(Extensions), Ext   uvarint, bytes
//
// The index is the key and is not repeated. An entry reads back with
// AppendedAt in UTC and empty Data or Extensions as nil. It is about half
// the size of raft-boltdb's msgpack encoding, and needs no msgpack.
package raftstore
