#!/usr/bin/env bash
# Measures foreground latency while a 100 MB shard replica moves: a 4-node
# cluster with 8 shards gets 1,600 values of 64 KiB under one hash tag (one
# shard, about 100 MB); a closed-loop mixed load (90% linearizable gets,
# 16 clients) runs for WINDOW seconds once idle and once while a node that
# holds that shard is removed, which moves the 100 MB replica to the fourth
# node. Prints both kvctl bench tables and the big move's size and duration.
# Usage: scripts/move-p99.sh [WINDOW=15] [extra kvnode flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOW=${1:-15}
shift $(( $# > 0 ? 1 : 0 ))
go build -o bin/ ./cmd/...
DIR=$(mktemp -d)
BASE=$((17000 + RANDOM % 1000 * 10))
CLUSTER=n1=127.0.0.1:$((BASE+1)),n2=127.0.0.1:$((BASE+2)),n3=127.0.0.1:$((BASE+3))
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $DIR" || rm -rf "$DIR"; }
trap cleanup EXIT
for i in 1 2 3; do
  ./bin/kvnode --id n$i --listen 127.0.0.1:$((BASE+i)) --data-dir "$DIR/n$i" \
    --initial-cluster "$CLUSTER" --shards 8 "$@" >"$DIR/n$i.log" 2>&1 &
  pids+=($!)
done
EP=127.0.0.1:$((BASE+1)),127.0.0.1:$((BASE+2)),127.0.0.1:$((BASE+3))
kvctl() { ./bin/kvctl --endpoints "$EP" "$@"; }
for _ in $(seq 1 150); do kvctl --timeout 1s put started yes >/dev/null 2>&1 && break; sleep 0.2; done
./bin/kvnode --id n4 --listen 127.0.0.1:$((BASE+4)) --data-dir "$DIR/n4" \
  --join 127.0.0.1:$((BASE+1)) "$@" >"$DIR/n4.log" 2>&1 &
pids+=($!)
EP=$EP,127.0.0.1:$((BASE+4))
settled() { # no move pending or active, and every member active
  kvctl -o json rebalance status 2>/dev/null | grep -q '"done": *true' &&
    [ "$(kvctl -o json cluster status | grep -o '"state": *"active"' | wc -l)" -eq 4 ]
}
for _ in $(seq 1 300); do settled && break; sleep 0.5; done
settled || { echo "the 4-node cluster did not settle" >&2; exit 1; }

echo "filling one shard with 1,600 × 64 KiB..."
head -c 65536 /dev/urandom >"$DIR/value"
export EP DIR
seq -w 1 1600 | xargs -P 8 -I@ sh -c './bin/kvctl --endpoints "$EP" put "{big}k@" - <"$DIR/value" >/dev/null'
# The nodes holding the big shard are the three with the most data; remove
# the first of them, so its 100 MB replica moves to the fourth node.
sizes=$(for i in 1 2 3 4; do echo "$(du -sk "$DIR/n$i" | cut -f1) n$i"; done)
echo "data per node (KiB):" $sizes
VICTIM=$(echo "$sizes" | sort -rn | head -3 | sort -k2 | head -1 | cut -d' ' -f2)
sleep 6 # let leadership balance
echo
echo "== idle: ${WINDOW}s of mixed load, 16 clients"
kvctl bench mixed --clients 16 --conns 2 --duration "${WINDOW}s" --warmup 1s 2>/dev/null
echo
echo "== while $VICTIM is removed (its replica of the 100 MB shard moves): ${WINDOW}s of the same load"
(sleep 2; kvctl node remove "$VICTIM" --wait=false >/dev/null) &
date -u +"load from %H:%M:%S.%3N"
kvctl bench mixed --clients 16 --conns 2 --duration "${WINDOW}s" --warmup 1s 2>/dev/null
wait $!
for _ in $(seq 1 300); do kvctl -o json rebalance status 2>/dev/null | grep -q '"done": *true' && break; sleep 0.5; done
echo
echo "== the moves off $VICTIM (the 100 MB replica catches up from the log or a snapshot; bytes count snapshots only)"
kvctl -o json rebalance status | VICTIM=$VICTIM python3 -c '
import json, os, sys
from datetime import datetime
d = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
for m in json.load(sys.stdin)["finished"]:
    if m.get("from") == os.environ["VICTIM"]:
        print("shard %d %s -> %s: %s to %s (%.1f s), %.1f MB of snapshot" % (m["shard"], m["from"], m.get("to"),
              m["started"][11:23], m["finished"][11:23], (d(m["finished"]) - d(m["started"])).total_seconds(), m.get("bytes", 0) / 1e6))'
