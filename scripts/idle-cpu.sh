#!/usr/bin/env bash
# Measures the idle cost of ringkv: starts a 3-node cluster with SHARDS shards
# on loopback, waits until every shard has a leader, then reports each node's
# CPU (user+system, % of one core), resident memory and goroutine-bearing
# threads over WINDOW seconds with nothing written. Usage:
#   scripts/idle-cpu.sh [SHARDS=64] [WINDOW=30] [extra kvnode flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARDS=${1:-64}
WINDOW=${2:-30}
shift $(( $# > 2 ? 2 : $# ))
go build -o bin/ ./cmd/...
DIR=$(mktemp -d)
BASE=$((17000 + RANDOM % 1000 * 10))
CLUSTER=n1=127.0.0.1:$((BASE+1)),n2=127.0.0.1:$((BASE+2)),n3=127.0.0.1:$((BASE+3))
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for i in 1 2 3; do
  ./bin/kvnode --id n$i --listen 127.0.0.1:$((BASE+i)) --data-dir "$DIR/n$i" \
    --initial-cluster "$CLUSTER" --shards "$SHARDS" "$@" >"$DIR/n$i.log" 2>&1 &
  pids+=($!)
done
EP=127.0.0.1:$((BASE+1)),127.0.0.1:$((BASE+2)),127.0.0.1:$((BASE+3))
for _ in $(seq 1 300); do
  if ./bin/kvctl --endpoints "$EP" -o json cluster status 2>/dev/null | grep -q '"leaderless": *0'; then break; fi
  sleep 0.2
done
sleep 30 # let start-up work pass and leadership balance (8 transfers per node every 5s)
tick=$(getconf CLK_TCK)
declare -A before
for p in "${pids[@]}"; do before[$p]=$(awk '{print $14+$15}' /proc/$p/stat); done
sleep "$WINDOW"
declare -A after
for p in "${pids[@]}"; do after[$p]=$(awk '{print $14+$15}' /proc/$p/stat); done
echo "shards=$SHARDS window=${WINDOW}s flags=[$*]"
# After the window: the status call costs the nodes some CPU.
./bin/kvctl --endpoints "$EP" cluster status | sed -n '/^MEMBER/,/^$/p'
for i in 0 1 2; do
  p=${pids[$i]}
  cpu=$(awk -v a="${before[$p]}" -v b="${after[$p]}" -v t="$tick" -v w="$WINDOW" 'BEGIN{printf "%.1f", (b-a)*100/t/w}')
  rss=$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/$p/status)
  echo "n$((i+1)): cpu ${cpu}% of one core, rss ${rss} MB"
done
