package ring

import "errors"

// Errors returned by New, Place and Config.Validate. They are wrapped with
// details; test for them with errors.Is.
var (
	// ErrNoMembers means the member list is empty: there is nowhere to put
	// a replica.
	ErrNoMembers = errors.New("ring: no members")

	// ErrInvalidMember means a member ID is empty or listed twice.
	ErrInvalidMember = errors.New("ring: invalid member ID")

	// ErrInvalidShardCount means the shard count is not in 1..MaxShards.
	ErrInvalidShardCount = errors.New("ring: invalid shard count")

	// ErrInvalidConfig means a Config field is out of range.
	ErrInvalidConfig = errors.New("ring: invalid config")

	// ErrInvalidPlacement means the previous placement given to Place is
	// malformed: a shard count that differs from the one asked for, or a
	// replica list holding an empty or repeated node ID.
	ErrInvalidPlacement = errors.New("ring: invalid previous placement")
)
