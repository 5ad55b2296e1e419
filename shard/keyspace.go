// Package shard owns the key space's division into shards and the per-shard
// state machine that Raft replicates.
//
// A key belongs to exactly one shard for the life of a cluster: the shard
// count is fixed when the cluster is created, and Of is a pure function of
// the key and that count. Only shard replicas ever move between nodes
// (decided by package ring, carried out through Raft membership changes);
// keys never move between shards. That is what lets a client compute a key's
// shard on its own from a cached shard map.
//
// The package knows nothing of Raft, gRPC or the network: the state machine
// takes commands as bytes with the log index they were committed at, and
// package replication adapts it to hashicorp/raft.
package shard

import (
	"bytes"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// ID names a shard: 0 <= ID < the cluster's shard count.
type ID uint32

// DefaultCount is the number of shards a new cluster is cut into unless told
// otherwise.
const DefaultCount = 64

// MaxCount bounds the shard count a cluster may be created with.
const MaxCount = 4096

// Of returns the shard of key in a cluster of count shards (count > 0).
//
// The 64-bit xxhash of the key is cut into count equal, contiguous ranges of
// the hash space; a key's shard is the range its hash falls in. When the key
// holds a hash tag, only the tag is hashed: see HashPart.
func Of(key []byte, count uint32) ID {
	h := xxhash.Sum64(HashPart(key))
	hi, _ := bits.Mul64(h, uint64(count))
	return ID(hi)
}

// HashPart returns the part of key that decides its shard. It follows Redis
// Cluster's hash tag rule: if the key contains a '{' followed later by a '}',
// and at least one byte stands between the first '{' and the first '}' after
// it, only those bytes are hashed, so "{user42}.cart" and "{user42}.profile"
// land on the same shard. Otherwise the whole key is hashed.
func HashPart(key []byte) []byte {
	open := bytes.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := bytes.IndexByte(key[open+1:], '}')
	if end <= 0 { // no '}' after '{', or an empty tag "{}"
		return key
	}
	return key[open+1 : open+1+end]
}
