// Package backup reads and writes ringkv backup files: the keys, values and
// remaining TTLs of every shard of a cluster, each shard as of one
// linearizable instant, in one self-checking file.
//
// The file is written once, front to back, while the shards stream in (see
// Writer), and it can be verified without a cluster (see Verify). A file
// that is truncated, has a flipped bit, lacks a shard or is not a backup at
// all is refused as a whole, with an error that says where and what, so a
// restore never starts from a file it could not finish.
//
// # Format, version 1
//
//	8 bytes     magic "RINGKVBK"
//	2 bytes     format version, little-endian (1)
//	frames      a header frame; per shard, in ascending shard order, a
//	            begin frame, record frames and an end frame; a trailer frame
//
// Every frame is
//
//	1 byte      kind: 1 header, 2 shard begin, 3 records, 4 shard end,
//	            5 trailer
//	4 bytes     payload length n, little-endian
//	n bytes     payload
//	4 bytes     CRC-32C (Castagnoli) of kind, length and payload,
//	            little-endian
//
// and the payloads, in unsigned (u) and signed (s) varints, are
//
//	header      u source shard count, s creation time (unix ns)
//	begin       u shard ID, u applied index of the shard's image,
//	            s time the image was taken (unix ns, the leader's clock)
//	records     records in ascending key order, each: u key length, key,
//	            u value length, value, u remaining TTL in ms (0: none)
//	end         u shard ID, u record count, u data bytes (keys + values),
//	            4 bytes CRC-32C of the shard's record payloads, in order
//	trailer     u shard count, u record count, u data bytes, 32 bytes
//	            SHA-256 of every byte of the file before the trailer frame
//
// A records frame holds whole records, about 256 KiB of them (more for one
// large record). The file holds every shard of the source cluster, 0 to
// count-1, once each; nothing may follow the trailer.
package backup

import (
	"errors"
	"hash/crc32"
	"time"
)

// Format constants.
const (
	// Magic opens every backup file.
	Magic = "RINGKVBK"
	// Version is the format version this package writes and reads.
	Version = 1

	frameHeader  byte = 1
	frameBegin   byte = 2
	frameRecords byte = 3
	frameEnd     byte = 4
	frameTrailer byte = 5

	framePrefix   = 5 // kind + length
	frameChecksum = 4
	// recordsTarget is the payload size at which a records frame is cut.
	recordsTarget = 256 << 10
	// maxShards bounds the source shard count a file may claim.
	maxShards = 1 << 16
)

// Errors of reading a file; they are wrapped with where and what, so test
// them with errors.Is.
var (
	// ErrNotBackup: the file does not start with the magic: it is not a
	// ringkv backup (or its first bytes are damaged).
	ErrNotBackup = errors.New("not a ringkv backup file")
	// ErrVersion: the file is a backup in a format version this build
	// cannot read.
	ErrVersion = errors.New("unsupported backup format version")
	// ErrCorrupt: the file is truncated, fails a checksum, or breaks the
	// format's rules (a shard missing, records out of order, counts that
	// do not match).
	ErrCorrupt = errors.New("corrupt backup file")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header describes the whole backup.
type Header struct {
	// ShardCount is the shard count of the cluster the backup was taken
	// from; the file holds that many shards.
	ShardCount uint32
	// Created is when the backup was started.
	Created time.Time
}

// Record is one key with its value and the time it had left to live when
// its shard's image was taken.
type Record struct {
	Key   []byte
	Value []byte
	// TTL is the remaining time to live at the image, rounded up to a
	// millisecond; 0 when the key has none.
	TTL time.Duration
}

// ShardBegin opens one shard's part of a file.
type ShardBegin struct {
	// ID is the shard's ID in the source cluster.
	ID uint32
	// Index is the Raft index the shard's image was taken at.
	Index uint64
	// TakenAt is when the image was taken, by the shard leader's clock.
	TakenAt time.Time
}

// ShardSummary is one shard's part of a verified file.
type ShardSummary struct {
	ShardBegin
	// Records is the number of keys.
	Records uint64
	// Bytes is the size of the keys and values.
	Bytes uint64
	// CRC is the CRC-32C of the shard's record payloads.
	CRC uint32
}

// Summary describes a verified file.
type Summary struct {
	Header
	// Version is the file's format version.
	Version int
	// Shards are the shards in file order (by ID).
	Shards []ShardSummary
	// Records and Bytes total those of the shards.
	Records uint64
	Bytes   uint64
	// FileBytes is the size of the file.
	FileBytes int64
	// SHA256 is the checksum of the file up to the trailer, as the trailer
	// holds it and as verified.
	SHA256 [32]byte
}

// ttlMillis is d in milliseconds, rounded up.
func ttlMillis(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64((d + time.Millisecond - 1) / time.Millisecond)
}
