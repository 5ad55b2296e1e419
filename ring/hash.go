package ring

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// The byte strings hashed onto the ring. Both start with a distinct prefix
// so a vnode and a shard never share an encoding, and the vnode encoding
// length-prefixes the node ID so that no two (node, index) pairs share one:
// groupcache's strconv.Itoa(i)+id makes vnode 1 of "12" and vnode 11 of "2"
// the same point. Changing either encoding changes every preference list, so
// all nodes of a cluster must run the same one; hash_test.go pins them.
const (
	vnodePrefix = "vnode/"
	shardPrefix = "shard/"
)

// appendVnodeKey appends the encoding of vnode i of node id to dst:
// "vnode/", uvarint(len(id)), id, big-endian uint32(i).
func appendVnodeKey(dst []byte, id string, i uint32) []byte {
	dst = append(dst, vnodePrefix...)
	dst = binary.AppendUvarint(dst, uint64(len(id)))
	dst = append(dst, id...)
	return binary.BigEndian.AppendUint32(dst, i)
}

// appendShardKey appends the encoding of shard to dst: "shard/",
// big-endian uint32(shard).
func appendShardKey(dst []byte, shard uint32) []byte {
	dst = append(dst, shardPrefix...)
	return binary.BigEndian.AppendUint32(dst, shard)
}

// vnodePosition is the ring position of vnode i of node id.
func vnodePosition(id string, i uint32) uint64 {
	var buf [64]byte
	return xxhash.Sum64(appendVnodeKey(buf[:0], id, i))
}

// shardPosition is the ring position of shard.
func shardPosition(shard uint32) uint64 {
	var buf [16]byte
	return xxhash.Sum64(appendShardKey(buf[:0], shard))
}
