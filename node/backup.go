package node

import "github.com/ringkv/ringkv/shard"

// Image implements router.ImageReplica: a point-in-time image of the
// replica's state machine, for backups (the Backup service).
func (r *shardReplica) Image() (*shard.Snapshot, error) { return r.sm.Snapshot() }
