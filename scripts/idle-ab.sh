#!/usr/bin/env bash
# Compares the idle cost of two kvnode builds side by side: starts a 3-node
# cluster of SHARDS shards with each binary at once (so both see the same
# machine load), lets them settle, then prints each node's CPU (user+system,
# % of one core) over WINDOW seconds with nothing written. Usage:
#   scripts/idle-ab.sh OLD_KVNODE NEW_KVNODE [WINDOW=60] [SHARDS=64]
# Build OLD_KVNODE from a worktree of the older commit, for example:
#   git worktree add /tmp/old HEAD~1 && go -C /tmp/old build -o /tmp/kvnode-old ./cmd/kvnode
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 WINDOW=${3:-60} SHARDS=${4:-64}
go build -o bin/ ./cmd/kvctl
DIR=$(mktemp -d)
pids=() labels=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
start() { # label binary base-port
  local label=$1 bin=$2 base=$3
  local cluster=n1=127.0.0.1:$((base+1)),n2=127.0.0.1:$((base+2)),n3=127.0.0.1:$((base+3))
  for i in 1 2 3; do
    "$bin" --id n$i --listen 127.0.0.1:$((base+i)) --data-dir "$DIR/$label-n$i" --shards "$SHARDS" \
      --initial-cluster "$cluster" >"$DIR/$label-n$i.log" 2>&1 &
    pids+=($!) labels+=("$label-n$i")
  done
  local ep=127.0.0.1:$((base+1)),127.0.0.1:$((base+2)),127.0.0.1:$((base+3))
  for _ in $(seq 1 300); do
    if ./bin/kvctl --endpoints "$ep" -o json cluster status 2>/dev/null | grep -q '"leaderless": *0'; then return; fi
    sleep 0.2
  done
  echo "$label: not every shard has a leader after 60 s" >&2
  exit 1
}
BASE=$((17000 + RANDOM % 1000 * 10))
start old "$OLD" "$BASE"
start new "$NEW" $((BASE + 5))
sleep 30 # start-up work and leadership balancing
declare -A t0
for pid in "${pids[@]}"; do t0[$pid]=$(awk '{print $14+$15}' /proc/"$pid"/stat); done
sleep "$WINDOW"
tick=$(getconf CLK_TCK)
for k in "${!pids[@]}"; do
  pid=${pids[$k]}
  t1=$(awk '{print $14+$15}' /proc/"$pid"/stat)
  awk -v l="${labels[$k]}" -v d=$((t1 - t0[$pid])) -v w="$WINDOW" -v t="$tick" \
    'BEGIN { printf "%s cpu %.2f%%\n", l, 100 * d / t / w }'
done
