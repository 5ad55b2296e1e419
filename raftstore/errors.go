package raftstore

import "errors"

var (
	// ErrClosed is returned by every method of a Store, and of its
	// GroupStores, once Close has begun. A write queued but not yet being
	// committed when Close begins fails with ErrClosed and is not written.
	ErrClosed = errors.New("raftstore: closed")

	// ErrKeyNotFound is returned, unwrapped, by GroupStore.Get and
	// GroupStore.GetUint64 for a key that was never set. Its message is
	// exactly "not found" because hashicorp/raft recognises a missing key
	// (a fresh group's CurrentTerm, LastVoteTerm, LastVoteCand) by comparing
	// err.Error() with "not found", as raft-boltdb's ErrKeyNotFound reads;
	// callers of ours use errors.Is.
	ErrKeyNotFound = errors.New("not found")

	// ErrCorrupt is returned, wrapped, when the file holds something this
	// package did not write: an unknown format version, a log entry that does
	// not decode, a uint64 value that is not 8 bytes long.
	ErrCorrupt = errors.New("raftstore: corrupt data")
)
