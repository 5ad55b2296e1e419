#!/usr/bin/env bash
# A/B of the shard groups' Raft log (kvnode --raft-log bolt vs wal), end to
# end, with scripts/ab.sh (its AB_* environment applies: AB_PLAN defaults
# to put at 1, 64 and 256 clients). Usage:
#   scripts/raft-log-ab.sh [ROUNDS=3] [SHARDS=64]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SHARDS=${2:-64}
go build -o bin/ ./cmd/kvnode
exec scripts/ab.sh "$ROUNDS" "bolt=bin/kvnode --raft-log bolt --shards $SHARDS" "wal=bin/kvnode --raft-log wal --shards $SHARDS"
