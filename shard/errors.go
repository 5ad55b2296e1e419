package shard

import "errors"

// Errors the state machine reports. They are always wrapped with context
// (the log index, the client, the snapshot offset), so test them with
// errors.Is, never by comparing strings.
var (
	// ErrBadCommand reports a command that does not decode: garbage, a
	// truncated buffer, an unknown format version or operation, or a field
	// outside its limits. Apply still consumes the log index of a bad
	// command, and it changes nothing else.
	ErrBadCommand = errors.New("shard: bad command")

	// ErrStaleRequest reports a request whose sequence number lies below its
	// client session's acknowledged mark: the client said it had seen the
	// result, or the session had to forget it (see Config.MaxSessionResults).
	// The request was not applied now, and it cannot tell whether it was
	// applied before.
	ErrStaleRequest = errors.New("shard: stale request")

	// ErrIndexApplied reports an Apply whose log index is not above the
	// applied index. The command is ignored: it was applied already, or it
	// belongs to state a restored snapshot replaced.
	ErrIndexApplied = errors.New("shard: log index already applied")

	// ErrCorruptSnapshot reports a snapshot stream that is truncated, fails
	// its checksum, or holds records that break the format's invariants.
	// Restore leaves the current state untouched when it returns it.
	ErrCorruptSnapshot = errors.New("shard: corrupt snapshot")

	// ErrSnapshotVersion reports a snapshot stream in a format version this
	// build cannot read, typically written by a newer build.
	ErrSnapshotVersion = errors.New("shard: unsupported snapshot format version")

	// ErrBadConfig reports a Config that Validate rejects.
	ErrBadConfig = errors.New("shard: bad config")

	// ErrSnapshotReleased reports a use of a Snapshot after its Release.
	ErrSnapshotReleased = errors.New("shard: snapshot already released")
)
