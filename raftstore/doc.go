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
// WAL is a second implementation of the same API, an append-only log of
// segment files instead of a B+tree (see "The WAL" below): same methods,
// same behaviour, tested by the same tests. Nodes use the WAL for new data
// directories (kvnode --raft-log); it costs about 0.6x the node CPU per
// write of the bbolt store.
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
//
// # Freelist
//
// Open sets bbolt's NoFreelistSync, as etcd does: a commit does not write
// the freelist (one page write fewer per commit, 6.1 to 5.1 for a
// one-entry commit), and Open rebuilds it by walking every page reachable
// from the root, in time proportional to the file. Files written either
// way open either way. Caveats, all of bbolt v1.3.5: with NoFreelistSync a
// commit never calls DB.grow (etcd-io/bbolt#285), so the file grows by
// page writes alone and relies on fdatasync persisting the new size; and a
// commit that fails with an I/O error rescans the file to roll back. The
// freelist type stays the default array, whose allocation is slow only for
// freelists of many thousands of pages.
//
// # The WAL
//
// A WAL is a directory of segment files, NNNNNNNNNNNNNNNNNNNN.wal in
// ascending sequence, and a LOCK file (flock). The layout of a segment is
// in wal_record.go: a header, then one frame per commit, a CRC-32C over
// the frame's records; one write request is one record (a StoreLogs call
// with all its entries, a DeleteRange, a Set, a DeleteGroup). The same
// committer scheme as Store's turns a batch of requests into one frame,
// one write and one fdatasync, at the end of the active segment.
//
// Everything but entry values is in memory: for each group its entries'
// locations (index, segment, offset, length) in index order, and its
// stable keys. FirstIndex, LastIndex and Get read memory; GetLog reads the
// value with one pread. DeleteRange and DeleteGroup write a tombstone
// record and drop the locations.
//
// When the active segment reaches WALOptions.SegmentSize, the next commit
// starts a new segment, which begins with a checkpoint record: every
// group, the ranges of indexes it has live entries at, and its stable
// values. A segment no live entry points into is deleted, wherever it is
// in the sequence, but never the active one. Deleting a segment loses its
// tombstones and Sets, so replaying what is left could bring deleted
// entries back or lose a value; the checkpoint prevents both. Replay
// intersects the index with each checkpoint's ranges and takes its stable
// values, and the active segment, never deleted, begins with a checkpoint
// that postdates every record in earlier segments. An entry not live at
// the end is either killed by a record that survives, or absent from
// that checkpoint; an entry live at the end is in a surviving segment,
// since its segment had a live entry, and nothing after its record kills
// it. Each Open starts a new segment, so the active segment always begins
// with a checkpoint, even after a crash tore the last one.
//
// A group that appends slowly and so rarely compacts would keep alive
// every segment it has an entry in. So a rotation also copies forward the
// live entries of sparse segments (live values at most 1/16 of the
// segment size, at most 1/8 of it copied per rotation), which then die.
// Disk use is therefore bounded by about 16 times the live data, plus a
// few segments.
//
// Open replays the segments in order. In the last one a frame cut short,
// zeroed, or failing its CRC when nothing follows it is a torn write, one
// that was never acknowledged: the file is cut there. A bad frame followed
// by more data, a record that does not decode in a frame whose CRC
// matched, or damage in any other segment (each was synced whole before
// the next began) is ErrCorrupt. A length field damaged to point past the
// end of the file is taken for a torn write and cuts off what follows.
// After a write or fdatasync fails, every later write fails: reopen to
// recover what is durable.
package raftstore
