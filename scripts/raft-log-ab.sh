#!/usr/bin/env bash
# A/B of the shard groups' Raft log (kvnode --raft-log bolt vs wal), end to
# end: for each round, for each kind (the order alternating between rounds),
# starts a fresh 3-node cluster on loopback with SHARDS shards, waits until
# every shard has a leader and leadership has balanced, then runs
# `kvctl bench put` at each client count and reads the nodes' CPU
# (user+system from /proc/PID/stat) over the measured window. Prints one
# TSV line per run, then (with python3) the medians per kind and the
# medians of the per-round wal/bolt ratios. Usage:
#   scripts/raft-log-ab.sh [ROUNDS=3] [SHARDS=64]
# Environment: AB_CLIENTS ("1 64 256"), AB_DURATION (10s), AB_WARMUP (3s),
# AB_CONNS (4, at most the clients), AB_SETTLE (15: seconds to wait after all shards have a
# leader), AB_KINDS ("bolt wal"), AB_OUT (TSV file; default a temp file).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SHARDS=${2:-64}
CLIENTS=${AB_CLIENTS:-1 64 256}
DURATION=${AB_DURATION:-10s}
WARMUP=${AB_WARMUP:-3s}
CONNS=${AB_CONNS:-4}
SETTLE=${AB_SETTLE:-15}
read -r -a KINDS <<<"${AB_KINDS:-bolt wal}"
OUT=${AB_OUT:-$(mktemp /tmp/raft-log-ab.XXXXXX.tsv)}
go build -o bin/ ./cmd/kvnode ./cmd/kvctl
tick=$(getconf CLK_TCK)
dur_s=${DURATION%s}
warm_s=${WARMUP%s}

DIR=
pids=()
stop_cluster() {
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  [ -n "$DIR" ] && rm -rf "$DIR"
  DIR=
}
trap stop_cluster EXIT

cpu_ticks() { # sum of utime+stime of the nodes
  local s=0 p
  for p in "${pids[@]}"; do s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
  echo "$s"
}

printf 'round\tkind\tclients\tops_per_sec\tp50_ms\tp99_ms\terrors\tnode_cpu_us_per_put\tnode_cpu_cores\n' | tee "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  order=("${KINDS[@]}")
  if [ $((r % 2)) -eq 0 ]; then order=(); for ((i = ${#KINDS[@]} - 1; i >= 0; i--)); do order+=("${KINDS[$i]}"); done; fi
  for kind in "${order[@]}"; do
    DIR=$(mktemp -d)
    BASE=$((21000 + RANDOM % 1000 * 10))
    CLUSTER=n1=127.0.0.1:$((BASE + 1)),n2=127.0.0.1:$((BASE + 2)),n3=127.0.0.1:$((BASE + 3))
    EP=127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3))
    for i in 1 2 3; do
      ./bin/kvnode --id "n$i" --listen "127.0.0.1:$((BASE + i))" --data-dir "$DIR/n$i" \
        --initial-cluster "$CLUSTER" --shards "$SHARDS" --raft-log "$kind" >"$DIR/n$i.log" 2>&1 &
      pids+=($!)
    done
    ok=
    for _ in $(seq 1 300); do
      if ./bin/kvctl --endpoints "$EP" -o json cluster status 2>/dev/null | grep -q '"leaderless": *0'; then ok=1; break; fi
      sleep 0.2
    done
    [ -n "$ok" ] || { echo "round $r $kind: cluster not ready; logs in $DIR" >&2; tail -n 5 "$DIR"/n*.log >&2; exit 1; }
    sleep "$SETTLE"
    for c in $CLIENTS; do
      ./bin/kvctl --endpoints "$EP" --timeout 10s -o json bench put --clients "$c" --conns "$((c < CONNS ? c : CONNS))" \
        --duration "$DURATION" --warmup "$WARMUP" --seed "$r" >"$DIR/bench.json" 2>"$DIR/bench.err" &
      bp=$!
      sleep "$warm_s"
      sleep 0.5
      t0=$(date +%s.%N); c0=$(cpu_ticks)
      sleep "$(awk -v d="$dur_s" 'BEGIN{print d - 1}')"
      t1=$(date +%s.%N); c1=$(cpu_ticks)
      wait "$bp" || { echo "bench failed:" >&2; cat "$DIR/bench.err" >&2; exit 1; }
      python3 - "$DIR/bench.json" "$r" "$kind" "$c" "$t0" "$t1" "$c0" "$c1" "$tick" <<'PY' | tee -a "$OUT"
import json, sys
f, r, kind, c, t0, t1, c0, c1, tick = sys.argv[1:]
res = json.load(open(f))["result"]
op = [o for o in res["ops"] if o["op"] == "put"][0]
ops = res["ops_per_sec"]
win = float(t1) - float(t0)
cpu = (int(c1) - int(c0)) / float(tick)
print(f"{r}\t{kind}\t{c}\t{ops:.0f}\t{op['latency']['p50_ns']/1e6:.2f}\t{op['latency']['p99_ns']/1e6:.2f}\t{res['errors']}\t{cpu/win/ops*1e6:.0f}\t{cpu/win:.2f}")
PY
    done
    stop_cluster
  done
done

command -v python3 >/dev/null || exit 0
python3 - "$OUT" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
kinds = sorted({r["kind"] for r in rows})
clients = sorted({int(r["clients"]) for r in rows})
def get(kind, c, rnd, col):
    for r in rows:
        if r["kind"] == kind and int(r["clients"]) == c and r["round"] == rnd:
            return float(r[col])
print()
print("medians over rounds; ratio = median of per-round wal/bolt")
print("clients  metric               " + "  ".join(f"{k:>8}" for k in kinds) + "   ratio  per-round ratios")
for c in clients:
    for col in ("ops_per_sec", "p50_ms", "p99_ms", "node_cpu_us_per_put"):
        med = {k: statistics.median([float(r[col]) for r in rows if r["kind"] == k and int(r["clients"]) == c]) for k in kinds}
        rounds = sorted({r["round"] for r in rows})
        ratios = []
        if "bolt" in kinds and "wal" in kinds:
            ratios = [get("wal", c, rn, col) / get("bolt", c, rn, col) for rn in rounds if get("bolt", c, rn, col)]
        ratio = f"{statistics.median(ratios):6.2f}" if ratios else "     -"
        print(f"{c:>7}  {col:<20} " + "  ".join(f"{med[k]:8.2f}" for k in kinds) + f"   {ratio}  " + " ".join(f"{x:.2f}" for x in ratios))
print(f"raw: {sys.argv[1]}")
PY
